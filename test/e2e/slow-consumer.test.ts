import t from 'tap'
import type { Test } from 'tap'
import http from 'node:http'
import http2 from 'node:http2'
import type { Socket } from 'node:net'
import WebSocket from 'ws'
import type { EndEvent, ErrorEvent, SegmentEvent, StreamEvent } from '../../schemas/events.ts'
import type { PairedSessionCreated } from '../../schemas/paired-session.ts'
import type { Stream } from '../../src/core/stream.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'
import { startServer } from '../helpers/server.ts'
import { waitUntil } from '../helpers/waiting.ts'

// A client that stops reading its events cannot make the server hold unbounded memory
// (limits.max_outbound_bytes), on every transport, with real clients on a real port:
//
// - WebSocket and the HTTP upload (SSE): while the client's unread events exceed the limit,
//   interim segments are dropped (counted in end.interim_segments_dropped) and a final that
//   would be dropped ends the stream with `slow_consumer` instead.
// - Paired sessions: an events reader that does not read is closed; the stream goes on, and a
//   reader that comes back with Last-Event-ID gets the rest from the replay buffer.
//
// Every result of the big-output model is ~1 MB, so a client that stops reading fills the
// kernel's socket buffers (a few MB on loopback: ~4 MB where this was written) within a handful
// of interims; with 200 KB events the first utterance's interims all fit in the kernel and
// nothing is ever dropped. Over HTTP/2 the stream's flow-control window (64 KB) fills instead.
// The scenarios are sequenced by the server's state, never by timing: audio goes in one small
// chunk at a time, and the next waits until the stream has taken the previous one and its VAD
// and model work are done (see sendWhileNotReading).

const MAX_OUTBOUND = 65536
const PADDING = 1_000_000
// Small events (active, inactive, the error, SSE comments) are written whatever the backlog.
const SLACK = 4096
const server = await startServer({
  model: { module: new URL('../fixtures/models/big-output-model.ts', import.meta.url).href, threads: 2, options: { padding: PADDING } },
  limits: { max_outbound_bytes: MAX_OUTBOUND, interim_interval_ms: 100 }
})
t.teardown(() => server.close())
const registry = server.app.streamer.registry

// The server's side of every connection, by the client's port: what it holds for the client,
// unsent (writableLength: what ws reports as bufferedAmount, and what an HTTP/1.1 response's
// writableLength adds to its own).
const serverSockets = new Map<number, Socket>()
server.app.server.on('connection', (socket: Socket) => {
  const port = socket.remotePort
  if (port === undefined) return
  serverSockets.set(port, socket)
  socket.once('close', () => { if (serverSockets.get(port) === socket) serverSockets.delete(port) })
})
function serverSideOf (client: Socket): Socket {
  const socket = serverSockets.get(client.localPort ?? -1)
  if (socket === undefined) throw new Error(`no server-side socket for client port ${client.localPort}`)
  return socket
}

// The paired events responses, to see the server close a reader its client cannot tell about.
const eventsResponses: Array<{ url: string, response: http.ServerResponse }> = []
server.app.server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
  if (request.url?.endsWith('/events') === true) eventsResponses.push({ url: request.url, response })
})

const fixture = loadFixture('hello_16k_mono') // 16 kHz: no resampler, so no flush tail at the stop
const FORMAT = fixture.format
const SPEECH = fixture.speech[0]?.[0] ?? [0, 0] // the first utterance, [0.5, 2.933] s
// Three VAD frames (3 x 512 samples) per chunk: every chunk is one VAD task and leaves no
// partial frame behind, so "the server is done with it" is exactly heldSeconds === 0; an
// interim is due every 1600 samples (interim_interval_ms 100), about one per chunk.
const CHUNK = 3 * 512 * 2
// The audio sent while the client does not read stops 0.2 s before the first utterance ends:
// the VAD never sees its end there, so no final comes until the stop flushes open speech.
const SPEECH_LIMIT = Math.floor((SPEECH[1] - 0.2) * FORMAT.sample_rate * 2 / CHUNK) * CHUNK
// Chunks of speech sent after the backlog passed the limit. An interim is due every 4 VAD
// frames (1600 samples, rounded up to whole frames), so their 15 frames are due at least 3, each
// dropped, unless the previous interim's inference is still running when one is due: that one
// is skipped, not dropped (one interim in flight per channel). The test waits for the VAD of
// each chunk, not for its inference, so on a loaded machine (CI beside other work) that happens:
// at least one is dropped, whatever the load.
const AFTER_FULL = 5
const MIN_DROPPED = 1

