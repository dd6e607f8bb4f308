import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import http2 from 'node:http2'
import type { PairedSessionCreated } from '../../schemas/paired-session.ts'
import type { AckEvent, EndEvent, ErrorEvent, FinalizedEvent, SegmentEvent, StartedEvent, StreamEvent } from '../../schemas/events.ts'
import { FIXTURE_NAMES, loadFixture, type Fixture } from '../helpers/fixtures.ts'
import { postChunk } from '../helpers/paired-client.ts'
import { startServer } from '../helpers/server.ts'
import { SseCollector } from '../helpers/sse-collector.ts'
import { until } from '../helpers/waiting.ts'
import { WsClient } from '../helpers/ws-client.ts'

// Proof of delivery: the first event says what the server took on (`started`), acks say how
// much audio it took, `end` closes the books with the bytes and their SHA-256, and a finalize
// answers with `finalized`. The same on every transport.
const server = await startServer()
t.teardown(() => server.close())

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')
const finals = (events: StreamEvent[]): SegmentEvent[] => events.filter((e): e is SegmentEvent => e.type === 'segment' && e.is_final === true)
const formatQuery = (fixture: Fixture): string =>
  `sample_rate=${fixture.format.sample_rate}&channels=${fixture.format.channels}&bit_depth=${fixture.format.bit_depth}&is_float=${fixture.format.is_float}`

async function overWebSocket (fixture: Fixture, start: Record<string, unknown> = {}, chunkBytes = 997): Promise<StreamEvent[]> {
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  client.start(fixture.format, start)
  // Odd-sized frames: samples and frames split across messages.
  await client.sendAudio(fixture.pcm, { chunkBytes })
  client.stop()
  await client.waitFor((e) => e.type === 'end')
  client.close()
  return client.events
}

async function overHttp2 (fixture: Fixture, query = ''): Promise<StreamEvent[]> {
  const session = http2.connect(server.http)
  session.on('error', () => {})
  const stream = session.request({ ':method': 'POST', ':path': `/api/v1/segmented?${formatQuery(fixture)}${query}`, 'content-type': 'application/octet-stream' })
  const sse = new SseCollector()
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => { sse.feed(chunk) })
  stream.on('close', () => { sse.end() })
  for (let at = 0; at < fixture.pcm.length; at += 4093) stream.write(fixture.pcm.subarray(at, at + 4093))
  stream.end()
  await until(() => sse.ended, 30000)
  session.close()
  return sse.events
}

async function overPairedOutOfOrder (fixture: Fixture): Promise<StreamEvent[]> {
  const created = await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'segmented', format: fixture.format }) })
  const session = await created.json() as PairedSessionCreated
  const chunks: Uint8Array[] = []
  for (let at = 0; at < fixture.pcm.length; at += 3001) chunks.push(fixture.pcm.subarray(at, at + 3001))
  // Pairs swapped: 1, 0, 3, 2, ...; the server puts them back in order.
  let lastAck: { bytes: number } | undefined
  for (let i = 0; i < chunks.length; i += 2) {
    for (const seq of [i + 1, i].filter((s) => s < chunks.length)) {
      // As a client must: a chunk refused by flow control (429, when the VAD is behind on a
      // loaded machine) is sent again; 202 is a chunk held until the one before it arrives.
      lastAck = await postChunk(() => server.http, session, seq, chunks[seq] as Uint8Array, [200, 202]) as { bytes: number }
    }
  }
  t.equal(lastAck?.bytes, fixture.pcm.length, 'the last chunk ack counts every byte applied')
  await fetch(`${server.http}${session.stop_url}`, { method: 'POST' })
  const sse = new SseCollector()
  const response = await fetch(`${server.http}${session.events_url}`)
  const decoder = new TextDecoder()
  for await (const part of response.body as AsyncIterable<Uint8Array>) sse.feed(decoder.decode(part, { stream: true }))
  return sse.events
}

function assertBooksClose (t: Test, events: StreamEvent[], fixture: Fixture, what: string): void {
  const end = events.at(-1) as EndEvent
  t.equal(end.type, 'end', `${what}: ends with end`)
  t.equal(end.bytes_received, fixture.pcm.length, `${what}: every byte sent was taken`)
  t.equal(end.sha256, sha256(fixture.pcm), `${what}: the SHA-256 of what was taken is that of what was sent`)
  t.same(end.dropped, { truncated_audio: 0, max_duration: 0 }, `${what}: nothing dropped`)
}

t.test('sha256 and bytes in end match what each client sent, every fixture, every transport', async (t) => {
  for (const name of FIXTURE_NAMES) {
    const fixture = loadFixture(name)
    assertBooksClose(t, await overWebSocket(fixture), fixture, `${name} over WebSocket, odd-sized frames`)
    assertBooksClose(t, await overHttp2(fixture), fixture, `${name} over the HTTP/2 upload`)
    assertBooksClose(t, await overPairedOutOfOrder(fixture), fixture, `${name} over a paired session, chunks out of order`)
  }
})

t.test('started is the first event, with the session id and the settings in force', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const vad = { threshold: 0.6, min_silence_ms: 800, speech_pad_ms: 50, max_utterance_seconds: 12 }
  for (const [what, events] of [
    ['WebSocket', await overWebSocket(fixture, { interim_results: true, vad })],
    ['HTTP/2 upload', await overHttp2(fixture, '&interim_results=true&vad_threshold=0.6&vad_min_silence_ms=800&vad_speech_pad_ms=50&vad_max_utterance_seconds=12')]
  ] as const) {
    const started = events[0] as StartedEvent
    t.match(started, {
      type: 'started',
      channel: null,
      session_id: /^[\w-]{22}$/,
      protocol_version: '0.3',
      mode: 'segmented',
      format: { ...fixture.format, encoding: 'pcm' },
      interim_results: true,
      acks: false,
      vad,
      limits: { idle_timeout_seconds: 15, max_stream_seconds: 14400, max_buffered_seconds: 10 }
    }, `${what}: started echoes the start`)
  }
  const defaults = (await overWebSocket(fixture))[0] as StartedEvent
  t.same(defaults.vad, { threshold: 0.5, min_silence_ms: 500, speech_pad_ms: 30, max_utterance_seconds: 30 }, 'without vad settings: the server\'s')
})

