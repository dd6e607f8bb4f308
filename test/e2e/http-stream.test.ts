import t from 'tap'
import type { Test } from 'tap'
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import WebSocket from 'ws'
import type { EndEvent, ErrorEvent, SegmentEvent, StreamEvent } from '../../schemas/events.ts'
import { FIXTURE_NAMES, loadFixture, type Fixture } from '../helpers/fixtures.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth, assertSimpleCoversAudio } from '../helpers/speech-assertions.ts'
import { WsClient } from '../helpers/ws-client.ts'
import { SseCollector } from '../helpers/sse-collector.ts'
import { sleep, until } from '../helpers/waiting.ts'

// The HTTP streaming upload against a real listening server (port 0): curl and Node's own
// clients, HTTP/2 cleartext (prior knowledge), HTTP/1.1 chunked, TLS with ALPN, and the
// WebSocket on the same port.
const LIMIT = 2_000_000 // limits.max_upload_bytes: above every fixture's size
const server = await startServer({ limits: { max_upload_bytes: LIMIT } })
t.teardown(() => server.close())

const bytesPer100ms = (format: Fixture['format']): number => format.sample_rate / 10 * format.channels * format.bit_depth / 8
const formatQuery = (fixture: Fixture, extra = ''): string =>
  `sample_rate=${fixture.format.sample_rate}&channels=${fixture.format.channels}&bit_depth=${fixture.format.bit_depth}&is_float=${fixture.format.is_float}${extra}`

// Writes audio into a request body in small chunks with pauses, as a live source would. With
// holdAt, it stops there until `hold` settles: a server that answered only at the end of the
// body would never release it before the hold gives up.
async function produce (sink: Writable, bytes: Uint8Array, options: { chunkBytes: number, pauseMs: number, holdAt?: number, hold?: () => Promise<unknown> }): Promise<void> {
  let held = false
  for (let at = 0; at < bytes.length; at += options.chunkBytes) {
    if (!held && options.hold !== undefined && at >= (options.holdAt ?? 0)) {
      held = true
      await options.hold()
    }
    if (sink.destroyed || sink.writableEnded) return
    if (!sink.write(bytes.subarray(at, at + options.chunkBytes))) await drainOrClose(sink)
    await sleep(options.pauseMs)
  }
  sink.end()
}

// A body the server stopped (reset) never drains.
async function drainOrClose (sink: Writable): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => {
      sink.off('drain', done)
      sink.off('close', done)
      resolve()
    }
    sink.on('drain', done)
    sink.on('close', done)
  })
}

// Streams a fixture's PCM into `sink`, holding after 5 s of audio (past the first utterance of
// every fixture) until a `segment` event arrives; asserts it arrived before the upload ended.
async function assertEventsWhileUploading (t: Test, sse: SseCollector, sink: Writable, fixture: Fixture): Promise<StreamEvent[]> {
  let wroteAll = false
  const holdAt = bytesPer100ms(fixture.format) * 50
  const producing = produce(sink, fixture.pcm, {
    chunkBytes: bytesPer100ms(fixture.format),
    pauseMs: 5,
    holdAt,
    hold: () => sse.waitFor((e) => e.type === 'segment', 20000).catch(() => undefined)
  }).then(() => { wroteAll = true })
  await sse.waitFor((e) => e.type === 'segment', 60000)
  t.notOk(wroteAll, 'the first segment arrived while the upload was still going')
  await producing
  return sse.waitForEnd()
}

function assertIds (t: Test, sse: SseCollector): void {
  t.same(sse.ids, sse.events.map((_, i) => i), 'ids run from 0')
  t.same(sse.names, sse.events.map((e) => e.type), '`event:` is the event type')
}

interface CurlRun { child: ChildProcessWithoutNullStreams, sse: SseCollector, exit: Promise<number | null>, stderr: () => string }

