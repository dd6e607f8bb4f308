// What the stream bounds (idle and duration limits, flow control, the outbound bound, the
// inference deadline) cost and buy, each figure beside its twin from a server run without them
// (every bound set very large). The real server runs as a child process (`node src/server.ts`,
// STREAMER_CONFIG naming a temporary config file, a free loopback port) and is driven by `ws`
// clients from this process.
// 1. Flooder: a client sends ~60 s of speech as fast as its socket takes it (segmented, interim
//    results) to the slow dummy model (jitter and failures off, 2 threads); once ~10 s are sent,
//    a normal client streams the hello fixture at real time. Its final latency per utterance
//    (from the moment the frame holding the utterance's true end was sent) against its own
//    latency alone on the same server; the goal: at most solo + one inference of a 2.5 s
//    utterance. Also the server's RSS before and at its peak, and what the flooder's `end` says.
// 2. Capacity: N real-time streams (zero-delay dummy): server CPU per second of audio per stream
//    over the part where every stream is live, and final latency p50/p99 from the true end of
//    speech. With and without the bounds these should be the same within noise; the two servers
//    run side by side and take turns (see capacityScenario).
// Run: node bench/bounded-streams.bench.ts [streams, default 50] [fixture repetitions per
// capacity stream, default 2] [capacity rounds per variant, default 2]. Prints a table; writes
// bench/results/bounded-streams.json.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import type { EndEvent, SegmentEvent, StreamEvent } from '../schemas/events.ts'
import { ENV } from '../src/config.ts'
import { loadFixture } from '../test/helpers/fixtures.ts'
import { processCpuSeconds, rssKb } from './proc-stats.ts'
import { freePort, unreadBytes } from './server-process.ts'

const streams = Math.max(1, Math.floor(Number(process.argv[2] ?? 50)))
const repetitions = Math.max(1, Math.floor(Number(process.argv[3] ?? 2)))
const rounds = Math.max(1, Math.floor(Number(process.argv[4] ?? 2)))
const root = fileURLToPath(new URL('..', import.meta.url))
const resultsFile = fileURLToPath(new URL('./results/bounded-streams.json', import.meta.url))

const fixture = loadFixture('hello_16k_mono') // 16 kHz s16 mono
const BYTES_PER_SECOND = 32000
const FRAME_BYTES = 640 // 20 ms
const FRAME_MS = 20
const FIXTURE_SECONDS = fixture.pcm.length / BYTES_PER_SECOND
const TRUTH = fixture.speech[0] ?? []
const STAGGER_MS = Math.min(2000, streams * 40) // capacity streams start spread over this

const SLOW_MODEL = { delay: 0.5, constant_factor: 0.3, jitter: 0, failure_rate: 0, panic_rate: 0, warmup_penalty: 10 }
const ZERO_MODEL = { delay: 0, constant_factor: 0, jitter: 0, failure_rate: 0, panic_rate: 0, warmup_penalty: 1 }
// The goal: a normal client waits at most one inference of someone else's, about one
// of a 2.5 s utterance.
const ONE_INFERENCE = SLOW_MODEL.delay + SLOW_MODEL.constant_factor * 2.5

type Variant = 'bounded' | 'unbounded'
const VARIANTS: Variant[] = ['bounded', 'unbounded']
const VARIANT_LABEL: Record<Variant, string> = { bounded: 'default limits', unbounded: 'without limits' }
// 'bounded' leaves every bound at its default (nothing in the config file).
const UNBOUNDED = {
  model: { timeout_seconds: 1e6 },
  limits: { idle_timeout_seconds: 3600, max_stream_seconds: 1e6, max_buffered_seconds: 1e6, max_outbound_bytes: 2 ** 31 - 1 }
}

type Json = Record<string, unknown>

// ---- the server process ------------------------------------------------------------------

const running = new Set<ChildProcess>()
process.on('exit', () => { for (const child of running) child.kill('SIGKILL') })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of running) child.kill('SIGKILL')
    process.exit(130)
  })
}

