// Single-stream speed: one WebSocket stream sent as fast as the server takes it, in times real
// time, and the server CPU it costs per second of audio.
//
// The real server is started as `npm start` starts it (bench/server-process.ts:
// `node src/server.ts`, config from STREAMER_CONFIG) with the capacity bench's zero-delay dummy
// model, so the figures are the server's (transport, decoding, resampling, VAD, scheduling) and
// not the model's. The other limits are the defaults: 60 s of audio is far from
// limits.max_stream_seconds (4 h), and the fixture's utterances are far shorter than
// limits.max_utterance_seconds (30 s).
//
// Four cases: simple and segmented mode, each with 16 kHz mono s16le and 48 kHz stereo s16le.
// The audio is the hello fixture (16 kHz mono speech) looped to `seconds`; for 48 kHz stereo it
// is upsampled x3 by linear interpolation and the same signal put on both channels (quality does
// not matter: it is load). Per run: connect, send the start (no interim results), wait for
// `started`, then send the audio in `frame_ms` frames as fast as the socket takes them (at most
// 1 MiB handed to `ws` and not yet written to the kernel; when the server stops reading under
// its flow control, limits.max_buffered_seconds, the client simply waits), send the stop and
// wait for `end`. Measured: wall time from the first frame to `end`; x real time = audio seconds
// / wall seconds; server CPU seconds per audio second over the same interval (the server's
// threads from /proc/<pid>/task/*/schedstat, exact run time; any child processes from their
// utime+stime). `end` is checked: every sample counted, no errors.
// Each case gets one unmeasured warm-up run, then `runs` measured runs on the same server (a new
// connection each); the best and the median are reported beside the issue's goals: simple
// >= 1000x (16 kHz mono) and >= 500x (48 kHz stereo), segmented >= 150x (16 kHz mono) and
// >= 120x (48 kHz stereo). Also the client's own CPU (this process, on the same cores) and the
// ceiling the cores allow: cores / (server + client CPU per audio second), the x real time if
// both kept every core busy. Figures from a busy machine are indicative only.
//
// Run: node bench/single-stream.bench.ts [runs=3] [seconds=60] [frame_ms=250]
// BENCH_SERVER_ARGS adds Node options to the server; BENCH_CASES runs only the cases it names. Writes bench/results/single-stream.json.
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import type { AudioFormat } from '../schemas/audio-format.ts'
import type { EndEvent, ErrorEvent } from '../schemas/events.ts'
import type { Mode } from '../schemas/messages.ts'
import { loadFixture } from '../test/helpers/fixtures.ts'
import { WsClient } from '../test/helpers/ws-client.ts'
import { processCpuSeconds, threadCpuSeconds, treeCpuSeconds } from './proc-stats.ts'
import { freePort, killOnExit, startServer, stopServer, ZERO_DELAY_MODEL } from './server-process.ts'

const runs = Math.max(1, Math.floor(Number(process.argv[2] ?? 3)))
const seconds = Number(process.argv[3] ?? 60)
const frameMs = Number(process.argv[4] ?? 250)
const here = fileURLToPath(new URL('.', import.meta.url))
const MAX_FRAME_BYTES = 1048576 // limits.max_frame_bytes, the default
const WINDOW_BYTES = 1048576 // handed to ws and not yet written to the kernel
const END_TIMEOUT_MS = 120_000

// ---- audio

interface Case {
  name: string
  mode: Mode
  format: AudioFormat
  pcm: Uint8Array
  frameBytes: number
  goal: number // x real time
}

const fixture = loadFixture('hello_16k_mono')
const mono16k = new Int16Array(fixture.pcm.buffer.slice(fixture.pcm.byteOffset, fixture.pcm.byteOffset + fixture.pcm.byteLength))

/** The fixture looped to `samples` samples. */
function looped (source: Int16Array, samples: number): Int16Array {
  const out = new Int16Array(samples)
  for (let at = 0; at < samples; at += source.length) out.set(source.subarray(0, Math.min(source.length, samples - at)), at)
  return out
}