// curl as a user runs it, killed if it outlives the test.
function curl (t: Test, args: string[], timeoutMs = 60000): CurlRun {
  const child = spawn('curl', ['-sS', '-N', ...args])
  const sse = new SseCollector()
  let stderr = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => { sse.feed(chunk) })
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => { stderr += chunk })
  child.stdin.on('error', () => {}) // curl may leave before the producer does
  const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
  const exit = new Promise<number | null>((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer)
      sse.end()
      resolve(code)
    })
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  return { child, sse, exit, stderr: () => stderr }
}

interface H2Upload { session: http2.ClientHttp2Session, stream: http2.ClientHttp2Stream, sse: SseCollector, response: Promise<http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader> }

// A streaming upload with Node's http2 client; the body is written by the caller.
function h2Upload (t: Test, origin: string, path: string, headers: http2.OutgoingHttpHeaders, options: http2.SecureClientSessionOptions = {}): H2Upload {
  const session = http2.connect(origin, options)
  session.on('error', () => {})
  const stream = session.request({ ':method': 'POST', ':path': path, ...headers })
  stream.on('error', () => {})
  const sse = new SseCollector()
  const response = new Promise<http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader>((resolve, reject) => {
    stream.once('response', resolve)
    stream.once('close', () => { reject(new Error(`stream closed before a response (rst ${stream.rstCode})`)) })
  })
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => { sse.feed(chunk) })
  stream.on('close', () => { sse.end() })
  t.teardown(() => { session.destroy() })
  return { session, stream, sse, response }
}

// One whole HTTP/2 request; the response body as text.
async function h2Request (t: Test, path: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array | string, method = 'POST'): Promise<{ status: number, headers: http2.IncomingHttpHeaders, json: Record<string, unknown> }> {
  const upload = h2Upload(t, server.http, path, { ':method': method, ...headers })
  upload.stream.end(body)
  const response = await upload.response
  await until(() => upload.sse.ended, 10000)
  upload.session.close()
  return { status: response[':status'] ?? 0, headers: response, json: JSON.parse(upload.sse.text) as Record<string, unknown> }
}

interface Http1Upload { request: http.ClientRequest, sse: SseCollector, response: Promise<http.IncomingMessage> }

// A chunked HTTP/1.1 upload (no Content-Length), over TLS when the URL says https.
function http1Upload (url: string, headers: http.OutgoingHttpHeaders, ca?: string): Http1Upload {
  const options = { method: 'POST', headers: { ...headers, 'transfer-encoding': 'chunked' }, ...(ca !== undefined ? { ca } : {}) }
  const request = url.startsWith('https:') ? https.request(url, options) : http.request(url, options)
  request.on('error', () => {})
  const sse = new SseCollector()
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    request.once('response', (res) => {
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { sse.feed(chunk) })
      res.on('close', () => { sse.end() })
      resolve(res)
    })
    request.once('close', () => { reject(new Error('closed before a response')) })
  })
  response.catch(() => {})
  return { request, sse, response }
}

// Events that do not depend on timing: interim results are produced on a wall-clock schedule
// relative to arrival, so only finals, active/inactive and the end summary are compared.
// Each run's `started` names its own session.
const settled = (events: StreamEvent[], channel: number | null): StreamEvent[] => events
  .filter((e) => e.channel === channel && !(e.type === 'segment' && e.is_final === false))
  .map((e) => e.type === 'end' ? { ...e, interim_segments: [] } : e.type === 'started' ? { ...e, session_id: '' } : e)
const interims = (events: StreamEvent[]): SegmentEvent[] => events.filter((e): e is SegmentEvent => e.type === 'segment' && e.is_final === false)

t.test('curl --http2-prior-knowledge -T . streams stdin: events arrive before the producer finishes', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const run = curl(t, ['--http2-prior-knowledge', '-X', 'POST', '-T', '.', '-H', 'content-type: application/octet-stream',
    `${server.http}/api/v1/segmented?${formatQuery(fixture, '&interim_results=true')}`])
  const events = await assertEventsWhileUploading(t, run.sse, run.child.stdin, fixture)
  t.equal(await run.exit, 0, 'curl exits 0', { stderr: run.stderr() })
  assertSegmentedMatchesTruth(t, events, fixture)
  t.ok(interims(events).length > 0, 'interim results arrived')
  t.ok(run.sse.comments >= 1, 'the stream opens with a comment line')
  assertIds(t, run.sse)
})

