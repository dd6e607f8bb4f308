import t from 'tap'
import type { Test } from 'tap'
import http2 from 'node:http2'
import WebSocket from 'ws'
import type { ErrorEvent, StreamEvent } from '../../schemas/events.ts'
import { startServer } from '../helpers/server.ts'
import { waitUntil } from '../helpers/waiting.ts'

// The bounds on connections, with real clients against a real server on port 0: WebSocket
// liveness (ping/pong), the idle limit of a socket with no stream, the stop that disconnects,
// the plain GET on a WebSocket route, and HTTP/2's cap on concurrent streams per connection.
// Assertions are on outcomes and order; waits are bounded polls, never a stopwatch claim.

const PING_SECONDS = 0.2
const IDLE_SECONDS = 0.3
const STREAMS_PER_CONNECTION = 5
// Liveness and the HTTP/2 cap; the idle limit is the default 15 s here.
const server = await startServer({ limits: { ping_interval_seconds: PING_SECONDS, max_streams_per_connection: STREAMS_PER_CONNECTION, max_sessions: 100 } })
// The idle limit; the ping interval is the default 20 s here.
const idleServer = await startServer({ limits: { idle_timeout_seconds: IDLE_SECONDS } })
t.teardown(async () => { await Promise.all([server.close(), idleServer.close()]) })

const FORMAT = { sample_rate: 16000, channels: 1, bit_depth: 16, is_float: false }
// A `ws` client that records its events, the pings it got, and how it was closed.
class Client {
  readonly ws: WebSocket
  readonly events: StreamEvent[] = []
  pings = 0
  readonly closed: Promise<{ code: number, reason: string }>

  private constructor (ws: WebSocket) {
    this.ws = ws
    ws.on('message', (data: Buffer) => { this.events.push(JSON.parse(data.toString()) as StreamEvent) })
    ws.on('ping', () => { this.pings++ })
    ws.on('error', () => {})
    this.closed = new Promise((resolve) => { ws.once('close', (code, reason) => { resolve({ code, reason: reason.toString() }) }) })
  }

  static async connect (t: Test, url: string, options: WebSocket.ClientOptions = {}): Promise<Client> {
    const ws = new WebSocket(url, options)
    const client = new Client(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => { resolve() })
      ws.once('error', reject)
    })
    t.teardown(() => { ws.terminate() })
    return client
  }

  get open (): boolean { return this.ws.readyState === WebSocket.OPEN }
  send (message: Record<string, unknown>): void { this.ws.send(JSON.stringify(message)) }
}

t.test('liveness: a client that never answers pings is dropped; one that does stays', async (t) => {
  // ws answers pings itself unless told not to: autoPong false is a peer that vanished without
  // a FIN, as the server sees it.
  const silent = await Client.connect(t, `${server.ws}/api/v1/segmented`, { autoPong: false })
  const live = await Client.connect(t, `${server.ws}/api/v1/segmented`)
  const closed = await silent.closed
  t.ok(silent.pings >= 1, `the silent client was pinged (${silent.pings}) and did not answer`)
  t.equal(closed.code, 1006, 'it was dropped without a closing handshake (terminated): 1006 on the client')
  t.same(silent.events, [], 'no event was sent to it')
  // Counted in pings, not seconds: still open after many ping intervals.
  const from = live.pings
  await waitUntil('the answering client got 5 more pings', () => live.pings >= from + 5 || !live.open)
  t.ok(live.open, `the client that answers stays open after ${live.pings} pings`)
  t.same(live.events, [], 'and got no error')
  live.ws.close()
  await live.closed
})