/** x3 by linear interpolation, the same signal on two interleaved channels. */
function stereo48k (source: Int16Array): Int16Array {
  const out = new Int16Array(source.length * 3 * 2)
  for (let i = 0; i < source.length; i++) {
    const a = source[i] as number
    const b = source[Math.min(source.length - 1, i + 1)] as number
    for (let k = 0; k < 3; k++) {
      const v = Math.round(a + (b - a) * k / 3)
      out[(i * 3 + k) * 2] = v
      out[(i * 3 + k) * 2 + 1] = v
    }
  }
  return out
}

const bytesOf = (samples: Int16Array): Uint8Array => new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength)
const audio16k = looped(mono16k, Math.round(seconds * 16000))
const audio48k = stereo48k(audio16k)
const FORMAT_16K: AudioFormat = { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }
const FORMAT_48K: AudioFormat = { channels: 2, sample_rate: 48000, bit_depth: 16, is_float: false }

function frameBytesOf (format: AudioFormat): number {
  const bytesPerFrame = format.channels * format.bit_depth / 8
  const bytes = Math.round(format.sample_rate * frameMs / 1000) * bytesPerFrame
  if (bytes > MAX_FRAME_BYTES) throw new Error(`${frameMs} ms of ${format.sample_rate} Hz x ${format.channels} is ${bytes} bytes, over limits.max_frame_bytes (${MAX_FRAME_BYTES})`)
  return bytes
}

const allCases: Case[] = [
  { name: 'simple 16k mono', mode: 'simple', format: FORMAT_16K, pcm: bytesOf(audio16k), frameBytes: frameBytesOf(FORMAT_16K), goal: 1000 },
  { name: 'simple 48k stereo', mode: 'simple', format: FORMAT_48K, pcm: bytesOf(audio48k), frameBytes: frameBytesOf(FORMAT_48K), goal: 500 },
  { name: 'segmented 16k mono', mode: 'segmented', format: FORMAT_16K, pcm: bytesOf(audio16k), frameBytes: frameBytesOf(FORMAT_16K), goal: 150 },
  { name: 'segmented 48k stereo', mode: 'segmented', format: FORMAT_48K, pcm: bytesOf(audio48k), frameBytes: frameBytesOf(FORMAT_48K), goal: 120 }
]
// BENCH_CASES picks cases by name (comma-separated parts of a name, e.g. "segmented 48k"), for a
// profile of one case (BENCH_SERVER_ARGS=--cpu-prof).
const picked = (process.env.BENCH_CASES ?? '').split(',').map((part) => part.trim()).filter((part) => part !== '')
const cases = picked.length === 0 ? allCases : allCases.filter((c) => picked.some((part) => c.name.includes(part)))
if (cases.length === 0) throw new Error(`BENCH_CASES=${process.env.BENCH_CASES ?? ''} names none of: ${allCases.map((c) => c.name).join(', ')}`)

// ---- server CPU

// The server's threads by their exact run time (schedstat), keyed name#tid, and its child
// processes (if any) by utime+stime.
interface CpuSnapshot { threads: Map<string, number>, children: number }
function cpuSnapshot (pid: number): CpuSnapshot {
  return { threads: threadCpuSeconds(pid), children: treeCpuSeconds(pid) - processCpuSeconds(pid) }
}
function cpuBetween (from: CpuSnapshot, to: CpuSnapshot): number {
  let total = to.children - from.children
  for (const [key, value] of to.threads) total += value - (from.threads.get(key) ?? 0)
  return total
}
// The same interval by thread name (the main thread, 'vad-worker', 'model-worker', libuv's pool...),
// so a figure says which thread it is spent on.
function cpuByThreadName (from: CpuSnapshot, to: CpuSnapshot): Record<string, number> {
  const byName: Record<string, number> = {}
  for (const [key, value] of to.threads) {
    const name = key.slice(0, key.lastIndexOf('#'))
    byName[name] = (byName[name] ?? 0) + value - (from.threads.get(key) ?? 0)
  }
  return byName
}

// ---- one run