function mergeConfig (base: Json, over: Json): Json {
  const out: Json = { ...base }
  for (const [key, value] of Object.entries(over)) {
    const below = out[key]
    const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
    out[key] = isObject(value) && isObject(below) ? mergeConfig(below, value) : value
  }
  return out
}

class ServerProcess {
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  readonly #dir: string
  #log = ''
  #warnings = 0
  readonly #exited: Promise<number | null>

  private constructor (child: ChildProcess, port: number, dir: string) {
    this.child = child
    this.pid = child.pid as number
    this.port = port
    this.#dir = dir
    const keep = (chunk: Buffer): void => {
      const text = chunk.toString()
      this.#warnings += text.split('\n').filter((line) => line.trim() !== '').length
      this.#log = (this.#log + text).slice(-8000)
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    this.#exited = new Promise((resolve) => { child.once('exit', (code) => { running.delete(child); resolve(code) }) })
  }

  get url (): string { return `ws://127.0.0.1:${this.port}` }
  /** Lines the server wrote (at log level warn and above) and the last of them. */
  get logLines (): number { return this.#warnings }
  get logTail (): string { return this.#log }

  static async start (config: Json): Promise<ServerProcess> {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      const dir = mkdtempSync(join(tmpdir(), 'streamer-bench-'))
      const file = join(dir, 'config.json')
      writeFileSync(file, JSON.stringify(mergeConfig(config, { host: '127.0.0.1', port, log_level: 'warn' })))
      // The config file decides: no variable of the caller's environment overrides it.
      const env: NodeJS.ProcessEnv = { ...process.env, STREAMER_CONFIG: file, CI: '1' }
      for (const [name] of ENV) delete env[name]
      for (const name of Object.keys(env)) if (name.startsWith('OTEL_')) delete env[name]
      const child = spawn(process.execPath, ['src/server.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
      running.add(child)
      const server = new ServerProcess(child, port, dir)
      try {
        await server.#waitReady(60_000)
        return server
      } catch (error) {
        await server.stop()
        // Another process may have taken the port between the probe and the listen.
        if (attempt >= 3 || !server.logTail.includes('already in use')) throw error
      }
    }
  }

  async #waitReady (timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs
    let exited = false
    void this.#exited.then(() => { exited = true })
    while (performance.now() < deadline) {
      if (exited) throw new Error(`server exited before it was ready: ${this.#log.trim()}`)
      const ok = await fetch(`http://127.0.0.1:${this.port}/api/v1/ready`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false)
      if (ok) return
      await sleep(100)
    }
    throw new Error(`server not ready within ${timeoutMs} ms: ${this.#log.trim()}`)
  }

  /** Resident set size in kB, or null once the process is gone. */
  rssKb (): number | null {
    return rssKb(this.pid)
  }

  /** CPU seconds of the whole process (every thread): utime + stime. */
  cpuSeconds (): number {
    return processCpuSeconds(this.pid)
  }

  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  async stop (): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM')
      const timer = setTimeout(() => { this.child.kill('SIGKILL') }, 5000)
      await this.#exited
      clearTimeout(timer)
    }
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

// /proc sampled every 100 ms: RSS, CPU time and the unread bytes, with their moment.
interface ProcSample { at: number, rssKb: number, cpu: number, unread: number }
class ProcSampler {
  readonly samples: ProcSample[] = []
  readonly #timer: NodeJS.Timeout

  constructor (server: ServerProcess) {
    const take = (): void => {
      const rssKb = server.rssKb()
      if (rssKb === null) return
      try {
        this.samples.push({ at: performance.now(), rssKb, cpu: server.cpuSeconds(), unread: unreadBytes(server.port) })
      } catch { /* the process ended */ }
    }
    take()
    this.#timer = setInterval(take, 100)
  }

  stop (): void { clearInterval(this.#timer) }
  get peakRssKb (): number { return Math.max(0, ...this.samples.map((s) => s.rssKb)) }
  get peakUnread (): number { return Math.max(0, ...this.samples.map((s) => s.unread)) }
}

// ---- clients -------------------------------------------------------------------------------

interface Arrival { at: number, event: StreamEvent }

class BenchClient {
  readonly socket: WebSocket
  readonly arrivals: Arrival[] = []
  #closed = false
  readonly #waiters = new Set<() => void>()

  private constructor (socket: WebSocket) {
    this.socket = socket
    socket.on('message', (data) => {
      this.arrivals.push({ at: performance.now(), event: JSON.parse(data.toString()) as StreamEvent })
      this.#wake()
    })
    socket.on('close', () => { this.#closed = true; this.#wake() })
    socket.on('error', () => { this.#closed = true; this.#wake() })
  }

  static async connect (url: string): Promise<BenchClient> {
    const socket = new WebSocket(url, { perMessageDeflate: false })
    const client = new BenchClient(socket)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`no connection to ${url} within 10 s`)) }, 10_000)
      socket.once('open', () => { clearTimeout(timer); resolve() })
      socket.once('error', (error) => { clearTimeout(timer); reject(error) })
    })
    return client
  }

  #wake (): void {
    for (const wake of this.#waiters) wake()
    this.#waiters.clear()
  }

  start (interim: boolean): void {
    this.socket.send(JSON.stringify({ request: 'start', format: fixture.format, interim_results: interim }))
  }

  stop (): number {
    this.socket.send(JSON.stringify({ request: 'stop' }))
    return performance.now()
  }

  /** The first event matching `predicate`, waiting at most `timeoutMs`; null if none came. */
  async waitFor (predicate: (event: StreamEvent) => boolean, timeoutMs: number): Promise<Arrival | null> {
    const deadline = performance.now() + timeoutMs
    while (true) {
      const found = this.arrivals.find((a) => predicate(a.event))
      if (found !== undefined) return found
      const left = deadline - performance.now()
      if (this.#closed || left <= 0) return null
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000))
        this.#waiters.add(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  get end (): EndEvent | undefined {
    return this.arrivals.find((a) => a.event.type === 'end')?.event as EndEvent | undefined
  }

  get finals (): Array<{ at: number, event: SegmentEvent }> {
    return this.arrivals.flatMap((a) => a.event.type === 'segment' && a.event.is_final === true ? [{ at: a.at, event: a.event }] : [])
  }

  count (predicate: (event: StreamEvent) => boolean): number {
    return this.arrivals.filter((a) => predicate(a.event)).length
  }

  close (): void {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate()
  }
}

// Sends `pcm` in 20 ms frames paced at real time (absolute schedule: no drift). Returns when
// each frame was handed to the socket.
async function sendRealTime (client: BenchClient, pcm: Uint8Array): Promise<number[]> {
  const sentAt: number[] = []
  const t0 = performance.now()
  const frames = Math.ceil(pcm.length / FRAME_BYTES)
  for (let i = 0; i < frames && client.socket.readyState === WebSocket.OPEN; i++) {
    client.socket.send(pcm.subarray(i * FRAME_BYTES, (i + 1) * FRAME_BYTES))
    sentAt.push(performance.now())
    const wait = t0 + (i + 1) * FRAME_MS - performance.now()
    if (wait > 0) await sleep(wait)
  }
  return sentAt
}

interface FloodResult { sentBytes: number, takenBytes: number, seconds: number }

// Sends `pcm` in 20 ms frames as fast as the socket takes them: at most `window` bytes handed to
// `ws` and not yet written to the kernel. `onTaken` hears the bytes written so far.
async function flood (client: BenchClient, pcm: Uint8Array, onTaken: (bytes: number) => void, timeoutMs: number): Promise<FloodResult> {
  const window = 64 * 1024
  const started = performance.now()
  const deadline = started + timeoutMs
  let sent = 0
  let taken = 0
  let wake: (() => void) | null = null
  const unwritten = (): number => sent - taken // changed by the send callbacks
  const waitTaken = (): Promise<void> => new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 50)
    wake = () => { clearTimeout(timer); resolve() }
  })
  for (let at = 0; at < pcm.length && performance.now() < deadline && client.socket.readyState === WebSocket.OPEN; at += FRAME_BYTES) {
    while (unwritten() > window && performance.now() < deadline) await waitTaken()
    const frame = pcm.subarray(at, at + FRAME_BYTES)
    sent += frame.length
    client.socket.send(frame, (error) => {
      if (error !== undefined && error !== null) return
      taken += frame.length
      onTaken(taken)
      const w: (() => void) | null = wake
      wake = null
      w?.()
    })
  }
  while (unwritten() > 0 && performance.now() < deadline && client.socket.readyState === WebSocket.OPEN) await waitTaken()
  return { sentBytes: sent, takenBytes: taken, seconds: (performance.now() - started) / 1000 }
}