t.test('Node http2 client: full duplex, SSE headers, uncompressed', async (t) => {
  const fixture = loadFixture('dialogue_44k_stereo')
  const upload = h2Upload(t, server.http, `/api/v1/segmented?${formatQuery(fixture)}`, {
    'content-type': 'application/octet-stream',
    'accept-encoding': 'gzip, br',
    traceparent: 'not-a-traceparent' // ignored, not refused: it comes from infrastructure
  })
  const eventsDone = assertEventsWhileUploading(t, upload.sse, upload.stream, fixture)
  const response = await upload.response
  t.equal(response[':status'], 200)
  t.match(response['content-type'], /^text\/event-stream/)
  t.match(response['cache-control'], /no-cache/)
  t.equal(response['x-accel-buffering'], 'no')
  t.equal(response['content-encoding'], undefined, 'never compressed')
  const events = await eventsDone
  assertSegmentedMatchesTruth(t, events, fixture)
  assertIds(t, upload.sse)
  t.equal(upload.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'the stream closed cleanly')
})

t.test('HTTP/1.1 chunked upload: events arrive before the body ends', async (t) => {
  const fixture = loadFixture('counting_8k_mono')
  const upload = http1Upload(`${server.http}/api/v1/segmented?${formatQuery(fixture)}`, { 'content-type': 'application/octet-stream' })
  const eventsDone = assertEventsWhileUploading(t, upload.sse, upload.request, fixture)
  const response = await upload.response
  t.equal(response.httpVersion, '1.1')
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^text\/event-stream/)
  const events = await eventsDone
  assertSegmentedMatchesTruth(t, events, fixture)
  assertIds(t, upload.sse)
})

for (const name of FIXTURE_NAMES) {
  const fixture = loadFixture(name)
  t.test(`WAV upload ${name}: curl -T (PUT) to segmented, -X POST -T to simple`, async (t) => {
    const put = curl(t, ['--http2-prior-knowledge', '-T', fixture.path, '-H', 'content-type: audio/wav', `${server.http}/api/v1/segmented`])
    t.equal(await put.exit, 0, 'curl exits 0', { stderr: put.stderr() })
    assertSegmentedMatchesTruth(t, put.sse.events, fixture)
    const end = put.sse.events.at(-1) as EndEvent
    t.ok(Math.abs((end.seconds_received[0] ?? 0) - fixture.duration) < 0.01, 'only the data chunk is audio')
    assertIds(t, put.sse)

    const post = curl(t, ['--http2-prior-knowledge', '-X', 'POST', '-T', fixture.path, '-H', 'content-type: audio/wav', `${server.http}/api/v1/simple`])
    t.equal(await post.exit, 0, 'curl exits 0', { stderr: post.stderr() })
    assertSimpleCoversAudio(t, post.sse.events, fixture)
  })
}

t.test('a streamed WAV of unknown length (as sox writes to a pipe), from stdin', async (t) => {
  const fixture = loadFixture('weather_48k_f32')
  const header = fixture.wav.slice(0, fixture.pcm.byteOffset - fixture.wav.byteOffset)
  const view = new DataView(header.buffer)
  view.setUint32(4, 0xffffffff, true) // RIFF size
  view.setUint32(header.length - 4, 0xffffffff, true) // data size
  const body = Buffer.concat([header, fixture.pcm])
  const run = curl(t, ['--http2-prior-knowledge', '-X', 'POST', '-T', '.', '-H', 'content-type: audio/x-wav', `${server.http}/api/v1/segmented`])
  await produce(run.child.stdin, body, { chunkBytes: 19200, pauseMs: 2 })
  t.equal(await run.exit, 0, 'curl exits 0', { stderr: run.stderr() })
  assertSegmentedMatchesTruth(t, run.sse.events, fixture)
})