interface RunFigures {
  wallSeconds: number // first frame to `end`
  sendSeconds: number // first frame to the last one written to the kernel
  xRealTime: number
  cpuSeconds: number
  cpuPerAudioSecond: number
  cpuByThread: Record<string, number> // ms per audio second, by thread name
  // This process (the client: framing, masking and sending, on the same cores) per audio second.
  clientCpuPerAudioSecond: number
  // What the cores allow: x real time if server and client kept every core busy
  // (cores / (server + client CPU per audio second)).
  cpuCeilingXRealTime: number
  segments: number[]
  errors: string[]
}

// Sends `pcm` in frames as fast as the socket takes them: at most WINDOW_BYTES handed to ws and
// not yet written (the send callbacks say when a frame is written to the kernel).
async function sendFast (socket: WebSocket, pcm: Uint8Array, frameBytes: number): Promise<void> {
  // Changed by the send callbacks.
  const state: { unwritten: number, failure: Error | null, wake: (() => void) | null } = { unwritten: 0, failure: null, wake: null }
  const written = async (): Promise<void> => { await new Promise<void>((resolve) => { state.wake = resolve }) }
  for (let at = 0; at < pcm.length; at += frameBytes) {
    while (state.unwritten > WINDOW_BYTES && state.failure === null) await written()
    if (state.failure !== null) throw state.failure
    if (socket.readyState !== WebSocket.OPEN) throw new Error('the socket closed while sending')
    const frame = pcm.subarray(at, at + frameBytes)
    state.unwritten += frame.length
    socket.send(frame, (error) => {
      if (error !== undefined && error !== null) state.failure = error
      state.unwritten -= frame.length
      const wake = state.wake
      state.wake = null
      wake?.()
    })
  }
  while (state.unwritten > 0 && state.failure === null) await written()
  if (state.failure !== null) throw state.failure
}

async function runOnce (port: number, pid: number, c: Case): Promise<RunFigures> {
  const client = await WsClient.connect(`ws://127.0.0.1:${port}/api/v1/${c.mode}`)
  try {
    client.start(c.format, { interim_results: false })
    await client.waitFor((e) => e.type === 'started', 0, 10_000)
    const cpuFrom = cpuSnapshot(pid)
    const clientFrom = process.cpuUsage()
    const t0 = performance.now()
    await sendFast(client.socket, c.pcm, c.frameBytes)
    const sent = performance.now()
    client.stop()
    const end = await client.waitFor((e) => e.type === 'end', 0, END_TIMEOUT_MS) as EndEvent
    const t1 = performance.now()
    const cpuTo = cpuSnapshot(pid)
    const clientUsage = process.cpuUsage(clientFrom)
    const cpu = cpuBetween(cpuFrom, cpuTo)
    const audioSeconds = c.pcm.length / (c.format.sample_rate * c.format.channels * c.format.bit_depth / 8)
    const errors = client.events.filter((e): e is ErrorEvent => e.type === 'error').map((e) => `${e.code}: ${e.message}`)
    const expected = c.pcm.length / (c.format.channels * c.format.bit_depth / 8)
    for (const [channel, samples] of end.samples_received.entries()) {
      if (samples !== expected) errors.push(`end counts ${samples} samples on channel ${channel}, ${expected} were sent`)
    }
    const wallSeconds = (t1 - t0) / 1000
    const cpuByThread: Record<string, number> = {}
    for (const [name, value] of Object.entries(cpuByThreadName(cpuFrom, cpuTo))) {
      if (value * 1000 / audioSeconds >= 0.01) cpuByThread[name] = value * 1000 / audioSeconds
    }
    const clientCpuPerAudioSecond = (clientUsage.user + clientUsage.system) / 1e6 / audioSeconds
    const cpuCeilingXRealTime = cpus().length / (cpu / audioSeconds + clientCpuPerAudioSecond)
    return { wallSeconds, sendSeconds: (sent - t0) / 1000, xRealTime: audioSeconds / wallSeconds, cpuSeconds: cpu, cpuPerAudioSecond: cpu / audioSeconds, cpuByThread, clientCpuPerAudioSecond, cpuCeilingXRealTime, segments: end.segments, errors }
  } finally {
    client.close()
  }
}

// ---- the run

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

