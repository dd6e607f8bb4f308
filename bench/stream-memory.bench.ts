// Stream memory: what one open stream costs the server in memory, idle and holding a long
// utterance.
//
// The real server is started as `npm start` starts it (bench/server-process.ts:
// `node src/server.ts`, config from STREAMER_CONFIG) with the zero-delay dummy model and
// limits.idle_timeout_seconds raised to 600 (so an idle stream needs no keepalive while it is
// measured; nothing else is sent on it), plus `--inspect` on a free loopback port: before each
// reading the bench asks the server's main isolate for a full GC through the inspector
// (HeapProfiler.collectGarbage), so the figures are of live memory, not of garbage not yet
// collected. Each reading is also taken before that GC, after a settle wait ("settled").
// Memory is the server's RSS (/proc/<pid>/status VmRSS: every thread, the VAD and model workers
// included) and, from its /metrics, the main thread's V8 heap in use
// (streamer_nodejs_heap_size_used_bytes) and the memory of its ArrayBuffers and other objects
// outside the heap (streamer_nodejs_external_memory_bytes). Each figure is a delta from a
// baseline taken on the same server just before (after a warm-up and a forced GC), divided by
// the stream count; "no forced GC" is the loaded reading after the settle wait alone, garbage
// included. KiB and MiB (1024-based); the goals are read as such.
//
// (a) Idle: N WebSocket streams (segmented, 16 kHz mono) that send the start message and
//     nothing else; measured once all have their `started` and a settle wait has passed. The
//     health route's session count is checked against N.
// (b) Utterance: first one stream checks that the synthetic signal is held as one utterance:
//     it sends 35 s of it and no `inactive` or final may come before 29.5 s (the first is the
//     cut at limits.max_utterance_seconds, 30 s, the default). Then M segmented streams send
//     29 s of it each (no interim results, `frame_ms` frames, `speed` times real time, paced,
//     their frames spread over the frame period) and hold it: the measurement is taken once all
//     have sent 29 s, before the cap would cut the utterance. The kernel's socket queues to the
//     server (/proc/net/tcp) say whether the server kept up reading or stopped reading under its
//     flow control. Then every stream stops and must get one final for the whole 29 s.
//     The signal: a pulse train at ~120 Hz (wavering) through three formant resonators whose
//     vowel changes at 4 syllables a second, amplitude-modulated at that rate down to 20 %;
//     Silero rates every frame of it as speech, with no pause a cut could use.
// The goals printed beside: <= 200 KB per idle stream, <= 2 MB per stream at the 30 s cap (the
// figure at 29 s plus one second of the RSS growth fitted while sending).
// Figures from a busy machine are indicative only.
//
// Run: node bench/stream-memory.bench.ts [idle_streams=200] [utterance_streams=50] [speed=3]
// [frame_ms=20]. BENCH_SERVER_ARGS adds Node options to the server. Writes
// bench/results/stream-memory.json.
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import type { AudioFormat } from '../schemas/audio-format.ts'
import type { EndEvent, SegmentEvent, StreamEvent } from '../schemas/events.ts'
import { WsClient } from '../test/helpers/ws-client.ts'
import { rssKb } from './proc-stats.ts'
import { freePort, killOnExit, metricValues, startServer, stopServer, unreadBytes, ZERO_DELAY_MODEL } from './server-process.ts'

const idleStreams = Math.max(1, Math.floor(Number(process.argv[2] ?? 200)))
const utteranceStreams = Math.max(1, Math.floor(Number(process.argv[3] ?? 50)))
const speed = Number(process.argv[4] ?? 3)
const frameMs = Number(process.argv[5] ?? 20)
const here = fileURLToPath(new URL('.', import.meta.url))