t.test('curl --http2 (an h2c Upgrade request) is served as HTTP/1.1', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const run = curl(t, ['--http2', '-T', fixture.path, '-H', 'content-type: audio/wav', `${server.http}/api/v1/segmented`])
  t.equal(await run.exit, 0, 'curl exits 0', { stderr: run.stderr() })
  assertSegmentedMatchesTruth(t, run.sse.events, fixture)
})

t.test('the WebSocket still works on the same port', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  const events = await client.stream(fixture.format, fixture.pcm, { chunkBytes: 3200 })
  assertSegmentedMatchesTruth(t, events, fixture)
  client.close()
})

for (const name of ['hello_16k_mono', 'dialogue_44k_stereo']) {
  t.test(`${name}: the same events as the WebSocket`, async (t) => {
    const fixture = loadFixture(name)
    const chunkBytes = bytesPer100ms(fixture.format)
    const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
    const viaWs = await client.stream(fixture.format, fixture.pcm, { interim: true, chunkBytes, pauseMs: 5 })
    client.close()
    const upload = h2Upload(t, server.http, `/api/v1/segmented?${formatQuery(fixture, '&interim_results=true')}`, { 'content-type': 'application/octet-stream' })
    await produce(upload.stream, fixture.pcm, { chunkBytes, pauseMs: 5 })
    const viaHttp = await upload.sse.waitForEnd()
    for (let channel = 0; channel < fixture.format.channels; channel++) {
      t.same(settled(viaHttp, channel), settled(viaWs, channel), `channel ${channel}: finals, active, inactive identical`)
    }
    t.same(settled(viaHttp, null), settled(viaWs, null), 'the end summary is identical')
    // Interims: both have some, and each belongs to an utterance both transports finalised.
    for (const [transport, events] of [['websocket', viaWs], ['http', viaHttp]] as const) {
      const own = interims(events)
      t.ok(own.length > 0, `${transport}: interim results arrived`)
      const starts = new Set(events.filter((e): e is SegmentEvent => e.type === 'segment' && e.is_final === true).map((e) => `${e.channel}:${e.start_time}`))
      t.ok(own.every((e) => starts.has(`${e.channel}:${e.start_time}`)), `${transport}: every interim starts where a final does`)
    }
  })
}

t.test('a client that disconnects mid-upload frees its session at once', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const registry = server.app.streamer.registry
  const url = `/api/v1/segmented?${formatQuery(fixture, '&interim_results=true')}`

  // HTTP/2: the client resets its stream.
  const upload = h2Upload(t, server.http, url, { 'content-type': 'application/octet-stream' })
  upload.stream.write(fixture.pcm.subarray(0, 64000))
  t.ok(await until(() => upload.sse.comments > 0 && registry.count('http') === 1), 'h2: the session is open')
  upload.stream.close(http2.constants.NGHTTP2_CANCEL)
  t.ok(await until(() => registry.count('http') === 0), 'h2 reset: no session left open')

  // HTTP/1.1: the connection drops.
  const one = http1Upload(`${server.http}${url}`, { 'content-type': 'application/octet-stream' })
  one.request.write(fixture.pcm.subarray(0, 64000))
  t.ok(await until(() => one.sse.comments > 0 && registry.count('http') === 1), 'http/1.1: the session is open')
  one.request.destroy()
  t.ok(await until(() => registry.count('http') === 0), 'http/1.1 drop: no session left open')

  // curl killed mid-upload.
  const run = curl(t, ['--http2-prior-knowledge', '-X', 'POST', '-T', '.', '-H', 'content-type: application/octet-stream', `${server.http}${url}`])
  run.child.stdin.write(fixture.pcm.subarray(0, 64000))
  t.ok(await until(() => run.sse.comments > 0 && registry.count('http') === 1), 'curl: the session is open')
  run.child.kill('SIGKILL')
  t.ok(await until(() => registry.count('http') === 0), 'curl killed: no session left open')
})

