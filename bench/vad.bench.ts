// Silero VAD cost per second of 16 kHz audio: in one thread (the model alone, one stream and
// batches of streams), and through VadBatcher + vad-worker.ts in Piscina (what the server does).
// Run: node bench/vad.bench.ts [seconds of audio per stream, default 30]
import { performance } from 'node:perf_hooks'
import { Piscina } from 'piscina'
import { SileroVad, VAD_CONTEXT_SAMPLES, VAD_FRAME_SAMPLES, VAD_SAMPLE_RATE, VAD_STATE_SIZE } from '../src/audio/silero-vad.ts'
import { VadBatcher } from '../src/audio/vad-batcher.ts'

const seconds = Number(process.argv[2] ?? 30)
const frames = Math.floor(seconds * VAD_SAMPLE_RATE / VAD_FRAME_SAMPLES)

// Noise with a slow envelope: the model's cost does not depend on the content, but keep it audio-like.
function audio (seed: number): Float32Array {
  const out = new Float32Array(frames * VAD_FRAME_SAMPLES)
  let x = seed
  for (let i = 0; i < out.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = ((x / 4294967296) * 2 - 1) * 0.3 * (0.5 + 0.5 * Math.sin(i / 8000))
  }
  return out
}

function report (label: string, streams: number, ms: number): void {
  const audioSeconds = streams * frames * VAD_FRAME_SAMPLES / VAD_SAMPLE_RATE
  console.log(`${label.padEnd(50)} ${(ms / audioSeconds).toFixed(3).padStart(7)} ms per second of audio  ` +
    `(${(ms * 1000 / (streams * frames)).toFixed(1)} µs per frame, ${(audioSeconds * 1000 / ms).toFixed(0)}x real time per thread)`)
}

const vad = await SileroVad.load()
const inputs = Array.from({ length: 16 }, (_, i) => audio(i + 1))
const item = (a: Float32Array) => ({ frames: a, context: new Float32Array(VAD_CONTEXT_SAMPLES), state: new Float32Array(VAD_STATE_SIZE) })
await vad.run([item(inputs[0]!.subarray(0, 50 * VAD_FRAME_SAMPLES))]) // warm-up

console.log(`${seconds} s of audio per stream, ${frames} frames of 32 ms`)
for (const streams of [1, 2, 4, 8, 16]) {
  const start = performance.now()
  await vad.run(inputs.slice(0, streams).map(item))
  report(`in-thread, ${streams} stream(s) batched`, streams, performance.now() - start)
}
{
  // One frame per run, as if each stream were fed on its own (no batching).
  const start = performance.now()
  for (let s = 0; s < 8; s++) {
    const it = item(inputs[s]!)
    for (let f = 0; f < frames; f++) {
      await vad.run([{ ...it, frames: inputs[s]!.subarray(f * VAD_FRAME_SAMPLES, (f + 1) * VAD_FRAME_SAMPLES) }])
    }
  }
  report('in-thread, 8 streams one run per frame', 8, performance.now() - start)
}
await vad.close()

// Through the worker: 8 streams fed 1 frame (32 ms) per call, as live audio arrives. Main-thread
// time here is mostly waiting; the number is wall-clock per second of audio across 1 thread.
const pool = new Piscina({ filename: new URL('../src/core/vad-worker.ts', import.meta.url).href, minThreads: 1, maxThreads: 1 })
const batcher = new VadBatcher(async (task) => await pool.run(task))
for (const [streams, chunk] of [[1, 1], [8, 1], [8, 8]] as const) {
  const start = performance.now()
  const cpu = process.cpuUsage()
  await Promise.all(inputs.slice(0, streams).map(async a => {
    const stream = batcher.createStream()
    for (let f = 0; f < frames; f += chunk) await stream.process(a.subarray(f * VAD_FRAME_SAMPLES, Math.min(frames, f + chunk) * VAD_FRAME_SAMPLES))
  }))
  const ms = performance.now() - start
  report(`worker (1 thread), ${streams} stream(s), ${chunk} frame(s)/call`, streams, ms)
  const used = process.cpuUsage(cpu)
  console.log(`${''.padEnd(50)} process CPU (all threads) ${(((used.user + used.system) / 1000) / (streams * seconds)).toFixed(3)} ms per second of audio`)
}
await pool.destroy()