const FORMAT: AudioFormat = { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }
const BYTES_PER_SECOND = 32000
const FRAME_BYTES = Math.round(16000 * frameMs / 1000) * 2
const CAP_SECONDS = 30 // limits.max_utterance_seconds, the default
const HOLD_SECONDS = 29 // what each utterance stream sends before the reading
const PREFLIGHT_SECONDS = 35
const SETTLE_MS = 5000
const GOAL_IDLE_KB = 200
const GOAL_UTTERANCE_KB = 2048
const CONFIG = {
  model: { options: ZERO_DELAY_MODEL },
  limits: { idle_timeout_seconds: 600, max_sessions: Math.max(500, idleStreams + utteranceStreams + 50) }
}

// ---- the signal

/** Speech-like to Silero, with no pause: see the header. 16 kHz s16le mono. */
function speechLike (seconds: number): Uint8Array {
  const rate = 16000
  const n = Math.round(seconds * rate)
  const out = new Float32Array(n)
  const vowels = [[700, 1220, 2600], [300, 2300, 3000], [500, 900, 2400], [400, 1900, 2550], [350, 800, 2300]]
  const filters = [[0, 0], [0, 0], [0, 0]]
  let phase = 0
  let seed = 1
  let peak = 0
  for (let i = 0; i < n; i++) {
    const t = i / rate
    const f0 = 120 + 25 * Math.sin(2 * Math.PI * 0.7 * t) + 10 * Math.sin(2 * Math.PI * 3.1 * t)
    phase += f0 / rate
    let source = 0
    if (phase >= 1) {
      phase -= 1
      source = 1
    }
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    source += (seed / 4294967296 - 0.5) * 0.02
    const vowel = vowels[(Math.floor(t * 4) * 7 + 3) % vowels.length] as number[]
    let y = 0
    for (let k = 0; k < 3; k++) {
      const r = Math.exp(-Math.PI * (80 + 40 * k) / rate)
      const a1 = 2 * r * Math.cos(2 * Math.PI * (vowel[k] as number) / rate)
      const state = filters[k] as number[]
      const o = source * (1 - r) + a1 * (state[0] as number) - r * r * (state[1] as number)
      state[1] = state[0] as number
      state[0] = o
      y += o / (k + 1)
    }
    out[i] = y * (0.2 + 0.8 * Math.sin(2 * Math.PI * 4 * t) ** 2)
    peak = Math.max(peak, Math.abs(out[i] as number))
  }
  const pcm = new Int16Array(n)
  for (let i = 0; i < n; i++) pcm[i] = Math.round((out[i] as number) / peak * 0.5 * 32767)
  return new Uint8Array(pcm.buffer)
}

// ---- the server's memory

// The inspector of the server's main thread: a full GC on demand.
class Inspector {
  readonly #socket: WebSocket
  #id = 0

  private constructor (socket: WebSocket) { this.#socket = socket }

  static async connect (port: number): Promise<Inspector> {
    for (let i = 0; ; i++) {
      const list = await fetch(`http://127.0.0.1:${port}/json/list`).then(async (r) => await r.json() as Array<{ webSocketDebuggerUrl?: string }>, () => [])
      const url = list[0]?.webSocketDebuggerUrl
      if (url !== undefined) {
        const socket = new WebSocket(url)
        await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
        return new Inspector(socket)
      }
      if (i > 50) throw new Error(`no inspector on port ${port}`)
      await sleep(100)
    }
  }

  async collectGarbage (): Promise<void> {
    const id = ++this.#id
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('HeapProfiler.collectGarbage got no answer within 30 s')) }, 30_000)
      const onMessage = (data: WebSocket.RawData): void => {
        const message = JSON.parse(data.toString()) as { id?: number, error?: { message: string } }
        if (message.id !== id) return
        clearTimeout(timer)
        this.#socket.off('message', onMessage)
        if (message.error !== undefined) reject(new Error(message.error.message))
        else resolve()
      }
      this.#socket.on('message', onMessage)
      this.#socket.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }))
    })
  }

  close (): void { this.#socket.close() }
}

interface Memory { rssKb: number, heapUsedKb: number | null, externalKb: number | null }
const HEAP = 'streamer_nodejs_heap_size_used_bytes'
const EXTERNAL = 'streamer_nodejs_external_memory_bytes'