t.test('idle: a WebSocket that never starts a stream is closed with idle_timeout; keepalives keep one open', async (t) => {
  const silent = await Client.connect(t, `${idleServer.ws}/api/v1/segmented`)
  const kept = await Client.connect(t, `${idleServer.ws}/api/v1/segmented`)
  const opened = performance.now()
  let keepalives = 0
  const timer = setInterval(() => {
    kept.send({ request: 'keepalive' })
    keepalives++
  }, 100)
  t.teardown(() => { clearInterval(timer) })

  const closed = await silent.closed
  t.equal(closed.code, 1008, 'closed with 1008')
  t.equal(silent.events.length, 1, 'after one event')
  const error = silent.events[0] as ErrorEvent
  t.equal(error.type, 'error', 'an error event')
  t.equal(error.code, 'idle_timeout', 'idle_timeout')
  t.match(error.message, /idle_timeout_seconds/, 'naming the limit')

  // The kept socket outlives several idle limits (measured from when it opened, a lower bound).
  await waitUntil('five idle limits passed', () => (performance.now() - opened) / 1000 > 5 * IDLE_SECONDS || !kept.open)
  clearInterval(timer)
  t.ok(kept.open, `a socket sending a keepalive every 100 ms stays open past 5 idle limits (${keepalives} keepalives)`)
  t.same(kept.events, [], 'and a keepalive with no stream is answered with nothing')
  // Once the keepalives stop, the idle limit applies to it too.
  const keptClosed = await kept.closed
  t.equal(keptClosed.code, 1008, 'once they stop, it is closed like the other')
  t.equal((kept.events[0] as ErrorEvent | undefined)?.code, 'idle_timeout', 'with idle_timeout')
})

t.test('idle: a stream that gets no audio ends with idle_timeout after its results, then 1008', async (t) => {
  const client = await Client.connect(t, `${idleServer.ws}/api/v1/segmented`)
  client.send({ request: 'start', format: FORMAT })
  const closed = await client.closed
  const types = client.events.map((e) => e.type)
  t.same(types.slice(-2), ['error', 'end'], 'the error, then end, last')
  t.notOk(types.includes('segment'), 'there were no results')
  t.equal((client.events.at(-2) as ErrorEvent).code, 'idle_timeout', 'idle_timeout')
  t.equal(closed.code, 1008, 'then the server closes with 1008')
  await waitUntil('the stream is freed', () => idleServer.app.streamer.registry.size === 0)
})

t.test('stop with disconnect and no stream running closes the socket with 1000', async (t) => {
  const client = await Client.connect(t, `${server.ws}/api/v1/segmented`)
  client.send({ request: 'stop', disconnect: true })
  const closed = await client.closed
  t.equal(closed.code, 1000, 'a normal close')
  t.same(client.events, [], 'no stop_without_start error: the client only wanted to leave')
})

t.test('a plain HTTP GET on a WebSocket route answers 426 with the error body', async (t) => {
  for (const mode of ['segmented', 'simple']) {
    const response = await fetch(`${server.http}/api/v1/${mode}`)
    t.equal(response.status, 426, `GET /api/v1/${mode}: 426`)
    t.match(response.headers.get('content-type'), /^application\/json/, 'a JSON body')
    const body = await response.json() as Record<string, unknown>
    t.equal(body.code, 'upgrade_required', 'code upgrade_required')
    t.match(body.message, new RegExp(`ws://.*/api/v1/${mode}`), 'the message says how to connect')
    t.same(Object.keys(body).filter((key) => !['code', 'message', 'field'].includes(key)), [], 'only code, message and field')
  }
})

// ---------------------------------------------------------------------------------------------
// HTTP/2: limits.max_streams_per_connection is SETTINGS_MAX_CONCURRENT_STREAMS

const UPLOAD_PATH = `/api/v1/simple?sample_rate=${FORMAT.sample_rate}&channels=1&bit_depth=16`
const registry = server.app.streamer.registry
// The most HTTP streams the server ever had open at once, from the registry's own changes.
let mostHttp = 0
registry.onChange(() => { mostHttp = Math.max(mostHttp, registry.count('http')) })

interface Upload {
  stream: http2.ClientHttp2Stream
  status: number | null // the response's :status, once it came
  body: string
  closed: boolean
  error: (Error & { code?: string }) | null
}

function upload (session: http2.ClientHttp2Session): Upload {
  const stream = session.request({ ':method': 'POST', ':path': UPLOAD_PATH, 'content-type': 'application/octet-stream' })
  const entry: Upload = { stream, status: null, body: '', closed: false, error: null }
  stream.on('response', (headers) => { entry.status = Number(headers[':status']) })
  stream.on('error', (error) => { entry.error = error })
  stream.on('close', () => { entry.closed = true })
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => { entry.body += chunk })
  stream.write(new Uint8Array(640)) // 20 ms of silence; the body stays open
  return entry
}