// Per true utterance (speech region in stream seconds): the arrival of the last final that
// overlaps it, minus the moment the frame holding its true end was sent; null if no final.
function utteranceLatencies (finals: Array<{ at: number, event: SegmentEvent }>, sentAt: number[], truth: Array<[number, number]>): Array<number | null> {
  return truth.map(([start, end]) => {
    const matching = finals.filter((f) => f.event.start_time < end && f.event.end_time > start)
    const frame = Math.min(sentAt.length - 1, Math.floor(end * 1000 / FRAME_MS))
    const sent = sentAt[frame]
    const last = matching.at(-1)
    return last === undefined || sent === undefined ? null : (last.at - sent) / 1000
  })
}

function truthFor (reps: number): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (let k = 0; k < reps; k++) for (const [s, e] of TRUTH) out.push([s + k * FIXTURE_SECONDS, e + k * FIXTURE_SECONDS])
  return out
}

function repeated (reps: number): Uint8Array {
  return Buffer.concat(Array.from({ length: reps }, () => fixture.pcm))
}

function percentile (values: number[], p: number): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] as number
}

const round = (value: number | null, digits = 3): number | null => value === null ? null : Number(value.toFixed(digits))

// One normal client: connect, stream the fixture at real time (segmented, no interim results),
// stop, wait for `end`.
interface NormalRun { latencies: Array<number | null>, endLatency: number | null, finals: number, errors: number }
async function normalClient (url: string): Promise<NormalRun> {
  const client = await BenchClient.connect(`${url}/api/v1/segmented`)
  try {
    client.start(false)
    const sentAt = await sendRealTime(client, fixture.pcm)
    const stoppedAt = client.stop()
    const end = await client.waitFor((e) => e.type === 'end', 30_000)
    return {
      latencies: utteranceLatencies(client.finals, sentAt, TRUTH).map((v) => round(v)),
      endLatency: end === null ? null : round((end.at - stoppedAt) / 1000),
      finals: client.finals.length,
      errors: client.count((e) => e.type === 'error')
    }
  } finally {
    client.close()
  }
}