async function memoryNow (pid: number, port: number): Promise<Memory> {
  const rss = rssKb(pid)
  if (rss === null) throw new Error('the server is gone')
  const metrics = await metricValues(port, [HEAP, EXTERNAL] as const)
  const kb = (bytes: number | null): number | null => bytes === null ? null : bytes / 1024
  return { rssKb: rss, heapUsedKb: kb(metrics[HEAP]), externalKb: kb(metrics[EXTERNAL]) }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number
const medianOrNull = (values: Array<number | null>): number | null => values.some((v) => v === null) ? null : median(values as number[])

// Three readings 500 ms apart, the median of each figure.
async function reading (pid: number, port: number): Promise<Memory> {
  const samples: Memory[] = []
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(500)
    samples.push(await memoryNow(pid, port))
  }
  return { rssKb: median(samples.map((s) => s.rssKb)), heapUsedKb: medianOrNull(samples.map((s) => s.heapUsedKb)), externalKb: medianOrNull(samples.map((s) => s.externalKb)) }
}

// `settled`: after the settle wait alone; `afterGc`: then after two forced full GCs.
interface Readings { settled: Memory, afterGc: Memory }
async function readings (pid: number, port: number, inspector: Inspector, settleMs: number): Promise<Readings> {
  await sleep(settleMs)
  const settled = await reading(pid, port)
  await inspector.collectGarbage()
  await sleep(300)
  await inspector.collectGarbage()
  await sleep(700)
  return { settled, afterGc: await reading(pid, port) }
}

interface PerStream { rssKb: number, heapUsedKb: number | null, externalKb: number | null }
function perStream (from: Memory, to: Memory, n: number): PerStream {
  const delta = (a: number | null, b: number | null): number | null => a === null || b === null ? null : (b - a) / n
  return { rssKb: (to.rssKb - from.rssKb) / n, heapUsedKb: delta(from.heapUsedKb, to.heapUsedKb), externalKb: delta(from.externalKb, to.externalKb) }
}

async function healthSessions (port: number): Promise<number | null> {
  return await fetch(`http://127.0.0.1:${port}/api/v1/health`).then(async (r) => (await r.json() as { sessions?: number }).sessions ?? null, () => null)
}

interface Server { child: ChildProcess, pid: number, port: number, inspector: Inspector }
async function startMeasuredServer (): Promise<Server> {
  const port = await freePort()
  const inspectPort = await freePort()
  const child = await startServer(port, CONFIG, 'stream-memory-', [`--inspect=127.0.0.1:${inspectPort}`])
  killOnExit(child)
  const inspector = await Inspector.connect(inspectPort)
  return { child, pid: child.pid as number, port, inspector }
}

async function stopMeasuredServer (server: Server | null): Promise<void> {
  if (server === null) return
  server.inspector.close()
  await stopServer(server.child)
}

// ---- streams

interface Opened { clients: WsClient[], refused: string[] }

// Opens `n` segmented streams, 20 at a time, each with its start sent and its `started` received.
async function openStreams (port: number, n: number): Promise<Opened> {
  const clients: WsClient[] = []
  const refused: string[] = []
  const one = async (): Promise<void> => {
    try {
      const client = await WsClient.connect(`ws://127.0.0.1:${port}/api/v1/segmented`)
      clients.push(client)
      client.start(FORMAT, { interim_results: false })
      await client.waitFor((e) => e.type === 'started' || e.type === 'error', 0, 10_000)
      const error = client.events.find((e) => e.type === 'error')
      if (error !== undefined && error.type === 'error') refused.push(`${error.code}: ${error.message}`)
    } catch (error) {
      refused.push(error instanceof Error ? error.message.slice(0, 200) : String(error))
    }
  }
  for (let i = 0; i < n; i += 20) await Promise.all(Array.from({ length: Math.min(20, n - i) }, one))
  return { clients, refused }
}

function closeAll (clients: WsClient[]): void {
  for (const client of clients) if (client.socket.readyState === WebSocket.OPEN) client.socket.terminate()
}

