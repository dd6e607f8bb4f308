import t, { type Test } from 'tap'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { closeCodeOf } from '../../schemas/error-codes.ts'
import type { EndEvent, StreamEvent } from '../../schemas/events.ts'
import { createDualProtocolServer, type DualProtocolServer } from '../../src/dual-protocol-server.ts'
import { loadFixture, type Fixture } from '../helpers/fixtures.ts'
import { FAST_MODEL } from '../helpers/server.ts'
import { SseCollector } from '../helpers/sse-collector.ts'
import { answersReady, sleep, until } from '../helpers/waiting.ts'
import { END_TOLERANCE, START_TOLERANCE, assertSegmentedMatchesTruth, finals } from '../helpers/speech-assertions.ts'
import { WsClient } from '../helpers/ws-client.ts'

// SIGTERM to the real server process (src/server.ts, as `npm start` and the Dockerfile run it)
// with real clients on every transport: open streams are drained (a `shutdown` event, their
// results, `end`, then the transport closes), readiness is 503 at once, connections that carry
// no request do not hold the exit, a second signal exits at once, and `npm start` passes the
// signal on. Durations are asserted only as generous exit guards.

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const SERVER = join(ROOT, 'src/server.ts')
const fixture = loadFixture('hello_16k_mono')
const BYTES_PER_SECOND = fixture.format.sample_rate * fixture.format.channels * fixture.format.bit_depth / 8
const formatQuery = (f: Fixture): string => `sample_rate=${f.format.sample_rate}&channels=${f.format.channels}&bit_depth=${f.format.bit_depth}&is_float=${f.format.is_float}`
// What server.ts allows app.close() after the drain deadline before it exits anyway.
const HARD_EXIT_GRACE_SECONDS = 5

async function freePort (): Promise<number> {
  const probe = net.createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  probe.close()
  await once(probe, 'close')
  return port
}

interface Exit { code: number | null, signal: NodeJS.Signals | null, at: number }

interface Running {
  child: ChildProcess
  http: string
  ws: string
  exited: Promise<Exit>
  hasExited: () => boolean
  logs: () => Array<Record<string, unknown>>
  // Resolves once a log line matching `predicate` was written (or the process exited).
  logged: (predicate: (line: Record<string, unknown>) => boolean) => Promise<void>
  // Sends a signal; returns when it was sent (performance.now()).
  signal: (name: NodeJS.Signals) => number
}

// The real server process with a config file of its own (fast dummy model unless told
// otherwise) on a free port, in a clean environment; resolves once it is ready.
async function startProcess (t: Test, options: { model?: Record<string, unknown>, drainSeconds: number }): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'streamer-shutdown-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const port = await freePort()
  const config = {
    host: '127.0.0.1',
    port,
    log_level: 'info',
    model: { threads: 2, options: { ...FAST_MODEL, ...options.model } },
    shutdown: { drain_seconds: options.drainSeconds }
  }
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify(config))
  const child = spawn(process.execPath, [SERVER], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', STREAMER_CONFIG: configPath, CI: 'true' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  const watchers = new Set<() => void>()
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    for (const watcher of watchers) watcher()
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  let done = false
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true
      resolve({ code, signal, at: performance.now() })
    })
  })
  t.teardown(() => { if (!done) child.kill('SIGKILL') })
  const running: Running = {
    child,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    exited,
    hasExited: () => done,
    logs: () => stdout.split('\n').filter((line) => line.startsWith('{') && line.endsWith('}')).map((line) => JSON.parse(line) as Record<string, unknown>),
    logged: (predicate) => new Promise<void>((resolve) => {
      const check = (): void => {
        if (!done && !running.logs().some(predicate)) return
        watchers.delete(check)
        resolve()
      }
      watchers.add(check)
      void exited.then(check)
      check()
    }),
    signal: (name) => {
      child.kill(name)
      return performance.now()
    }
  }
  let ready = false
  await until(async () => done || (ready = await answersReady(running.http)), 30000)
  if (!ready || done) throw new Error(`the server did not become ready: ${stderr}${stdout}`)
  return running
}

// Readiness right after a signal: 503, or (only once the process is gone) no answer at all.
// Asked once the server has logged the signal: that line is written in the signal handler, in
// the same turn as readiness turns false; a request sent before could reach the server in the
// same event-loop turn as the signal and be answered first.
async function readinessAfterSignal (server: Running): Promise<number | 'exited' | 'refused while running'> {
  await server.logged((line) => typeof line.signal === 'string')
  try {
    const response = await fetch(`${server.http}/api/v1/ready`)
    await response.arrayBuffer()
    return response.status
  } catch {
    const gone = await Promise.race([server.exited.then(() => true), sleep(3000).then(() => false)])
    return gone ? 'exited' : 'refused while running'
  }
}