async function openedStream (transport: Stream['transport']): Promise<Stream> {
  let found: Stream | undefined
  await waitUntil(`a ${transport} stream is open`, () => {
    found = [...registry.entries()].find((s) => s.transport === transport)
    return found !== undefined
  })
  return found as Stream
}

// Audio bytes the server's sessions have taken, by transport: the barrier that says a chunk
// reached the stream (on HTTP/2 the client's writes leave through nghttp2, and a PING may
// overtake DATA, so no socket counter or round trip says it as reliably).
async function audioReceived (transport: Stream['transport']): Promise<number> {
  const text = await (await fetch(`${server.http}/metrics`)).text()
  return sampleValue(parsePrometheusText(text), 'streamer_audio_received_bytes_total', 'streamer_audio_received_bytes_total', { transport }) ?? 0
}

// One client that stops reading, whatever its transport.
interface Consumer {
  readonly transport: Stream['transport']
  events: () => StreamEvent[] // as received, in order
  largest: () => number // the biggest event on the wire, framing included
  write: (chunk: Uint8Array) => void // audio
  stop: () => void // the client's stop
  resume: () => void // reads again
  finished: Promise<void> // the server's side is over: the socket closed, the response ended
  backlog: (() => number) | null // what the server holds unsent for it, where a test can see it
}

interface PausedPhase {
  maxBacklog: number | null // the most the server held unsent for the client, sampled after every chunk
  fullAt: number // the chunk after which the backlog first exceeded the limit
}

// Sends speech one chunk at a time while the client does not read, until the server's backlog
// for it passed max_outbound_bytes and AFTER_FULL more chunks of speech were worked through.
// Each chunk waits until the stream has taken it and its VAD and model work are done (every
// interim it started was sent or dropped). While the client does not read the backlog never
// shrinks, so sampling it once per chunk sees its maximum.
async function sendWhileNotReading (t: Test, stream: Stream, client: Consumer): Promise<PausedPhase | null> {
  const base = await audioReceived(client.transport)
  let sent = 0
  let maxBacklog: number | null = null
  let fullAt = -1
  let chunks = 0
  for (let at = 0; at < SPEECH_LIMIT; at += CHUNK) {
    const chunk = fixture.pcm.subarray(at, at + CHUNK)
    client.write(chunk)
    sent += chunk.length
    chunks++
    await waitUntil('the stream took the chunk', async () => await audioReceived(client.transport) === base + sent)
    await waitUntil('the server worked through it', () => stream.session.heldSeconds === 0)
    if (client.backlog !== null) maxBacklog = Math.max(maxBacklog ?? 0, client.backlog())
    if (fullAt < 0 && stream.outboundFull()) fullAt = chunks
    if (fullAt >= 0 && chunks >= fullAt + AFTER_FULL) break
  }
  if (fullAt < 0 || chunks < fullAt + AFTER_FULL) {
    t.fail(`the backlog must pass the limit with ${AFTER_FULL} chunks of speech to spare (passed after chunk ${fullAt} of ${chunks}; holding ${client.backlog?.()} bytes): the socket buffers took more than this test expects`)
    return null
  }
  t.ok(stream.outboundFull(), `the server's unread backlog passed max_outbound_bytes after ${fullAt} chunk(s) and stayed past it`)
  t.equal(stream.state, 'streaming', 'interims past the limit are dropped: the stream goes on')
  return { maxBacklog, fullAt }
}