async function closeSession (session: http2.ClientHttp2Session): Promise<void> {
  if (session.closed) return
  const closed = new Promise((resolve) => { session.once('close', resolve) })
  session.close()
  await closed
}

t.test('HTTP/2: a client that knows the cap has its extra streams queued until others end', async (t) => {
  mostHttp = 0
  const session = http2.connect(server.http)
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  await new Promise((resolve) => { session.once('remoteSettings', resolve) })
  t.equal(session.remoteSettings.maxConcurrentStreams, STREAMS_PER_CONNECTION, 'the server advertises the cap in SETTINGS')

  const uploads = Array.from({ length: 8 }, () => upload(session))
  const first = uploads.slice(0, STREAMS_PER_CONNECTION)
  const extra = uploads.slice(STREAMS_PER_CONNECTION)
  await waitUntil('the first five are answered', () => first.every((u) => u.status !== null))
  t.equal(registry.count('http'), STREAMS_PER_CONNECTION, 'exactly five streams are open on the server')
  // Node's client (nghttp2) holds the HEADERS of streams past the peer's cap: nothing reached
  // the server, so nothing can open there until a stream ends.
  // A PING is answered after every frame sent before it was handled: the count is final.
  await new Promise<void>((resolve, reject) => { session.ping((error) => { if (error === null) resolve(); else reject(error) }) })
  t.equal(registry.count('http'), STREAMS_PER_CONNECTION, 'still five once the server has handled everything the client sent')
  t.ok(extra.every((u) => u.status === null && !u.closed && u.error === null), 'the other three are neither answered nor refused: queued by the client')

  for (const u of uploads) u.stream.end()
  await waitUntil('every upload finished', () => uploads.every((u) => u.closed), 20000)
  t.same(uploads.map((u) => u.status), uploads.map(() => 200), 'all eight were served, the queued ones once others ended')
  t.ok(uploads.every((u) => u.error === null), 'with no stream error')
  t.ok(uploads.every((u) => /event: end\n/.test(u.body)), 'each with its end event')
  t.equal(mostHttp, STREAMS_PER_CONNECTION, 'the server never had more than five open')
  await closeSession(session)
  await waitUntil('the streams are freed', () => registry.size === 0)
})

t.test('HTTP/2: streams opened before the SETTINGS arrived are refused past the cap (REFUSED_STREAM)', async (t) => {
  mostHttp = 0
  // All eight are sent with the connection preface, before the server's SETTINGS can arrive.
  const session = http2.connect(server.http)
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  const uploads = Array.from({ length: 8 }, () => upload(session))
  const first = uploads.slice(0, STREAMS_PER_CONNECTION)
  const extra = uploads.slice(STREAMS_PER_CONNECTION)
  await waitUntil('the first five are answered and the rest settled', () => first.every((u) => u.status !== null) && extra.every((u) => u.closed))
  await new Promise<void>((resolve, reject) => { session.ping((error) => { if (error === null) resolve(); else reject(error) }) })
  t.equal(registry.count('http'), STREAMS_PER_CONNECTION, 'exactly five streams are open on the server once it has handled everything sent')
  t.same(extra.map((u) => u.stream.rstCode), extra.map(() => http2.constants.NGHTTP2_REFUSED_STREAM), 'the other three were reset with REFUSED_STREAM')
  t.ok(extra.every((u) => u.status === null && u.error?.code === 'ERR_HTTP2_STREAM_ERROR'), 'with no response: Node reports a stream error')

  // REFUSED_STREAM means not processed, so safe to retry: on the same connection once others end.
  for (const u of first) u.stream.end()
  await waitUntil('the first five finished', () => first.every((u) => u.closed), 20000)
  t.ok(first.every((u) => u.status === 200 && /event: end\n/.test(u.body)), 'the first five were served to their end')
  const retried = extra.map(() => upload(session))
  for (const u of retried) u.stream.end()
  await waitUntil('the retries finished', () => retried.every((u) => u.closed), 20000)
  t.ok(retried.every((u) => u.status === 200 && /event: end\n/.test(u.body)), 'the refused uploads, retried, were served')
  t.equal(mostHttp, STREAMS_PER_CONNECTION, 'the server never had more than five open')
  await closeSession(session)
  await waitUntil('the streams are freed', () => registry.size === 0)
})