t.test('bad input before the stream: plain HTTP errors naming the field', async (t) => {
  const raw = { 'content-type': 'application/octet-stream' }
  const pcm = new Uint8Array(3200)
  const cases: Array<[string, string, http2.OutgoingHttpHeaders, Uint8Array | string, number, string, string | undefined, RegExp]> = [
    ['sample rate out of range', '?sample_rate=4000&channels=1&bit_depth=16', raw, pcm, 400, 'unsupported_format', 'sample_rate', /8000/],
    ['sample rate not a number', '?sample_rate=fast&channels=1&bit_depth=16', raw, pcm, 400, 'unsupported_format', 'sample_rate', /integer.*"fast"/],
    ['missing channels', '?sample_rate=16000&bit_depth=16', raw, pcm, 400, 'unsupported_format', 'channels', /channels/],
    ['is_float not a boolean', '?sample_rate=16000&channels=1&bit_depth=32&is_float=maybe', raw, pcm, 400, 'unsupported_format', 'is_float', /true or false/],
    ['unsupported encoding', '?sample_rate=8000&channels=1&bit_depth=8&encoding=opus', raw, pcm, 400, 'unsupported_format', 'encoding', /mulaw/],
    ['too many channels', '?sample_rate=16000&channels=9&bit_depth=16', raw, pcm, 400, 'unsupported_format', 'channels', /1 to 8/],
    ['interim_results not a boolean', '?sample_rate=16000&channels=1&bit_depth=16&interim_results=yes', raw, pcm, 400, 'invalid_message', 'interim_results', /true or false/],
    ['bad trace_id', '?sample_rate=16000&channels=1&bit_depth=16&trace_id=abc', raw, pcm, 400, 'invalid_message', 'trace_id', /traceparent/],
    ['unknown parameter', '?samplerate=16000', raw, pcm, 400, 'invalid_message', 'samplerate', /accepted sample_rate, channels/],
    ['repeated parameter', '?sample_rate=16000&sample_rate=8000&channels=1&bit_depth=16', raw, pcm, 400, 'invalid_message', 'sample_rate', /more than once/],
    ['unsupported content type', '?sample_rate=16000&channels=1&bit_depth=16', { 'content-type': 'text/plain' }, 'hello', 415, 'unsupported_media_type', 'content-type', /application\/octet-stream.*audio\/wav/],
    ['JSON is not audio', '', { 'content-type': 'application/json' }, '{}', 415, 'unsupported_media_type', 'content-type', /'application\/json' is not accepted/],
    ['declared length over the limit', '?sample_rate=16000&channels=1&bit_depth=16', { ...raw, 'content-length': String(LIMIT + 1) }, new Uint8Array(LIMIT + 1), 413, 'frame_too_large', 'content-length', new RegExp(`${LIMIT} bytes`)]
  ]
  for (const [what, query, headers, body, status, code, field, message] of cases) {
    for (const mode of ['segmented', 'simple']) {
      const response = await h2Request(t, `/api/v1/${mode}${query}`, headers, body)
      t.equal(response.status, status, `${mode}, ${what}: status`)
      t.match(response.headers['content-type'], /^application\/json/)
      t.equal(response.json.code, code, `${what}: code`)
      t.equal(response.json.field, field, `${what}: field`)
      t.match(response.json.message, message, `${what}: message "${String(response.json.message)}"`)
    }
  }
  // PUT is the same route; HTTP/1.1 gets the same answers.
  const put = await h2Request(t, '/api/v1/segmented?sample_rate=4000&channels=1&bit_depth=16', raw, pcm, 'PUT')
  t.equal(put.status, 400)
  const one = await fetch(`${server.http}/api/v1/simple?sample_rate=16000&channels=1&bit_depth=12`, { method: 'POST', headers: raw, body: pcm })
  t.equal(one.status, 400)
  t.match(await one.json(), { code: 'unsupported_format', field: 'bit_depth' })
  const unsupported = curl(t, ['-i', '-T', loadFixture('hello_16k_mono').path, '-H', 'content-type: audio/mpeg', `${server.http}/api/v1/segmented`])
  t.equal(await unsupported.exit, 0)
  t.match(unsupported.sse.text, /^HTTP\/1\.1 100 Continue[^]*HTTP\/1\.1 415/)
  t.equal(server.app.streamer.registry.count('http'), 0, 'no session was opened')
})