function assertBound (t: Test, phase: PausedPhase, client: Consumer): void {
  const largest = client.largest()
  t.ok(largest > PADDING, `events are large (${largest} bytes)`)
  if (phase.maxBacklog === null) {
    t.comment('the backlog is held in the server\'s HTTP/2 stream, out of this test\'s sight: not bounded here')
    return
  }
  // An event is written only while the backlog is within the limit, so the backlog is at most
  // the limit plus one event (plus the small events written regardless). What the kernel's
  // buffers held on top of it cannot be measured from here, so the bytes the client receives
  // after resuming are not bounded in this test.
  t.ok(phase.maxBacklog <= MAX_OUTBOUND + largest + SLACK,
    `the server held at most max_outbound_bytes + one event unsent (${phase.maxBacklog} <= ${MAX_OUTBOUND} + ${largest} + ${SLACK})`)
}

const segments = (events: StreamEvent[], final: boolean): SegmentEvent[] =>
  events.filter((e): e is SegmentEvent => e.type === 'segment' && e.is_final === final)

// The client reads again before any final is due; the stop then flushes the open utterance,
// whose final is sent once the server's backlog is back within the limit.
async function readsAgainBeforeTheFinal (t: Test, client: Consumer, stream: Stream, phase: PausedPhase): Promise<StreamEvent[]> {
  client.resume()
  await waitUntil('the client has taken the events past the limit', () => !stream.outboundFull())
  client.stop()
  await stream.closed
  t.equal(stream.state, 'ended', 'the stream ended normally')
  if (client.transport !== 'websocket') await client.finished
  else await waitUntil('end arrived', () => client.events().at(-1)?.type === 'end')
  const events = client.events()
  const end = events.at(-1) as EndEvent
  t.equal(end.type, 'end', 'the last event is end')
  t.notOk(events.some((e) => e.type === 'error'), 'no error event')
  t.ok((end.interim_segments_dropped[0] ?? 0) >= MIN_DROPPED, `interims were dropped while the client did not read (${end.interim_segments_dropped[0]}, at least ${MIN_DROPPED})`)
  t.equal(segments(events, false).length, end.interim_segments[0], 'every interim counted as sent reached the client')
  t.equal(segments(events, true).length, 1, 'the final reached the client')
  t.same(end.segments, [1], 'and was counted')
  t.same(events.slice(-2).map((e) => e.type), ['segment', 'end'], 'the final, then end')
  assertBound(t, phase, client)
  return events
}

// The stop while the client still does not read: the flushed final cannot be delivered.
async function neverReadsBeforeTheFinal (t: Test, client: Consumer, stream: Stream, phase: PausedPhase): Promise<StreamEvent[]> {
  client.stop()
  await stream.closed
  t.equal(stream.state, 'aborted', 'the server ended the stream at once')
  client.resume()
  await client.finished
  const events = client.events()
  const last = events.at(-1) as ErrorEvent
  t.equal(last.type, 'error', 'the last event is an error')
  t.equal(last.code, 'slow_consumer', 'slow_consumer')
  t.match(last.message, /max_outbound_bytes/, 'naming the limit')
  t.notOk(events.some((e) => e.type === 'end'), 'no end event')
  t.equal(segments(events, true).length, 0, 'the final was not delivered')
  t.ok(segments(events, false).length > 0, 'the interims written before the limit were')
  assertBound(t, phase, client)
  return events
}

// ---------------------------------------------------------------------------------------------
// WebSocket

interface WsConsumer extends Consumer { closed: Promise<{ code: number, reason: string }>, ws: WebSocket }

// A `ws` client as a user would write one; its net.Socket finds the server's side.
async function wsNotReading (t: Test): Promise<{ client: WsConsumer, stream: Stream, phase: PausedPhase } | null> {
  const ws = new WebSocket(`${server.ws}/api/v1/segmented`)
  t.teardown(() => { ws.terminate() })
  let net: Socket | undefined
  ws.once('upgrade', (response) => { net = response.socket })
  const events: StreamEvent[] = []
  let largest = 0
  ws.on('message', (data: Buffer) => {
    largest = Math.max(largest, data.length + 14) // + the largest frame header
    events.push(JSON.parse(data.toString()) as StreamEvent)
  })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => { ws.once('close', (code, reason) => { resolve({ code, reason: reason.toString() }) }) })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => { resolve() })
    ws.once('error', reject)
  })
  if (net === undefined) throw new Error('no upgrade response')
  const serverSide = serverSideOf(net)
  ws.send(JSON.stringify({ request: 'start', format: FORMAT, interim_results: true }))
  ws.pause() // from here the client reads nothing: TCP fills, then the server's buffer
  const client: WsConsumer = {
    transport: 'websocket',
    ws,
    closed,
    events: () => events,
    largest: () => largest,
    write: (chunk) => { ws.send(chunk) },
    stop: () => { ws.send(JSON.stringify({ request: 'stop' })) },
    resume: () => { ws.resume() },
    finished: closed.then(() => {}),
    // ws's bufferedAmount on the server's side: its socket's writableLength (no compression).
    backlog: () => serverSide.writableLength
  }
  const stream = await openedStream('websocket')
  const phase = await sendWhileNotReading(t, stream, client)
  return phase === null ? null : { client, stream, phase }
}