interface CaseResult {
  name: string
  mode: Mode
  format: AudioFormat
  audioSeconds: number
  frameBytes: number
  goalXRealTime: number
  bestXRealTime: number
  medianXRealTime: number
  bestCpuPerAudioSecond: number
  medianCpuPerAudioSecond: number
  medianCpuCeilingXRealTime: number
  runs: RunFigures[]
}

console.log(`single-stream: ${seconds} s of audio per run, ${frameMs} ms frames, ${runs} runs per case after a warm-up; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
const port = await freePort()
let server: ChildProcess | null = null
const results: CaseResult[] = []
let failed = false
try {
  server = await startServer(port, { model: { options: ZERO_DELAY_MODEL } }, 'single-stream-')
  killOnExit(server)
  const pid = server.pid as number
  for (const c of cases) {
    await runOnce(port, pid, c) // warm-up
    const figures: RunFigures[] = []
    for (let r = 0; r < runs; r++) {
      await sleep(300)
      const f = await runOnce(port, pid, c)
      figures.push(f)
      console.log(`  ${c.name} run ${r + 1}: ${f.xRealTime.toFixed(0)}x real time (${(f.wallSeconds * 1000).toFixed(0)} ms wall, sent in ${(f.sendSeconds * 1000).toFixed(0)} ms), server CPU ${(f.cpuPerAudioSecond * 1000).toFixed(2)} ms per audio second (${Object.entries(f.cpuByThread).sort((a, b) => b[1] - a[1]).map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(', ')}), client CPU ${(f.clientCpuPerAudioSecond * 1000).toFixed(2)} ms, ceiling ${f.cpuCeilingXRealTime.toFixed(0)}x, segments ${f.segments.join('+')}${f.errors.length > 0 ? `, errors: ${f.errors.slice(0, 3).join('; ')}` : ''}`)
      if (f.errors.length > 0) failed = true
    }
    const x = figures.map((f) => f.xRealTime)
    const cpu = figures.map((f) => f.cpuPerAudioSecond)
    results.push({
      name: c.name,
      mode: c.mode,
      format: c.format,
      audioSeconds: seconds,
      frameBytes: c.frameBytes,
      goalXRealTime: c.goal,
      bestXRealTime: Math.max(...x),
      medianXRealTime: median(x),
      bestCpuPerAudioSecond: Math.min(...cpu),
      medianCpuPerAudioSecond: median(cpu),
      medianCpuCeilingXRealTime: median(figures.map((f) => f.cpuCeilingXRealTime)),
      runs: figures
    })
  }
} catch (error) {
  console.error(error)
  failed = true
} finally {
  if (server !== null) await stopServer(server)
}

const met = (value: number, goal: number): string => value >= goal ? 'met' : 'NOT met'
console.log(`\nceiling: x real time if the server and this client kept all ${cpus().length} cores busy, ${cpus().length} / (server + client CPU per audio second)`)
console.log('| case | x real time, best | x real time, median | goal | server CPU ms / audio s, best | server CPU ms / audio s, median | ceiling, median |')
console.log('| --- | --- | --- | --- | --- | --- | --- |')
for (const r of results) {
  console.log(`| ${r.name} | ${r.bestXRealTime.toFixed(0)}x (${met(r.bestXRealTime, r.goalXRealTime)}) | ${r.medianXRealTime.toFixed(0)}x (${met(r.medianXRealTime, r.goalXRealTime)}) | >= ${r.goalXRealTime}x | ${(r.bestCpuPerAudioSecond * 1000).toFixed(2)} | ${(r.medianCpuPerAudioSecond * 1000).toFixed(2)} | ${r.medianCpuCeilingXRealTime.toFixed(0)}x |`)
}
mkdirSync(join(here, 'results'), { recursive: true })
const out = join(here, 'results', 'single-stream.json')
writeFileSync(out, JSON.stringify({
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: totalmem() / 2 ** 30, node: process.version, loadAverage: loadavg() },
  seconds,
  frameMs,
  runs,
  failed,
  results
}, null, 2))
console.log(`wrote ${out}`)
process.exit(failed || results.length < cases.length ? 1 : 0)