t.test('a bad WAV header is a 400 before the stream starts', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const dataOffset = fixture.pcm.byteOffset - fixture.wav.byteOffset
  const patched = (edit: (view: DataView) => void): Uint8Array => {
    const copy = new Uint8Array(fixture.wav)
    edit(new DataView(copy.buffer))
    return copy
  }
  const wav = { 'content-type': 'audio/wav' }
  const cases: Array<[string, string, Uint8Array, string, string, RegExp]> = [
    ['not a WAV file', '', new TextEncoder().encode('ID3\u0004 this is an mp3, honest'.repeat(4)), 'unsupported_format', 'body', /RIFF\/WAVE/],
    ['an MP3 inside RIFF', '', patched((v) => { v.setUint16(20, 0x55, true) }), 'unsupported_format', 'body', /format code 0x55/],
    ['a sample rate the pipeline refuses', '', patched((v) => { v.setUint32(24, 4000, true) }), 'unsupported_format', 'format.sample_rate', /8000/],
    ['the body ends inside the header', '', fixture.wav.subarray(0, 30), 'unsupported_format', 'body', /inside the WAV header/],
    ['the query contradicts the header', '?sample_rate=8000', fixture.wav, 'unsupported_format', 'sample_rate', /contradicts the WAV header/]
  ]
  t.equal(dataOffset, 44, 'the fixture has the canonical header (fmt at byte 12) the edits assume')
  for (const [what, query, body, code, field, message] of cases) {
    const response = await h2Request(t, `/api/v1/segmented${query}`, wav, body)
    t.equal(response.status, 400, `${what}: status`)
    t.equal(response.json.code, code, `${what}: code`)
    t.equal(response.json.field, field, `${what}: field`)
    t.match(response.json.message, message, `${what}: message "${String(response.json.message)}"`)
  }
  // The header's own format makes the query's format fields unnecessary; agreeing ones are fine.
  const agreeing = curl(t, ['--http2-prior-knowledge', '-T', fixture.path, '-H', 'content-type: audio/wave', `${server.http}/api/v1/segmented?sample_rate=16000&channels=1&interim_results=false`])
  t.equal(await agreeing.exit, 0)
  assertSegmentedMatchesTruth(t, agreeing.sse.events, fixture)
})

t.test('a streamed body past the byte limit: an error event, then the stream ends', async (t) => {
  const upload = h2Upload(t, server.http, '/api/v1/segmented?sample_rate=16000&channels=1&bit_depth=16', { 'content-type': 'application/octet-stream' })
  const producing = produce(upload.stream, new Uint8Array(LIMIT + 200_000), { chunkBytes: 65536, pauseMs: 1 }).catch(() => undefined)
  t.equal((await upload.response)[':status'], 200, 'the stream had started')
  const events = await upload.sse.waitForEnd()
  const last = events.at(-1) as ErrorEvent
  t.equal(last.type, 'error')
  t.equal(last.code, 'frame_too_large')
  t.match(last.message, new RegExp(`${LIMIT} bytes`))
  t.ok(upload.sse.ended, 'the stream ended')
  t.equal(upload.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'the upload was stopped without error (RFC 9113 8.1)')
  await producing
  t.ok(await until(() => server.app.streamer.registry.count('http') === 0), 'the session was freed')
})