t.test('WebSocket: a client that stops reading for a while loses interims, never finals', async (t) => {
  const run = await wsNotReading(t)
  if (run === null) return
  const { client, stream, phase } = run
  await readsAgainBeforeTheFinal(t, client, stream, phase)
  t.equal(client.ws.readyState, WebSocket.OPEN, 'the connection stays open')
  client.ws.close()
  await client.closed
  await waitUntil('the stream is freed', () => registry.size === 0)
})

t.test('WebSocket: a final due while the client does not read ends the stream with slow_consumer', async (t) => {
  const run = await wsNotReading(t)
  if (run === null) return
  const { client, stream, phase } = run
  await neverReadsBeforeTheFinal(t, client, stream, phase)
  t.equal((await client.closed).code, 1008, 'then the server closes with 1008')
  await waitUntil('the stream is freed', () => registry.size === 0)
})

// ---------------------------------------------------------------------------------------------
// The HTTP upload (SSE): HTTP/1.1 with the response paused, HTTP/2 with the stream paused

interface SseEvent { id: number, name: string, event: StreamEvent }

// Reads text/event-stream blocks; `largest` is the biggest block, plus transfer framing.
class SseParser {
  readonly received: SseEvent[] = []
  largest = 0
  #buffer = ''

  feed (chunk: string): void {
    this.#buffer += chunk
    let at: number
    while ((at = this.#buffer.indexOf('\n\n')) >= 0) {
      const block = this.#buffer.slice(0, at)
      this.#buffer = this.#buffer.slice(at + 2)
      this.largest = Math.max(this.largest, block.length + 2 + 16)
      let id = -1
      let name = 'message'
      let data: string | null = null
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) id = Number(line.slice(4))
        else if (line.startsWith('event: ')) name = line.slice(7)
        else if (line.startsWith('data: ')) data = line.slice(6)
      }
      if (data !== null) this.received.push({ id, name, event: JSON.parse(data) as StreamEvent })
    }
  }

  get events (): StreamEvent[] { return this.received.map((r) => r.event) }
}

interface SseConsumer extends Consumer { sse: SseParser, complete: () => boolean }

function sseConsumer (sse: SseParser, parts: Pick<SseConsumer, 'write' | 'stop' | 'resume' | 'finished' | 'backlog' | 'complete'>): SseConsumer {
  return { transport: 'http', sse, events: () => sse.events, largest: () => sse.largest, ...parts }
}

const UPLOAD_PATH = `/api/v1/segmented?sample_rate=${FORMAT.sample_rate}&channels=1&bit_depth=16&interim_results=true`

async function http1Upload (t: Test): Promise<SseConsumer> {
  const request = http.request(`${server.http}${UPLOAD_PATH}`, {
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' }
  })
  request.on('error', () => {})
  t.teardown(() => { request.destroy() })
  request.flushHeaders()
  const response = await new Promise<http.IncomingMessage>((resolve) => { request.once('response', resolve) })
  t.equal(response.statusCode, 200, 'the upload is answered at once with the event stream')
  response.pause() // from here the client reads nothing
  const sse = new SseParser()
  response.setEncoding('utf8')
  response.on('data', (chunk: string) => { sse.feed(chunk) })
  const serverSide = serverSideOf(request.socket as Socket)
  return sseConsumer(sse, {
    write: (chunk) => { request.write(chunk) },
    stop: () => { request.end() }, // the end of the body is the stop
    resume: () => { response.resume() },
    finished: new Promise<void>((resolve) => { response.once('end', resolve); response.once('close', resolve) }),
    // The response's writableLength is its own buffer plus its socket's.
    backlog: () => serverSide.writableLength,
    complete: () => response.complete
  })
}