// ---- scenario 1: the flooder -----------------------------------------------------------------

interface FlooderFigures {
  solo: NormalRun
  withFlooder: NormalRun
  goal: Array<{ utterance: number, solo: number | null, withFlooder: number | null, bound: number | null, met: boolean }>
  rssReadyMb: number | null
  rssBeforeMb: number | null
  rssPeakMb: number
  // Peak of the audio waiting in the kernel, unread by the server (seconds of the flooder's audio).
  unreadPeakSeconds: number
  flooder: {
    gotEnd: boolean
    sentSamples: number
    samplesInEnd: number | null
    secondsToHandOver: number
    secondsToEnd: number | null
    finals: number
    interims: number
    interimsDropped: number | null
    errors: string[]
  }
  serverLogLines: number
}

async function flooderScenario (variant: Variant): Promise<FlooderFigures> {
  const base: Json = { model: { threads: 2, options: SLOW_MODEL } }
  const server = await ServerProcess.start(variant === 'bounded' ? base : mergeConfig(base, UNBOUNDED))
  try {
    const kb = (v: number | null): number | null => v === null ? null : round(v / 1024, 1)
    const rssReady = server.rssKb()
    const solo = await normalClient(server.url)
    const rssBefore = server.rssKb()
    const sampler = new ProcSampler(server)
    const flooder = await BenchClient.connect(`${server.url}/api/v1/segmented`)
    try {
      const audio = repeated(Math.round(60 / FIXTURE_SECONDS)) // ~60 s of speech
      const started = performance.now()
      flooder.start(true)
      let normal: Promise<NormalRun> | null = null
      const floodRun = flood(flooder, audio, (bytes) => {
        if (normal !== null || bytes < 10 * BYTES_PER_SECOND) return
        normal = normalClient(server.url)
        normal.catch(() => {}) // awaited below; this only keeps an early failure from being unhandled
      }, 90_000)
      const flooded = await floodRun
      flooder.stop()
      const end = await flooder.waitFor((e) => e.type === 'end', Math.max(1000, 120_000 - (performance.now() - started)))
      const withFlooder = await (normal ?? normalClient(server.url))
      sampler.stop()
      const endEvent = flooder.end
      return {
        solo,
        withFlooder,
        goal: TRUTH.map((_, i) => {
          const s = solo.latencies[i] ?? null
          const w = withFlooder.latencies[i] ?? null
          const bound = s === null ? null : round(s + ONE_INFERENCE)
          return { utterance: i + 1, solo: s, withFlooder: w, bound, met: bound !== null && w !== null && w <= bound }
        }),
        rssReadyMb: kb(rssReady),
        rssBeforeMb: kb(rssBefore),
        rssPeakMb: kb(sampler.peakRssKb) as number,
        unreadPeakSeconds: round(sampler.peakUnread / BYTES_PER_SECOND, 2) as number,
        flooder: {
          gotEnd: end !== null,
          sentSamples: flooded.takenBytes / 2,
          samplesInEnd: endEvent?.samples_received[0] ?? null,
          secondsToHandOver: round(flooded.seconds, 2) as number,
          secondsToEnd: end === null ? null : round((end.at - started) / 1000, 2),
          finals: flooder.finals.length,
          interims: flooder.count((e) => e.type === 'segment' && e.is_final === false),
          interimsDropped: endEvent?.interim_segments_dropped[0] ?? null,
          errors: flooder.arrivals.flatMap((a) => a.event.type === 'error' ? [a.event.code] : [])
        },
        serverLogLines: server.logLines
      }
    } finally {
      sampler.stop()
      flooder.close()
    }
  } finally {
    await server.stop()
  }
}