// Sends the first `seconds` of `pcm` on every client, paced at `speed` times real time in
// FRAME_BYTES frames, the clients' frames spread over one frame period. `onTick` is called about
// every `tickMs` with the seconds every client has sent so far (the least of them).
async function sendPaced (clients: WsClient[], pcm: Uint8Array, seconds: number, onTick: (sentSeconds: number) => void, tickMs = 250): Promise<{ maxLateMs: number, maxBufferedBytes: number }> {
  const frames = Math.floor(seconds * BYTES_PER_SECOND / FRAME_BYTES)
  const periodMs = frameMs / speed
  const t0 = performance.now() + 50
  const next = clients.map(() => 0)
  let maxLateMs = 0
  let maxBufferedBytes = 0
  let lastTick = 0
  while (next.some((k) => k < frames)) {
    const now = performance.now()
    clients.forEach((client, i) => {
      const startAt = t0 + i * periodMs / clients.length
      while ((next[i] as number) < frames && startAt + (next[i] as number) * periodMs <= now) {
        const k = next[i] as number
        maxLateMs = Math.max(maxLateMs, now - (startAt + k * periodMs))
        if (client.socket.readyState !== WebSocket.OPEN) throw new Error('a stream closed while sending')
        client.socket.send(pcm.subarray(k * FRAME_BYTES, (k + 1) * FRAME_BYTES))
        next[i] = k + 1
      }
      maxBufferedBytes = Math.max(maxBufferedBytes, client.socket.bufferedAmount)
    })
    if (now - lastTick >= tickMs) {
      lastTick = now
      onTick(Math.min(...next) * FRAME_BYTES / BYTES_PER_SECOND)
    }
    await sleep(1)
  }
  onTick(frames * FRAME_BYTES / BYTES_PER_SECOND)
  return { maxLateMs, maxBufferedBytes }
}

const isCut = (e: StreamEvent): boolean => e.type === 'inactive' || (e.type === 'segment' && e.is_final === true)

// ---- (a) idle streams

interface IdleResult { streams: number, opened: number, refused: string[], sessionsSeen: number | null, baseline: Readings, loaded: Readings, perStream: { settled: PerStream, afterGc: PerStream } }

async function idleScenario (): Promise<IdleResult> {
  let server: Server | null = null
  let clients: WsClient[] = []
  try {
    server = await startMeasuredServer()
    const warm = await openStreams(server.port, 5)
    closeAll(warm.clients)
    await sleep(1000)
    const baseline = await readings(server.pid, server.port, server.inspector, 2000)
    const opened = await openStreams(server.port, idleStreams)
    clients = opened.clients
    const loaded = await readings(server.pid, server.port, server.inspector, SETTLE_MS)
    const sessionsSeen = await healthSessions(server.port)
    const open = clients.filter((c) => c.socket.readyState === WebSocket.OPEN && c.events.some((e) => e.type === 'started')).length
    const lateErrors = clients.flatMap((c) => c.events.filter((e) => e.type === 'error').map((e) => e.type === 'error' ? `${e.code}: ${e.message}` : ''))
    return {
      streams: idleStreams,
      opened: open,
      refused: [...opened.refused, ...lateErrors.filter((e) => !opened.refused.includes(e))],
      sessionsSeen,
      baseline,
      loaded,
      perStream: { settled: perStream(baseline.afterGc, loaded.settled, open), afterGc: perStream(baseline.afterGc, loaded.afterGc, open) }
    }
  } finally {
    closeAll(clients)
    await stopMeasuredServer(server)
  }
}

// ---- (b) streams holding an utterance

interface Preflight { firstCutAt: number | null, firstCutAudioSent: number | null, finals: Array<[number, number]>, held: boolean }
interface UtteranceResult {
  streams: number
  opened: number
  refused: string[]
  preflight: Preflight
  baseline: Readings
  loaded: Readings
  perStream: { settled: PerStream, afterGc: PerStream }
  // RSS per stream per second of audio held, fitted over the sending (5 s to the end).
  rssKbPerStreamPerSecond: number | null
  growth: Array<{ sentSeconds: number, rssKb: number, unreadSeconds: number }>
  unreadSecondsPeak: number // audio (stream-seconds, all streams) the kernel held unread by the server
  unreadSecondsAtReading: number
  maxLateMs: number
  maxBufferedBytes: number
  cutsBeforeStop: number // streams that got an inactive or a final before their stop
  finalsAfterStop: Array<{ finals: number, start: number | null, end: number | null }>
  wellFormed: number // streams with exactly one final spanning the whole held audio
}