t.test('acks are monotonic, at most every ~100 ms, and the last one before end carries the total', async (t) => {
  const fixture = loadFixture('dialogue_44k_stereo')
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  client.start(fixture.format, { acks: true })
  await client.sendAudio(fixture.pcm, { chunkBytes: 4410 * 4 / 10, pauseMs: 20 })
  client.stop()
  await client.waitFor((e) => e.type === 'end')
  client.close()
  const acks = client.events.filter((e): e is AckEvent => e.type === 'ack')
  t.ok(acks.length >= 3, `several acks while streaming (${acks.length})`)
  t.ok(acks.every((ack, i) => i === 0 || ack.bytes > (acks[i - 1] as AckEvent).bytes), 'monotonic')
  const last = acks.at(-1) as AckEvent
  t.equal(last.bytes, fixture.pcm.length, 'the last ack is the total')
  t.same(last.seconds, [fixture.pcm.length / 4 / 44100, fixture.pcm.length / 4 / 44100], 'with the seconds per channel')
  const types = client.events.map((e) => e.type)
  t.ok(types.lastIndexOf('ack') < types.indexOf('end'), 'before end')
  const noAcks = await overWebSocket(fixture)
  t.notOk(noAcks.some((e) => e.type === 'ack'), 'no acks unless asked for')
})

t.test('finalize mid-stream: the open utterance is finalised now, then finalized; the stream goes on and ends normally', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const firstStart = fixture.speech[0]?.[0]?.[0] ?? 0
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  client.start(fixture.format)
  // The audio up to the middle of the first utterance, then finalize.
  const cut = Math.round((firstStart + 1) * 16000) * 2
  await client.sendAudio(fixture.pcm.subarray(0, cut), { chunkBytes: 3200 })
  client.socket.send(JSON.stringify({ request: 'finalize' }))
  const finalized = await client.waitFor((e) => e.type === 'finalized') as FinalizedEvent
  t.same(finalized.seconds, [cut / 2 / 16000], 'up to the audio received')
  const before = client.events.slice(0, client.events.indexOf(finalized))
  const early = finals(before)
  t.equal(early.length, 1, 'one final before finalized')
  t.ok(Math.abs((early[0]?.end_time ?? 0) - cut / 2 / 16000) < 0.05, `ending at the audio received (${String(early[0]?.end_time)})`)
  t.ok(before.some((e) => e.type === 'inactive'), 'with its inactive')
  // A finalize with nothing open still answers.
  client.socket.send(JSON.stringify({ request: 'finalize' }))
  await client.waitFor((e) => e.type === 'finalized', client.events.indexOf(finalized) + 1)
  await client.sendAudio(fixture.pcm.subarray(cut), { chunkBytes: 3200 })
  client.stop()
  const end = await client.waitFor((e) => e.type === 'end') as EndEvent
  t.equal(end.bytes_received, fixture.pcm.length, 'the stream went on and took everything')
  t.ok(finals(client.events).length >= 2, 'more speech after the finalize gave more finals')
  t.notOk(client.events.some((e) => e.type === 'error'), 'no error')
  client.close()
})

t.test('per-stream VAD settings change segmentation in the expected direction; bounds are refused naming the field and range', async (t) => {
  const fixture = loadFixture('hello_16k_mono') // two utterances about a second apart
  const normal = finals(await overWebSocket(fixture))
  const patient = finals(await overWebSocket(fixture, { vad: { min_silence_ms: 3000 } }))
  t.equal(normal.length, 2, 'the server\'s 500 ms silence: two utterances')
  t.equal(patient.length, 1, 'a 3 s silence: one utterance spanning both')
  t.ok((patient[0]?.end_time ?? 0) >= (normal[1]?.end_time ?? Infinity) - 0.1, 'ending with the second')

  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ threshold: 2 }, 'vad.threshold', /0\.05 to 0\.95/],
    [{ min_silence_ms: 10 }, 'vad.min_silence_ms', /50 to 10000/],
    [{ max_utterance_seconds: 31 }, 'vad.max_utterance_seconds', /1 to 30/],
    [{ windows: 3 }, 'vad.windows', /accepted threshold, min_silence_ms, speech_pad_ms, max_utterance_seconds/]
  ]
  for (const [vad, field, range] of cases) {
    const from = client.events.length
    client.start(fixture.format, { vad })
    const error = await client.waitFor((e) => e.type === 'error', from) as ErrorEvent
    t.equal(error.code, 'invalid_message', `${field}: code`)
    t.match(error.message, new RegExp(`${field.replace('.', '\\.')}|${field.split('.')[1] ?? ''}`), `${field}: named`)
    t.match(error.message, range, `${field}: ${error.message}`)
  }
  client.close()
  const upload = await fetch(`${server.http}/api/v1/segmented?${formatQuery(fixture)}&vad_threshold=0`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: fixture.pcm.subarray(0, 3200) })
  t.equal(upload.status, 400)
  t.match(await upload.json(), { code: 'invalid_message', field: 'vad_threshold', message: /0\.05 to 0\.95/ })
})