t.test('TLS: h2 and HTTP/1.1 by ALPN on one port, WebSocket over TLS too', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'streamer-tls-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore', timeout: 30000 })
  const ca = readFileSync(cert, 'utf8')
  const secure: TestServer = await startServer({ tls_key: key, tls_cert: cert, limits: { max_upload_bytes: LIMIT } })
  t.teardown(() => secure.close())
  t.match(secure.http, /^https:/)
  const fixture = loadFixture('hello_16k_mono')
  const url = `/api/v1/segmented?${formatQuery(fixture)}`

  const h2 = h2Upload(t, secure.http, url, { 'content-type': 'application/octet-stream' }, { ca })
  const h2Events = await assertEventsWhileUploading(t, h2.sse, h2.stream, fixture)
  t.equal(h2.session.alpnProtocol, 'h2', 'ALPN chose h2')
  t.equal((await h2.response)[':status'], 200)
  assertSegmentedMatchesTruth(t, h2Events, fixture)

  const one = http1Upload(`${secure.http}${url}`, { 'content-type': 'application/octet-stream' }, ca)
  const oneEvents = await assertEventsWhileUploading(t, one.sse, one.request, fixture)
  t.equal((await one.response).httpVersion, '1.1', 'HTTP/1.1 over TLS')
  assertSegmentedMatchesTruth(t, oneEvents, fixture)

  const curlRun = curl(t, ['--cacert', cert, '-w', '\nhttp_version=%{http_version}\n', '-T', fixture.path, '-H', 'content-type: audio/wav', `${secure.http}/api/v1/segmented`])
  t.equal(await curlRun.exit, 0, 'curl exits 0', { stderr: curlRun.stderr() })
  t.match(curlRun.sse.text, /http_version=2\n$/, 'curl negotiated h2 by ALPN')
  assertSegmentedMatchesTruth(t, curlRun.sse.events, fixture)

  const socket = new WebSocket(`${secure.ws}/api/v1/segmented`, { ca })
  const wsEvents: StreamEvent[] = []
  socket.on('message', (data) => { wsEvents.push(JSON.parse(String(data)) as StreamEvent) })
  await once(socket, 'open')
  socket.send(JSON.stringify({ request: 'start', format: fixture.format }))
  for (let at = 0; at < fixture.pcm.length; at += 3200) socket.send(fixture.pcm.subarray(at, at + 3200))
  socket.send(JSON.stringify({ request: 'stop', disconnect: true }))
  await once(socket, 'close')
  assertSegmentedMatchesTruth(t, wsEvents, fixture)
})

t.test('shutdown ends open streams with an error event and does not hang on HTTP/2 sessions', async (t) => {
  const own = await startServer({})
  const fixture = loadFixture('hello_16k_mono')
  const url = `/api/v1/segmented?${formatQuery(fixture)}`
  const idle = http2.connect(own.http)
  idle.on('error', () => {})
  await once(idle, 'connect')
  const h2 = h2Upload(t, own.http, url, { 'content-type': 'application/octet-stream' })
  h2.stream.write(fixture.pcm.subarray(0, 64000))
  const one = http1Upload(`${own.http}${url}`, { 'content-type': 'application/octet-stream' })
  one.request.write(fixture.pcm.subarray(0, 64000))
  t.ok(await until(() => own.app.streamer.registry.count('http') === 2), 'both streams are open')
  const closing = own.close().then(() => 'closed')
  const result = await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 20000, 'hung').unref())])
  t.equal(result, 'closed', 'app.close() completed')
  for (const [what, sse] of [['h2', h2.sse], ['http/1.1', one.sse]] as const) {
    await until(() => sse.ended)
    const last = sse.events.at(-1) as ErrorEvent | undefined
    t.equal(last?.code, 'shutting_down', `${what}: told the server is shutting down`)
    t.ok(sse.ended, `${what}: the stream ended`)
  }
  t.ok(idle.closed || idle.destroyed, 'the idle HTTP/2 session was closed')
  idle.destroy()
  one.request.destroy()
})