// Text/event-stream over HTTP/1.1 as an EventSource reads it.
function openSse (url: string, headers: Record<string, string> = {}): { sse: SseCollector, response: Promise<http.IncomingMessage> } {
  const sse = new SseCollector()
  const request = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } })
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    request.once('response', (res) => {
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { sse.feed(chunk) })
      res.once('close', () => { sse.end() })
      resolve(res)
    })
    request.once('error', (error) => {
      sse.end()
      reject(error)
    })
  })
  response.catch(() => {})
  return { sse, response }
}

// An HTTP/2 (prior knowledge) streaming upload whose body the caller writes.
function h2Upload (origin: string, path: string): { session: http2.ClientHttp2Session, stream: http2.ClientHttp2Stream, sse: SseCollector } {
  const session = http2.connect(origin)
  session.on('error', () => {})
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/octet-stream' })
  stream.on('error', () => {})
  const sse = new SseCollector()
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => { sse.feed(chunk) })
  stream.once('close', () => { sse.end() })
  return { session, stream, sse }
}

interface PairedCreated { id: string, events_url: string, audio_url: string, stop_url: string }

async function createPaired (server: Running): Promise<PairedCreated> {
  const response = await fetch(`${server.http}/api/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ mode: 'segmented', format: fixture.format })
  })
  if (response.status !== 201) throw new Error(`create answered ${response.status}: ${await response.text()}`)
  return await response.json() as PairedCreated
}

async function postChunks (server: Running, session: PairedCreated, pcm: Uint8Array): Promise<void> {
  const size = BYTES_PER_SECOND / 10
  for (let seq = 0, at = 0; at < pcm.length; seq++, at += size) {
    const response = await fetch(`${server.http}${session.audio_url}?seq=${seq}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: pcm.subarray(at, at + size) })
    const body = await response.json() as { accepted_seq?: number }
    if (response.status !== 200 || body.accepted_seq !== seq) throw new Error(`seq ${seq}: ${response.status} ${JSON.stringify(body)}`)
  }
}

// Sends audio in 20 ms frames at the audio's own pace, from byte `from` until byte `to` or until
// `stop()` holds; returns the byte it got to.
async function sendLive (client: WsClient, pcm: Uint8Array, from: number, to: number, stop: () => boolean = () => false): Promise<number> {
  const frame = BYTES_PER_SECOND / 50
  const started = performance.now()
  let at = from
  while (at < to && !stop() && client.socket.readyState === WebSocket.OPEN) {
    client.socket.send(pcm.subarray(at, Math.min(at + frame, to)))
    at = Math.min(at + frame, to)
    const due = started + (at - from) / BYTES_PER_SECOND * 1000
    await sleep(Math.max(0, due - performance.now()))
  }
  return at
}

// Whether `promise` settles within `ms`; the timer holds the process open meanwhile.
async function settlesWithin (promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<boolean>((resolve) => { timer = setTimeout(resolve, ms, false) })
  try {
    return await Promise.race([promise.then(() => true), expired])
  } finally {
    clearTimeout(timer)
  }
}

const shutdownIndex = (events: StreamEvent[]): number => events.findIndex((e) => e.type === 'shutdown')

// Every drained stream: one `shutdown` event with the deadline, no error, `end` last.
function assertDrained (t: Test, name: string, events: StreamEvent[], deadlineSeconds: number): void {
  const at = shutdownIndex(events)
  t.equal(events.filter((e) => e.type === 'shutdown').length, 1, `${name}: one shutdown event`)
  t.match(events[at], { type: 'shutdown', channel: null, deadline_seconds: deadlineSeconds }, `${name}: the shutdown event carries the deadline`)
  t.same(events.filter((e) => e.type === 'error'), [], `${name}: no error`)
  t.equal(events.at(-1)?.type, 'end', `${name}: end comes last`)
  t.ok(at >= 0 && at < events.length - 1, `${name}: shutdown comes before end`)
}