// ---- scenario 2: capacity at real time -----------------------------------------------------
// Other processes may share the CPUs, and what they take moves the CPU time a stream costs by
// tens of percent from one minute to the next. So both servers run side by side (the idle one
// costs nothing) and take turns, ABBA, `rounds` times each: each variant's figure is its best
// round, and the spread of its rounds says how large the noise was.

interface CapacityRound {
  steadySeconds: number
  cpuMsPerAudioSecond: number | null
  latencies: number[]
  utterances: number
  streamsEnded: number
  errors: number
  rssPeakKb: number
}

interface CapacityFigures {
  streams: number
  rounds: number
  audioSecondsPerStream: number
  steadySeconds: number[]
  // Server CPU (every thread) per second of audio per stream, ms: the best round, then each round.
  cpuMsPerAudioSecond: number | null
  cpuMsPerAudioSecondRounds: Array<number | null>
  idleCpuMsPerWallSecond: number
  netCpuMsPerAudioSecond: number | null
  latencyP50: number | null
  latencyP99: number | null
  latencyMax: number | null
  latencies: number[] // every utterance's of every round, sorted
  finalsMatched: number
  utterances: number
  streamsEnded: number
  errors: number
  rssPeakMb: number
  serverLogLines: number
}

async function capacityRound (server: ServerProcess, audio: Uint8Array, truth: Array<[number, number]>): Promise<CapacityRound> {
  const clients: BenchClient[] = []
  try {
    for (let i = 0; i < streams; i++) clients.push(await BenchClient.connect(`${server.url}/api/v1/segmented`))
    const staggerMs = STAGGER_MS / streams
    const sampler = new ProcSampler(server)
    const runs = await Promise.all(clients.map(async (client, i) => {
      await sleep(i * staggerMs)
      client.start(true)
      const sentAt = await sendRealTime(client, audio)
      client.stop()
      const end = await client.waitFor((e) => e.type === 'end', 30_000)
      return { sentAt, end: end !== null, latencies: utteranceLatencies(client.finals, sentAt, truth), errors: client.count((e) => e.type === 'error') }
    }))
    sampler.stop()
    // The steady part: from the last stream's first frame to the first stream's last frame,
    // a quarter of a second in from each side.
    const from = Math.max(...runs.map((r) => r.sentAt[0] ?? Infinity)) + 250
    const to = Math.min(...runs.map((r) => r.sentAt.at(-1) ?? -Infinity)) - 250
    const inWindow = sampler.samples.filter((s) => s.at >= from && s.at <= to)
    const first = inWindow[0]
    const last = inWindow.at(-1)
    const steady = first !== undefined && last !== undefined && last.at > first.at ? (last.at - first.at) / 1000 : 0
    const cpu = first !== undefined && last !== undefined ? last.cpu - first.cpu : 0
    const audioSeconds = steady * streams
    return {
      steadySeconds: steady,
      cpuMsPerAudioSecond: audioSeconds > 0 ? cpu * 1000 / audioSeconds : null,
      latencies: runs.flatMap((r) => r.latencies.filter((v): v is number => v !== null)),
      utterances: truth.length * streams,
      streamsEnded: runs.filter((r) => r.end).length,
      errors: runs.reduce((n, r) => n + r.errors, 0),
      rssPeakKb: sampler.peakRssKb
    }
  } finally {
    for (const client of clients) client.close()
  }
}