async function preflight (port: number, pcm: Uint8Array): Promise<Preflight> {
  const { clients } = await openStreams(port, 1)
  const client = clients[0]
  if (client === undefined) throw new Error('the preflight stream could not be opened')
  try {
    let firstCutAudioSent: number | null = null
    await sendPaced([client], pcm, PREFLIGHT_SECONDS, (sent) => { if (firstCutAudioSent === null && client.events.some(isCut)) firstCutAudioSent = sent }, 20)
    client.stop()
    await client.waitFor((e) => e.type === 'end', 0, 60_000)
    const first = client.events.find(isCut)
    const firstCutAt = first === undefined ? null : first.type === 'inactive' ? first.time : first.type === 'segment' ? first.end_time : null
    const finals = client.events.filter((e): e is SegmentEvent => e.type === 'segment' && e.is_final === true).map((e): [number, number] => [e.start_time, e.end_time])
    return { firstCutAt, firstCutAudioSent, finals, held: firstCutAt !== null && firstCutAt >= HOLD_SECONDS + 0.5 }
  } finally {
    closeAll(clients)
  }
}

async function utteranceScenario (): Promise<UtteranceResult> {
  let server: Server | null = null
  let clients: WsClient[] = []
  const pcm = speechLike(PREFLIGHT_SECONDS)
  try {
    server = await startMeasuredServer()
    const { pid, port } = server
    const check = await preflight(port, pcm)
    console.log(`  preflight: first inactive/final at ${check.firstCutAt?.toFixed(2) ?? 'none'} s of audio (${check.firstCutAudioSent === null ? 'after the stop' : `arrived with ${check.firstCutAudioSent.toFixed(1)} s sent`}); finals ${check.finals.map(([a, b]) => `${a.toFixed(2)}-${b.toFixed(2)}`).join(', ')}`)
    if (!check.held) throw new Error(`the synthetic signal is not held as one utterance up to ${HOLD_SECONDS + 0.5} s: first inactive/final at ${check.firstCutAt ?? 'none'} s`)
    await sleep(1000)
    const baseline = await readings(pid, port, server.inspector, 2000)
    const opened = await openStreams(port, utteranceStreams)
    clients = opened.clients
    const live = clients.filter((c) => c.events.some((e) => e.type === 'started'))
    const growth: UtteranceResult['growth'] = []
    const sending = await sendPaced(live, pcm, HOLD_SECONDS, (sentSeconds) => {
      const rss = rssKb(pid)
      if (rss !== null) growth.push({ sentSeconds, rssKb: rss, unreadSeconds: unreadBytes(port) / BYTES_PER_SECOND })
    })
    const unreadAtEnd = unreadBytes(port) / BYTES_PER_SECOND
    const loaded = await readings(pid, port, server.inspector, 3000)
    const unreadAtReading = unreadBytes(port) / BYTES_PER_SECOND
    const cutsBeforeStop = live.filter((c) => c.events.some(isCut)).length
    for (const client of live) client.stop()
    await Promise.all(live.map(async (c) => await c.waitFor((e) => e.type === 'end', 0, 120_000)))
    const finalsAfterStop = live.map((c) => {
      const finals = c.events.filter((e): e is SegmentEvent => e.type === 'segment' && e.is_final === true)
      return { finals: finals.length, start: finals[0]?.start_time ?? null, end: finals.at(-1)?.end_time ?? null }
    })
    const heldBytes = Math.floor(HOLD_SECONDS * BYTES_PER_SECOND / FRAME_BYTES) * FRAME_BYTES
    const held = heldBytes / BYTES_PER_SECOND
    const wellFormed = finalsAfterStop.filter((f) => f.finals === 1 && f.start !== null && f.end !== null && f.start < 0.5 && Math.abs(f.end - held) < 0.1).length
    const endsOk = live.filter((c) => (c.events.find((e) => e.type === 'end') as EndEvent | undefined)?.samples_received[0] === heldBytes / 2).length
    if (endsOk !== live.length) problemsSeen.push(`utterance: ${live.length - endsOk} streams' end did not count the ${heldBytes / 2} samples sent`)
    // RSS against the seconds sent, from 5 s on: a least-squares line.
    const fit = growth.filter((g) => g.sentSeconds >= 5)
    let slope: number | null = null
    if (fit.length >= 3) {
      const mx = fit.reduce((a, g) => a + g.sentSeconds, 0) / fit.length
      const my = fit.reduce((a, g) => a + g.rssKb, 0) / fit.length
      const sxy = fit.reduce((a, g) => a + (g.sentSeconds - mx) * (g.rssKb - my), 0)
      const sxx = fit.reduce((a, g) => a + (g.sentSeconds - mx) ** 2, 0)
      slope = sxx > 0 ? sxy / sxx / live.length : null
    }
    const errors = live.flatMap((c) => c.events.filter((e) => e.type === 'error').map((e) => e.type === 'error' ? `${e.code}: ${e.message}` : ''))
    return {
      streams: utteranceStreams,
      opened: live.length,
      refused: [...opened.refused, ...errors],
      preflight: check,
      baseline,
      loaded,
      perStream: { settled: perStream(baseline.afterGc, loaded.settled, live.length), afterGc: perStream(baseline.afterGc, loaded.afterGc, live.length) },
      rssKbPerStreamPerSecond: slope,
      growth,
      unreadSecondsPeak: Math.max(unreadAtEnd, ...growth.map((g) => g.unreadSeconds)),
      unreadSecondsAtReading: unreadAtReading,
      maxLateMs: sending.maxLateMs,
      maxBufferedBytes: sending.maxBufferedBytes,
      cutsBeforeStop,
      finalsAfterStop,
      wellFormed
    }
  } finally {
    closeAll(clients)
    await stopMeasuredServer(server)
  }
}