t.test('SIGTERM drains streams in flight on every transport, then the process exits 0', async (t) => {
  const DRAIN = 5
  const server = await startProcess(t, { drainSeconds: DRAIN })

  // A WebSocket client that has sent everything and not stopped.
  const fastWs = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  fastWs.start(fixture.format)
  await fastWs.sendAudio(fixture.pcm)
  // An HTTP/2 upload whose body is still open.
  const upload = h2Upload(server.http, `/api/v1/segmented?${formatQuery(fixture)}`)
  upload.stream.write(fixture.pcm)
  // A paired session with an events reader and every chunk posted, not stopped.
  const paired = await createPaired(server)
  const reader = openSse(`${server.http}${paired.events_url}`)
  t.equal((await reader.response).statusCode, 200, 'the paired events reader is open')
  await postChunks(server, paired, fixture.pcm)
  // A live WebSocket stream: the signal comes in the middle of the second utterance
  // ([4.133, 6.09] s), after the whole first one ([0.5, 2.933] s) and its trailing silence.
  const live = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  live.start(fixture.format)
  const signalAtByte = 5 * BYTES_PER_SECOND
  await sendLive(live, fixture.pcm, 0, signalAtByte)

  const signalledAt = server.signal('SIGTERM')
  const readiness = await readinessAfterSignal(server)
  // As a live client does: audio goes on until the server says it takes no more.
  const sent = sendLive(live, fixture.pcm, signalAtByte, fixture.pcm.length, () => shutdownIndex(live.events) >= 0)
  // This drain can be over in milliseconds: an exited process is the one other answer (the
  // tests below hold the drain open and require the 503).
  t.ok(readiness === 503 || readiness === 'exited', `readiness is 503 right after the signal (${readiness})`)

  const closes = await Promise.all([fastWs.closed, live.closed])
  await sent
  t.ok(await until(() => upload.sse.ended && reader.sse.ended, 10000), 'both SSE responses ended')
  const exit = await server.exited

  for (const [name, events] of [['websocket', fastWs.events], ['http/2 upload', upload.sse.events], ['paired', reader.sse.events]] as const) {
    assertDrained(t, name, events, DRAIN)
    // All of the audio had been taken before the signal: every utterance has its final.
    assertSegmentedMatchesTruth(t, events, fixture)
  }
  t.equal(upload.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'http/2 upload: the stream closed cleanly')
  t.ok(upload.session.closed || upload.session.destroyed, 'http/2 upload: its session was closed')

  // The live stream: the first utterance as it is, the second cut where the audio stopped
  // being taken, finalised by the drain after the shutdown event.
  assertDrained(t, 'live websocket', live.events, DRAIN)
  const liveFinals = finals(live.events, 0)
  const end = live.events.at(-1) as EndEvent
  const received = end.seconds_received[0] ?? 0
  t.ok(received >= 4.5 && received < fixture.duration, `live websocket: the audio after the shutdown event was not taken (${received} s of ${fixture.duration} s)`)
  t.equal(liveFinals.length, 2, 'live websocket: a final per utterance begun')
  const [first, second] = liveFinals
  const truth = fixture.speech[0] ?? []
  if (first !== undefined && truth[0] !== undefined) {
    t.ok(Math.abs(first.start_time - truth[0][0]) <= START_TOLERANCE && Math.abs(first.end_time - truth[0][1]) <= END_TOLERANCE, `live websocket: the first utterance matches the truth (${first.start_time}-${first.end_time})`)
  }
  if (second !== undefined && truth[1] !== undefined) {
    t.ok(Math.abs(second.start_time - truth[1][0]) <= START_TOLERANCE, `live websocket: the second starts where its speech does (${second.start_time})`)
    t.ok(second.end_time <= received + 1e-6 && second.end_time > truth[1][0], `live websocket: it ends within the audio taken (${second.end_time} <= ${received})`)
    t.ok(live.events.indexOf(second) > shutdownIndex(live.events), 'live websocket: its final came after the shutdown event')
  }
  t.same(closes.map((c) => c.code), [1012, 1012], 'the WebSockets close with 1012 (service restart)')

  // EventSource reconnects with Last-Event-ID: an ended session says 204 (stop retrying), an
  // expired one 404; a request racing app.close() gets Fastify's 503; after exit, nothing.
  const again = await new Promise<number | 'refused'>((resolve) => {
    const request = http.get(`${server.http}${paired.events_url}`, { agent: false, headers: { accept: 'text/event-stream', 'last-event-id': String(reader.sse.ids.at(-1)) } })
    request.once('response', (response) => { response.resume(); resolve(response.statusCode ?? 0) })
    request.once('error', () => { resolve('refused') })
  })
  t.ok(again === 204 || again === 404 || again === 503 || (again === 'refused' && server.hasExited()), `the paired events URL afterwards: ${again}`)

  t.equal(exit.code, 0, 'the process exits 0')
  t.ok(exit.at - signalledAt < DRAIN * 1000, 'before the drain deadline')
  const lines = server.logs().filter((line) => line.signal === 'SIGTERM')
  t.equal(lines.length, 1, 'one log line for the signal')
  t.match(lines[0], { drain_seconds: DRAIN, streams: 4 })
})