async function http2Upload (t: Test): Promise<SseConsumer> {
  const session = http2.connect(server.http)
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  const request = session.request({ ':method': 'POST', ':path': UPLOAD_PATH, 'content-type': 'application/octet-stream' })
  request.on('error', () => {})
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => { request.once('response', resolve) })
  t.equal(headers[':status'], 200, 'the upload is answered at once with the event stream')
  request.pause() // from here the client reads nothing: no WINDOW_UPDATE, the stream's window fills
  const sse = new SseParser()
  request.setEncoding('utf8')
  request.on('data', (chunk: string) => { sse.feed(chunk) })
  let ended = false
  request.once('end', () => { ended = true })
  return sseConsumer(sse, {
    write: (chunk) => { request.write(chunk) },
    stop: () => { request.end() },
    resume: () => { request.resume() },
    finished: new Promise<void>((resolve) => { request.once('close', resolve) }).then(() => { session.close() }),
    backlog: null,
    // END_STREAM from the server, and no reset other than NO_ERROR (stopUpload's, after it).
    complete: () => ended && request.rstCode === http2.constants.NGHTTP2_NO_ERROR
  })
}

function assertIds (t: Test, sse: SseParser): void {
  t.same(sse.received.map((r) => r.id), sse.received.map((_, i) => i), 'ids run from 0 with no gap')
  t.same(sse.received.map((r) => r.name), sse.received.map((r) => r.event.type), '`event:` is the event type')
}

for (const [protocol, open] of [['HTTP/1.1', http1Upload], ['HTTP/2', http2Upload]] as const) {
  t.test(`HTTP upload over ${protocol} (SSE): a client that stops reading for a while loses interims, never finals`, async (t) => {
    const client = await open(t)
    const stream = await openedStream('http')
    const phase = await sendWhileNotReading(t, stream, client)
    if (phase === null) return
    await readsAgainBeforeTheFinal(t, client, stream, phase)
    t.ok(client.complete(), 'the response ended after end')
    assertIds(t, client.sse)
    await waitUntil('the stream is freed', () => registry.size === 0)
  })

  t.test(`HTTP upload over ${protocol} (SSE): a final due while the client does not read ends the stream with slow_consumer`, async (t) => {
    const client = await open(t)
    const stream = await openedStream('http')
    const phase = await sendWhileNotReading(t, stream, client)
    if (phase === null) return
    await neverReadsBeforeTheFinal(t, client, stream, phase)
    t.ok(client.complete(), 'the server ended the response after the error (not a cut connection)')
    assertIds(t, client.sse)
    await waitUntil('the stream is freed', () => registry.size === 0)
  })
}

// ---------------------------------------------------------------------------------------------
// Paired sessions

interface Reader { request: http.ClientRequest, response: http.IncomingMessage, sse: SseParser, ended: Promise<void>, net: Socket }

async function openReader (t: Test, url: string, headers: Record<string, string> = {}): Promise<Reader> {
  const request = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } })
  request.on('error', () => {})
  t.teardown(() => { request.destroy() })
  const response = await new Promise<http.IncomingMessage>((resolve) => { request.once('response', resolve) })
  t.equal(response.statusCode, 200, 'the events stream opens')
  const sse = new SseParser()
  response.setEncoding('utf8')
  response.on('data', (chunk: string) => { sse.feed(chunk) })
  const ended = new Promise<void>((resolve) => { response.once('end', resolve); response.once('close', resolve) })
  return { request, response, sse, ended, net: request.socket as Socket }
}