async function capacityScenario (): Promise<Record<Variant, CapacityFigures>> {
  const base: Json = { model: { threads: 2, options: ZERO_MODEL } }
  const servers = new Map<Variant, ServerProcess>()
  try {
    for (const variant of VARIANTS) servers.set(variant, await ServerProcess.start(variant === 'bounded' ? base : mergeConfig(base, UNBOUNDED)))
    const serverOf = (variant: Variant): ServerProcess => servers.get(variant) as ServerProcess
    const idleFrom = VARIANTS.map((v) => serverOf(v).cpuSeconds())
    await sleep(2000)
    const idle = VARIANTS.map((v, i) => (serverOf(v).cpuSeconds() - (idleFrom[i] as number)) / 2)
    const audio = repeated(repetitions)
    const truth = truthFor(repetitions)
    const done: Record<Variant, CapacityRound[]> = { bounded: [], unbounded: [] }
    for (let turn = 0; turn < rounds; turn++) {
      for (const variant of turn % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
        console.log(`  round ${turn + 1}, ${VARIANT_LABEL[variant]}`)
        done[variant].push(await capacityRound(serverOf(variant), audio, truth))
      }
    }
    const summary = (variant: Variant, idlePerSecond: number): CapacityFigures => {
      const all = done[variant]
      const cpus = all.map((r) => r.cpuMsPerAudioSecond)
      const measured = cpus.filter((v): v is number => v !== null)
      const best = measured.length > 0 ? Math.min(...measured) : null
      const latencies = all.flatMap((r) => r.latencies).sort((a, b) => a - b)
      return {
        streams,
        rounds,
        audioSecondsPerStream: round(audio.length / BYTES_PER_SECOND, 2) as number,
        steadySeconds: all.map((r) => round(r.steadySeconds, 2) as number),
        cpuMsPerAudioSecond: round(best, 2),
        cpuMsPerAudioSecondRounds: cpus.map((v) => round(v, 2)),
        idleCpuMsPerWallSecond: round(idlePerSecond * 1000, 1) as number,
        netCpuMsPerAudioSecond: best === null ? null : round(best - idlePerSecond * 1000 / streams, 2),
        latencyP50: round(percentile(latencies, 0.5)),
        latencyP99: round(percentile(latencies, 0.99)),
        latencyMax: round(percentile(latencies, 1)),
        latencies: latencies.map((v) => round(v) as number),
        finalsMatched: latencies.length,
        utterances: all.reduce((n, r) => n + r.utterances, 0),
        streamsEnded: all.reduce((n, r) => n + r.streamsEnded, 0),
        errors: all.reduce((n, r) => n + r.errors, 0),
        rssPeakMb: round(Math.max(...all.map((r) => r.rssPeakKb)) / 1024, 1) as number,
        serverLogLines: serverOf(variant).logLines
      }
    }
    return { bounded: summary('bounded', idle[0] as number), unbounded: summary('unbounded', idle[1] as number) }
  } finally {
    for (const server of servers.values()) await server.stop()
  }
}

