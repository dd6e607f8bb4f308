// CPU cost of StreamingResampler and PcmDecoder: milliseconds of CPU per second of audio, per
// channel, fed in 20 ms chunks like a live stream. Run: node bench/resampler.bench.ts
import { PcmDecoder } from '../src/audio/pcm-decoder.ts'
import { StreamingResampler } from '../src/audio/resampler.ts'

const SECONDS = 20

function tone (rate: number, seconds: number): Float32Array {
  const x = new Float32Array(Math.round(rate * seconds))
  for (let i = 0; i < x.length; i++) x[i] = 0.5 * Math.sin(2 * Math.PI * 440 * i / rate) + 0.1 * Math.sin(2 * Math.PI * 5000 * i / rate)
  return x
}

function cpuMs (run: () => void): number {
  const start = process.cpuUsage()
  run()
  const used = process.cpuUsage(start)
  return (used.user + used.system) / 1000
}

// The least of several runs: on a shared machine the others only add other processes' noise.
function bestOf (runs: number, run: () => void): number {
  let best = Infinity
  for (let i = 0; i < runs; i++) best = Math.min(best, cpuMs(run))
  return best
}

const RESAMPLED_RATES = [8000, 22050, 44100, 48000, 96000, 192000, 44099]

// One run per rate: 20 s of a tone, through a new resampler in 20 ms pushes, and its flush.
function resampleRun (rate: number): () => void {
  const input = tone(rate, SECONDS)
  const chunk = Math.round(rate * 0.02)
  return () => {
    const r = new StreamingResampler(rate, 16000)
    for (let i = 0; i < input.length; i += chunk) r.push(input.subarray(i, i + chunk))
    r.flush()
  }
}

function benchResampler (): void {
  const runs = RESAMPLED_RATES.map(resampleRun)
  // Warm up every rate before measuring any: the filter designs, and the JIT, which otherwise
  // bills its warm-up (the code around the kernel, the garbage collector's sizing) to the first
  // rate measured, making it look about 3 x dearer than it is.
  for (const run of runs) run()
  for (const run of runs) run()
  runs.forEach((run, i) => {
    const ms = bestOf(5, run)
    console.log(`resample ${String(RESAMPLED_RATES[i]).padStart(6)} Hz -> 16000 Hz: ${(ms / SECONDS).toFixed(3)} ms CPU per second of audio per channel`)
  })
}

function benchDecoder (bitDepth: number, isFloat: boolean, channels: number): void {
  const rate = 48000
  const bytes = new Uint8Array(rate * SECONDS * channels * bitDepth / 8)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < bytes.length / (bitDepth / 8); i++) {
    const v = Math.sin(i / 10) * 0.5
    if (isFloat) view.setFloat32(i * 4, v, true)
    else view.setInt16(i * 2, Math.round(v * 32767), true)
  }
  // 20 ms chunks, 1 byte out of step so that every chunk carries a partial frame.
  const chunk = rate * 0.02 * channels * bitDepth / 8 + 1
  const once = (): void => {
    const d = new PcmDecoder({ channels, sample_rate: rate, bit_depth: bitDepth, is_float: isFloat })
    for (let i = 0; i < bytes.length; i += chunk) d.push(bytes.subarray(i, i + chunk))
  }
  once()
  const ms = bestOf(3, once)
  console.log(`decode ${isFloat ? 'f' : 's'}${bitDepth} x${channels} at 48 kHz: ${(ms / SECONDS).toFixed(3)} ms CPU per second of audio (all channels)`)
}

benchResampler()
for (const [depth, isFloat, channels] of [[16, false, 1], [16, false, 2], [32, true, 1], [32, true, 2]] as const) benchDecoder(depth, isFloat, channels)