async function postJson (path: string, body?: unknown): Promise<{ status: number, json: Record<string, unknown> }> {
  const response = await fetch(`${server.http}${path}`, {
    method: 'POST',
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

t.test('paired session: a reader that stops reading is closed, the stream goes on, and Last-Event-ID gets the rest', async (t) => {
  const created = await postJson('/api/v1/sessions', { mode: 'segmented', format: FORMAT, interim_results: true })
  t.equal(created.status, 201, 'the session is created')
  const session = created.json as unknown as PairedSessionCreated
  const first = await openReader(t, `${server.http}${session.events_url}`)
  first.response.pause() // the reader reads nothing from here
  const served = eventsResponses.find((e) => e.url === session.events_url)?.response
  if (served === undefined) throw new Error('the events response was not seen')
  const serverSide = serverSideOf(first.net)
  const stream = await openedStream('paired')

  // Chunks are applied when their POST answers, so no byte counting is needed here.
  let seq = 0
  let closedAt = -1
  let maxBuffered = 0
  for (let at = 0; at < fixture.pcm.length; at += CHUNK, seq++) {
    const response = await fetch(`${server.http}${session.audio_url}?seq=${seq}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: fixture.pcm.subarray(at, at + CHUNK)
    })
    await response.arrayBuffer()
    if (response.status !== 200) throw new Error(`seq ${seq} answered ${response.status}`)
    await waitUntil('the server worked through the chunk', () => stream.session.heldSeconds === 0)
    maxBuffered = Math.max(maxBuffered, serverSide.writableLength)
    if (closedAt < 0 && served.writableEnded) closedAt = seq
    if (closedAt >= 0 && seq >= closedAt + AFTER_FULL) break
  }
  t.ok(closedAt >= 0, `the server closed the reader that did not read (after chunk ${closedAt})`)
  t.equal(stream.state, 'streaming', 'the stream goes on without it')

  // The rest of the audio, then the stop: the session ends with nobody reading.
  const statuses = new Set<number>()
  for (let at = (seq + 1) * CHUNK; at < fixture.pcm.length; at += CHUNK) {
    seq++
    const response = await fetch(`${server.http}${session.audio_url}?seq=${seq}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: fixture.pcm.subarray(at, at + CHUNK)
    })
    await response.arrayBuffer()
    statuses.add(response.status)
  }
  t.same([...statuses], [200], 'the rest of the audio was taken after the reader was closed')
  t.equal((await postJson(session.stop_url)).status, 202, 'the stop is accepted')
  await stream.closed
  t.equal(stream.state, 'ended', 'the stream ended normally')

  // The first reader gets what was written before it was closed, then the end of the response.
  first.response.resume()
  await first.ended
  t.ok(first.response.complete, 'the server ended the first reader\'s response')
  const firstIds = first.sse.received.map((r) => r.id)
  t.ok(firstIds.length > 0, `the first reader got events before it stopped reading (${firstIds.length})`)
  t.same(firstIds, firstIds.map((_, i) => i + 1), 'ids from 1 with no gap')
  t.notOk(first.sse.events.some((e) => e.type === 'end'), 'but not the end')
  const lastId = firstIds.at(-1) ?? 0
  t.ok(maxBuffered <= MAX_OUTBOUND + first.sse.largest + SLACK,
    `the server held at most max_outbound_bytes + one event for it (${maxBuffered} <= ${MAX_OUTBOUND} + ${first.sse.largest} + ${SLACK})`)

  // A second reader resumes after the last id it has and reads as events come.
  const second = await openReader(t, `${server.http}${session.events_url}`, { 'last-event-id': String(lastId) })
  await second.ended
  const secondIds = second.sse.received.map((r) => r.id)
  t.comment(`first reader: ids 1-${lastId}; second reader: ${secondIds.length} events, ids ${secondIds[0]}-${secondIds.at(-1)}; the session logged ${[...first.sse.received, ...second.sse.received].length}`)
  t.same(secondIds, secondIds.map((_, i) => lastId + 1 + i), 'the replay starts right after Last-Event-ID, with no gap')
  const events = [...first.sse.events, ...second.sse.events]
  const end = events.at(-1) as EndEvent
  t.equal(end.type, 'end', 'the replay goes up to end')
  t.same(end.interim_segments_dropped, [0], 'nothing was dropped: the replay buffer kept it all')
  t.equal(segments(events, false).length, end.interim_segments[0], 'every interim, between the two readers')
  t.equal(segments(events, true).length, end.segments[0], 'every final, between the two readers')
  t.ok(segments(events, true).length >= 1, 'finals were among them')
  t.notOk(events.some((e) => e.type === 'error'), 'no error event')
})