// ---- run, print, write ----------------------------------------------------------------------

const startedAt = new Date()
const loadBefore = loadavg()
const flooderResults: Partial<Record<Variant, FlooderFigures | { error: string }>> = {}
const capacityResults: Partial<Record<Variant, CapacityFigures | { error: string }>> = {}
let failures = 0
const failure = (error: unknown): { error: string } => {
  failures++
  const message = error instanceof Error ? error.message : String(error)
  console.error(`  failed: ${message}`)
  return { error: message }
}

for (const variant of VARIANTS) {
  console.log(`flooder scenario, ${VARIANT_LABEL[variant]}...`)
  flooderResults[variant] = await flooderScenario(variant).catch(failure)
}
console.log(`capacity scenario: ${streams} streams x ${(repetitions * FIXTURE_SECONDS).toFixed(1)} s, ${rounds} round(s) per variant...`)
await capacityScenario().then((figures) => { Object.assign(capacityResults, figures) }, (error: unknown) => {
  const recorded = failure(error)
  for (const variant of VARIANTS) capacityResults[variant] = recorded
})
const loadAfter = loadavg()

const cell = (value: unknown): string => {
  if (value === null || value === undefined) return '-'
  if (typeof value === 'number') return String(value)
  if (typeof value === 'boolean') return value ? 'yes' : 'no'
  return String(value)
}
function table (title: string, rows: Array<[string, ...unknown[]]>, headers: string[]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => cell(r[i]).length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)).join('  ')
  console.log(`\n${title}`)
  console.log(line(headers))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const row of rows) console.log(line(row.map(cell)))
}

const isFigures = <T extends object>(r: T | { error: string } | undefined): r is T => r !== undefined && !('error' in r)
const fb = flooderResults.bounded
const fu = flooderResults.unbounded
const f = (pick: (r: FlooderFigures) => unknown): [unknown, unknown] => [isFigures(fb) ? pick(fb) : null, isFigures(fu) ? pick(fu) : null]
const utteranceRows: Array<[string, ...unknown[]]> = TRUTH.flatMap((_, i) => [
  [`utterance ${i + 1}: final latency alone (s)`, ...f((r) => r.solo.latencies[i])],
  [`utterance ${i + 1}: final latency beside the flooder (s)`, ...f((r) => r.withFlooder.latencies[i])],
  [`utterance ${i + 1}: goal, alone + ${ONE_INFERENCE} s (s)`, ...f((r) => r.goal[i]?.bound)],
  [`utterance ${i + 1}: goal met`, ...f((r) => r.goal[i]?.met)]
])
table(`1. Flooder (~60 s of speech as fast as the socket takes it) vs a normal real-time client; dummy delay ${SLOW_MODEL.delay}, constant_factor ${SLOW_MODEL.constant_factor}, 2 threads`, [
  ...utteranceRows,
  ['normal client: end after its stop, alone (s)', ...f((r) => r.solo.endLatency)],
  ['normal client: end after its stop, beside the flooder (s)', ...f((r) => r.withFlooder.endLatency)],
  ['server RSS when ready (MB)', ...f((r) => r.rssReadyMb)],
  ['server RSS before the flooder (MB)', ...f((r) => r.rssBeforeMb)],
  ['server RSS peak during the flood (MB)', ...f((r) => r.rssPeakMb)],
  ['audio unread by the server in kernel buffers, peak (s)', ...f((r) => r.unreadPeakSeconds)],
  ['flooder: audio written to its socket in (s)', ...f((r) => r.flooder.secondsToHandOver)],
  ['flooder: got its end', ...f((r) => r.flooder.gotEnd)],
  ['flooder: end after its start (s)', ...f((r) => r.flooder.secondsToEnd)],
  ['flooder: samples sent', ...f((r) => r.flooder.sentSamples)],
  ['flooder: samples in its end', ...f((r) => r.flooder.samplesInEnd)],
  ['flooder: finals / interims received', ...f((r) => `${r.flooder.finals} / ${r.flooder.interims}`)],
  ['flooder: interims dropped (end)', ...f((r) => r.flooder.interimsDropped)],
  ['flooder: errors', ...f((r) => r.flooder.errors.join(',') || 'none')],
  ['server log lines (warn and above)', ...f((r) => r.serverLogLines)]
], ['', VARIANT_LABEL.bounded, VARIANT_LABEL.unbounded])