t.test('a stream that cannot finish in time ends with shutting_down; the process still exits', async (t) => {
  const DRAIN = 1
  // Every inference takes 3 s: the drain deadline passes while one runs.
  const server = await startProcess(t, { drainSeconds: DRAIN, model: { delay: 3 } })
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  client.start(fixture.format)
  await client.sendAudio(fixture.pcm)
  await client.waitFor((e) => e.type === 'inactive') // the first utterance is at the model
  // A paired session that has nothing to finish: it ends at once and lingers while the slow
  // stream holds the drain open.
  const paired = await createPaired(server)
  const reader = openSse(`${server.http}${paired.events_url}`)
  await reader.response

  const signalledAt = server.signal('SIGTERM')
  t.equal(await readinessAfterSignal(server), 503, 'readiness is 503 right after the signal')
  await reader.sse.waitForEnd(5000)
  assertDrained(t, 'paired (nothing to finish)', reader.sse.events, DRAIN)
  const again = await new Promise<number>((resolve, reject) => {
    const request = http.get(`${server.http}${paired.events_url}`, { agent: false, headers: { accept: 'text/event-stream', 'last-event-id': String(reader.sse.ids.at(-1)) } })
    request.once('response', (response) => { response.resume(); resolve(response.statusCode ?? 0) })
    request.once('error', reject)
  })
  t.equal(again, 204, 'its events URL answers 204 during the drain: EventSource stops retrying')

  const closed = await client.closed
  const events = client.events
  const at = shutdownIndex(events)
  t.ok(at >= 0, 'the stream was told of the shutdown')
  t.match(events.at(-1), { type: 'error', code: 'shutting_down' }, 'then, at the deadline, it ended with shutting_down')
  t.ok(at < events.length - 1, 'shutdown came first')
  t.notOk(events.some((e) => e.type === 'end'), 'no end: its results could not all be sent')
  t.equal(closed.code, closeCodeOf('shutting_down'), 'the socket closed with the code of shutting_down')

  const exit = await server.exited
  t.ok(exit.code === 0 || exit.code === 1, `the process exited (code ${exit.code})`)
  t.ok(exit.at - signalledAt < (DRAIN + HARD_EXIT_GRACE_SECONDS + 2) * 1000, 'within drain_seconds plus the hard-exit grace')
})