// ---- the run

const kb = (value: number | null): string => value === null ? 'n/a' : Math.abs(value) >= 1024 ? `${(value / 1024).toFixed(2)} MiB` : `${value.toFixed(0)} KiB`
const met = (value: number, goal: number): string => value <= goal ? 'met' : 'NOT met'

console.log(`stream-memory: ${idleStreams} idle streams; ${utteranceStreams} streams holding ${HOLD_SECONDS} s of speech-like signal, sent at ${speed}x real time in ${frameMs} ms frames; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
// Problems seen on the way, reported with the others at the end.
const problemsSeen: string[] = []
let idle: IdleResult | null = null
let utterance: UtteranceResult | null = null
const problems = problemsSeen
try {
  console.log('(a) idle streams')
  idle = await idleScenario()
  console.log(`  opened ${idle.opened}/${idle.streams}, the server counts ${idle.sessionsSeen ?? '?'} sessions; RSS ${kb(idle.baseline.afterGc.rssKb)} -> ${kb(idle.loaded.afterGc.rssKb)} after GC (settled: ${kb(idle.baseline.settled.rssKb)} -> ${kb(idle.loaded.settled.rssKb)})`)
  if (idle.opened !== idle.streams) problems.push(`idle: ${idle.streams - idle.opened} streams not open: ${idle.refused.slice(0, 3).join('; ')}`)
  if (idle.sessionsSeen !== null && idle.sessionsSeen !== idle.opened) problems.push(`idle: the server counts ${idle.sessionsSeen} sessions, ${idle.opened} are open`)
  console.log('(b) streams holding an utterance')
  utterance = await utteranceScenario()
  const u = utterance
  console.log(`  opened ${u.opened}/${u.streams}; RSS ${kb(u.baseline.afterGc.rssKb)} -> ${kb(u.loaded.afterGc.rssKb)} after GC (settled: ${kb(u.baseline.settled.rssKb)} -> ${kb(u.loaded.settled.rssKb)}); audio unread by the server, all streams: peak ${u.unreadSecondsPeak.toFixed(2)} s, at the reading ${u.unreadSecondsAtReading.toFixed(2)} s; sender max lateness ${u.maxLateMs.toFixed(0)} ms, max bufferedAmount ${u.maxBufferedBytes} B`)
  console.log(`  RSS growth while sending: ${u.rssKbPerStreamPerSecond?.toFixed(1) ?? 'n/a'} KiB per stream per second of audio (16 kHz float32 is 62.5 KiB/s); streams cut before the stop: ${u.cutsBeforeStop}; streams with one final 0-${HOLD_SECONDS} s after the stop: ${u.wellFormed}/${u.opened}`)
  if (u.opened !== u.streams) problems.push(`utterance: ${u.streams - u.opened} streams not open: ${u.refused.slice(0, 3).join('; ')}`)
  if (u.cutsBeforeStop > 0) problems.push(`utterance: ${u.cutsBeforeStop} streams got an inactive or a final before the reading: they did not hold one utterance`)
  if (u.wellFormed !== u.opened) problems.push(`utterance: ${u.opened - u.wellFormed} streams did not get exactly one final for the whole ${HOLD_SECONDS} s`)
  if (u.unreadSecondsPeak > utteranceStreams * 1) problems.push(`utterance: the server left ${u.unreadSecondsPeak.toFixed(1)} s of audio unread at its peak (flow control or a busy server): lower the speed`)
} catch (error) {
  console.error(error)
  problems.push(error instanceof Error ? error.message : String(error))
}

console.log('\n| per stream | RSS, after forced GC | RSS, no forced GC | V8 heap used, after GC | external (ArrayBuffers), after GC | goal |')
console.log('| --- | --- | --- | --- | --- | --- |')
if (idle !== null) {
  const p = idle.perStream
  console.log(`| idle stream (${idle.opened}) | ${kb(p.afterGc.rssKb)} (${met(p.afterGc.rssKb, GOAL_IDLE_KB)}) | ${kb(p.settled.rssKb)} | ${kb(p.afterGc.heapUsedKb)} | ${kb(p.afterGc.externalKb)} | <= ${GOAL_IDLE_KB} KiB |`)
}
if (utterance !== null) {
  const p = utterance.perStream
  const slope = utterance.rssKbPerStreamPerSecond ?? 0
  console.log(`| holding ${HOLD_SECONDS} s (${utterance.opened}) | ${kb(p.afterGc.rssKb)} (${met(p.afterGc.rssKb, GOAL_UTTERANCE_KB)}) | ${kb(p.settled.rssKb)} | ${kb(p.afterGc.heapUsedKb)} | ${kb(p.afterGc.externalKb)} | <= 2 MiB at ${CAP_SECONDS} s |`)
  console.log(`| at the ${CAP_SECONDS} s cap, extrapolated (+${CAP_SECONDS - HOLD_SECONDS} s at ${slope.toFixed(1)} KiB/s) | ${kb(p.afterGc.rssKb + slope * (CAP_SECONDS - HOLD_SECONDS))} (${met(p.afterGc.rssKb + slope * (CAP_SECONDS - HOLD_SECONDS), GOAL_UTTERANCE_KB)}) | | | | <= 2 MiB |`)
}
for (const problem of problems) console.log(`problem: ${problem}`)
mkdirSync(join(here, 'results'), { recursive: true })
const out = join(here, 'results', 'stream-memory.json')
writeFileSync(out, JSON.stringify({
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: totalmem() / 2 ** 30, node: process.version, loadAverage: loadavg() },
  config: CONFIG,
  speed,
  frameMs,
  holdSeconds: HOLD_SECONDS,
  goalsKb: { idle: GOAL_IDLE_KB, utteranceAtCap: GOAL_UTTERANCE_KB },
  idle,
  utterance,
  problems
}, null, 2))
console.log(`wrote ${out}`)
process.exit(problems.length === 0 ? 0 : 1)