const cb = capacityResults.bounded
const cu = capacityResults.unbounded
const c = (pick: (r: CapacityFigures) => number | string | null): [unknown, unknown, unknown] => {
  const b = isFigures(cb) ? pick(cb) : null
  const u = isFigures(cu) ? pick(cu) : null
  return [b, u, typeof b === 'number' && typeof u === 'number' && u !== 0 ? (b / u).toFixed(2) : '']
}
table(`2. Capacity: ${streams} real-time segmented streams (interim results), zero-delay dummy, 20 ms frames, starts staggered over ${(STAGGER_MS / 1000).toFixed(1)} s; latencies over all rounds`, [
  ['server CPU per audio second per stream, best round (ms)', ...c((r) => r.cpuMsPerAudioSecond)],
  ['  each round (ms)', ...c((r) => r.cpuMsPerAudioSecondRounds.map(cell).join(', '))],
  ['  best round, net of idle (ms)', ...c((r) => r.netCpuMsPerAudioSecond)],
  ['idle server CPU (ms per wall second)', ...c((r) => r.idleCpuMsPerWallSecond)],
  ['steady part measured per round (s)', ...c((r) => r.steadySeconds.join(', '))],
  ['final latency from true end of speech, p50 (s)', ...c((r) => r.latencyP50)],
  ['final latency, p99 (s)', ...c((r) => r.latencyP99)],
  ['final latency, max (s)', ...c((r) => r.latencyMax)],
  ['utterances with a final / all', ...c((r) => `${r.finalsMatched} / ${r.utterances}`)],
  ['streams that got their end', ...c((r) => r.streamsEnded)],
  ['error events', ...c((r) => r.errors)],
  ['server RSS peak (MB)', ...c((r) => r.rssPeakMb)],
  ['server log lines (warn and above)', ...c((r) => r.serverLogLines)]
], ['', VARIANT_LABEL.bounded, VARIANT_LABEL.unbounded, 'ratio'])

const machine = { nproc: availableParallelism(), memoryGb: round(totalmem() / 2 ** 30, 1), node: process.version, loadBefore: loadBefore.map((v) => round(v, 2)), loadAfter: loadAfter.map((v) => round(v, 2)) }
console.log(`\nmachine: ${machine.nproc} CPUs, ${machine.memoryGb} GB, node ${machine.node}, load average ${machine.loadBefore.join(' ')} before, ${machine.loadAfter.join(' ')} after (other processes share the CPUs)`)
console.log(`total ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s`)

mkdirSync(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true })
writeFileSync(resultsFile, JSON.stringify({
  bench: 'bounded-streams',
  date: startedAt.toISOString(),
  seconds: round((Date.now() - startedAt.getTime()) / 1000, 1),
  machine,
  settings: { streams, repetitions, rounds, slowModel: SLOW_MODEL, zeroModel: ZERO_MODEL, oneInferenceSeconds: ONE_INFERENCE, unbounded: UNBOUNDED, bounded: 'the defaults' },
  flooder: flooderResults,
  capacity: capacityResults
}, null, 2) + '\n')
console.log(`wrote ${resultsFile}`)
process.exit(failures === 0 ? 0 : 1)