t.test('connections that carry no request do not hold the exit', async (t) => {
  const server = await startProcess(t, { drainSeconds: 5 })
  const port = Number(new URL(server.http).port)
  const watch = (socket: net.Socket): Promise<void> => {
    socket.on('error', () => {})
    return once(socket, 'close').then(() => {})
  }
  // Connected, sent nothing (the dual-protocol server is still peeking at it).
  const silent = net.connect(port, '127.0.0.1')
  await once(silent, 'connect')
  const silentClosed = watch(silent)
  // Sent half a request: Node's parser holds it, and Node's header timeout is 60 s.
  const half = net.connect(port, '127.0.0.1')
  await once(half, 'connect')
  half.write('POST /api/v1/simple HTTP/1.1\r\nHost: x\r\n')
  const halfClosed = watch(half)
  // An idle keep-alive connection after a request.
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(() => { agent.destroy() })
  const kept = await new Promise<net.Socket>((resolve, reject) => {
    http.get(`${server.http}/api/v1/health`, { agent }, (response) => {
      const socket = response.socket // the response lets go of it at `end`
      response.resume()
      response.once('end', () => { resolve(socket) })
    }).once('error', reject)
  })
  const keptClosed = watch(kept)
  // An HTTP/2 session with no stream open.
  const h2 = http2.connect(server.http)
  h2.on('error', () => {})
  await once(h2, 'connect')
  const h2Closed = once(h2, 'close')
  // A WebSocket with no stream.
  const idleWs = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  // A WebSocket client that never answers the server's close frame (ws would wait 30 s for it).
  const deaf = net.connect(port, '127.0.0.1')
  await once(deaf, 'connect')
  const deafClosed = watch(deaf)
  deaf.write('GET /api/v1/segmented HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  const [handshake] = await once(deaf, 'data') as [Buffer]
  t.match(handshake.toString('latin1'), /^HTTP\/1\.1 101 /, 'the deaf client is upgraded')
  await sleep(100) // the server has seen every one of them

  const signalledAt = server.signal('SIGTERM')
  const exit = await server.exited
  t.equal(exit.code, 0, 'the process exits 0')
  t.ok(exit.at - signalledAt < 10000, 'well before the 60 s header timeout')
  await Promise.all([silentClosed, halfClosed, keptClosed, h2Closed, deafClosed])
  t.pass('the silent, half-sent, keep-alive, HTTP/2 and deaf WebSocket connections were closed')
  t.equal((await idleWs.closed).code, 1012, 'the WebSocket without a stream closed with 1012')
})

t.test('a second signal during the drain exits at once with code 1', async (t) => {
  const server = await startProcess(t, { drainSeconds: 30, model: { delay: 3 } })
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  client.start(fixture.format)
  await client.sendAudio(fixture.pcm)
  await client.waitFor((e) => e.type === 'inactive')
  server.signal('SIGTERM')
  t.equal(await readinessAfterSignal(server), 503, 'readiness is 503 during the drain')
  await client.waitFor((e) => e.type === 'shutdown') // the drain is under way
  await sleep(700) // past the window in which a repeat counts as the same signal
  const secondAt = server.signal('SIGTERM')
  const exit = await server.exited
  t.equal(exit.code, 1, 'exit code 1')
  t.ok(exit.at - secondAt < 5000, 'at once, not at the 30 s drain deadline')
  t.notOk(client.events.some((e) => e.type === 'end'), 'the drain did not finish')
  t.equal(server.logs().filter((line) => line.signal === 'SIGTERM').length, 2, 'one log line per signal')
})

t.test('the same signal twice at once (Ctrl-C to npm start, systemd) is one stop: the drain finishes', async (t) => {
  const server = await startProcess(t, { drainSeconds: 10, model: { delay: 0.5 } })
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  client.start(fixture.format)
  await client.sendAudio(fixture.pcm)
  await client.waitFor((e) => e.type === 'active')
  server.signal('SIGINT')
  server.signal('SIGINT')
  const exit = await server.exited
  t.equal(exit.code, 0, 'exit code 0')
  assertDrained(t, 'websocket', client.events, 10)
  assertSegmentedMatchesTruth(t, client.events, fixture)
})

// The process tree under `pid`, from /proc (Linux).
function descendants (pid: number): number[] {
  const parents = new Map<number, number>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      // pid (comm) state ppid ...; comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      parents.set(Number(name), ppid)
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = []
  const walk = (parent: number): void => {
    for (const [child, ppid] of parents) if (ppid === parent) { found.push(child); walk(child) }
  }
  walk(pid)
  return found
}

const alive = (pid: number): boolean => {
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

const cmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return ''
  }
}

t.test('SIGTERM to the npm start process stops the server', { skip: existsSync('/proc/self/stat') ? false : 'needs /proc' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'streamer-npm-start-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({ model: { threads: 1, options: FAST_MODEL } }))
  const port = await freePort()
  const npm = spawn('npm', ['start'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir, PORT: String(port), HOST: '127.0.0.1', STREAMER_CONFIG: configPath, CI: 'true' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  npm.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  npm.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const npmExited = once(npm, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => { if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL') })
  const base = `http://127.0.0.1:${port}`
  const ready = await until(async () => await answersReady(base), 30000)
  t.ok(ready, 'npm start serves', { output })
  // Every process under npm that runs the server: a shell (`sh -c ...`) too, if the script
  // leaves one in between.
  const servers = descendants(npm.pid ?? 0).filter((pid) => cmdline(pid).includes('src/server.ts'))
  t.ok(servers.some((pid) => /(^|\/)node src\/server\.ts/.test(cmdline(pid))), 'the server runs under npm', { tree: servers.map(cmdline) })
  t.teardown(() => { for (const pid of servers) if (alive(pid)) process.kill(pid, 'SIGKILL') })

  npm.kill('SIGTERM')
  const [code, signal] = await npmExited
  t.ok(code === 0 || signal === 'SIGTERM', `npm ended (code ${code}, signal ${signal})`)
  const gone = await until(() => !servers.some(alive), 15000)
  t.ok(gone, 'no server process is left behind')
  const refused = await fetch(`${base}/api/v1/health`).then(() => false, () => true)
  t.ok(refused, 'the port no longer answers')
})

// The one-port server's close() on its own, TLS included: what serves nothing closes at once,
// an HTTP/1.1 request in progress is answered and its connection closed after it (not left to
// the keep-alive timeout).
t.test('close(): pending TLS handshakes, idle TLS and keep-alive connections, busy requests', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'streamer-shutdown-tls-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const keyPath = join(dir, 'key.pem')
  const certPath = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  const key = readFileSync(keyPath)
  const cert = readFileSync(certPath)

  for (const secure of [false, true]) {
    let release: () => void = () => {}
    const held = new Promise<void>((resolve) => { release = resolve })
    const server: DualProtocolServer = createDualProtocolServer((request, response) => {
      if (request.url === '/slow') void held.then(() => { response.end('slow') })
      else response.end('ok')
    }, secure ? { tls: { key, cert } } : {})
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    const origin = `${secure ? 'https' : 'http'}://127.0.0.1:${port}`
    const name = secure ? 'tls' : 'cleartext'
    const closedOf = (socket: net.Socket): Promise<unknown> => {
      socket.on('error', () => {})
      return once(socket, 'close')
    }
    // Connected, no byte sent (no TLS ClientHello either).
    const silent = net.connect(port, '127.0.0.1')
    await once(silent, 'connect')
    const closes = [closedOf(silent)]
    // An idle keep-alive connection, and one whose request is still being answered.
    // An agent each: one would send the second request on the first one's idle connection.
    const agents = [0, 1].map(() => secure ? new https.Agent({ keepAlive: true, ca: cert }) : new http.Agent({ keepAlive: true }))
    const get = (path: string, agent: http.Agent): Promise<{ body: string, closed: Promise<unknown> }> => new Promise((resolve, reject) => {
      const request = (secure ? https : http).get(`${origin}${path}`, { agent }, (response) => {
        // Taken now: after `end` the agent takes the socket back and the response lets go of it.
        const closed = closedOf(response.socket)
        let body = ''
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => { body += chunk })
        response.once('end', () => { resolve({ body, closed }) })
      })
      request.once('error', reject)
    })
    const idle = await get('/', agents[0] as http.Agent)
    closes.push(idle.closed)
    const slow = get('/slow', agents[1] as http.Agent)
    // An HTTP/2 session with no stream, and one with a stream still being answered.
    const h2 = http2.connect(origin, secure ? { ca: cert } : {})
    h2.on('error', () => {})
    await once(h2, 'connect')
    closes.push(once(h2, 'close'))
    const h2Busy = http2.connect(origin, secure ? { ca: cert } : {})
    h2Busy.on('error', () => {})
    const h2BusyClosed = once(h2Busy, 'close')
    const h2Slow = h2Busy.request({ ':path': '/slow' })
    h2Slow.setEncoding('utf8')
    let h2Body = ''
    h2Slow.on('data', (chunk: string) => { h2Body += chunk })
    const h2SlowEnded = once(h2Slow, 'end')
    if (secure) {
      // A TLS handshake that never ends: the first bytes of a ClientHello record, then nothing.
      const stalled = net.connect(port, '127.0.0.1')
      await once(stalled, 'connect')
      stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x00]))
      closes.push(closedOf(stalled))
    }
    await sleep(100)
    t.match(server.connectionCounts(), { pending: secure ? 2 : 1, http1Idle: 1, http1Busy: 1, http2Sessions: 2 }, `${name}: counted`)

    const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    await Promise.all(closes)
    t.pass(`${name}: the connections that serve nothing closed at once`)
    release()
    const answered = await slow
    t.equal(answered.body, 'slow', `${name}: the request in progress was answered`)
    await h2SlowEnded
    t.equal(h2Body, 'slow', `${name}: so was the HTTP/2 stream in progress`)
    // Closed when its stream ended, not destroyed at the grace period (3 s) as a stuck one is.
    t.ok(await settlesWithin(h2BusyClosed, 2000), `${name}: then its session closed`)
    // Waited for with a timer: the agent unrefs its kept-alive sockets, so nothing else would
    // keep this process running until the close arrives.
    t.ok(await settlesWithin(answered.closed, 5000), `${name}: its connection closed once answered`)
    await closed
    t.pass(`${name}: close() completed`)
    for (const agent of agents) agent.destroy()
    h2.destroy()
    h2Busy.destroy()
  }
})
