import t from 'tap'
import http2 from 'node:http2'
import type { EndEvent, ErrorEvent, SegmentEvent, StreamEvent } from '../../schemas/events.ts'
import type { Stream } from '../../src/core/stream.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { FAST_MODEL, startServer, type TestServer } from '../helpers/server.ts'
import { SseCollector } from '../helpers/sse-collector.ts'
import { sleep, until } from '../helpers/waiting.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'
import { WsClient } from '../helpers/ws-client.ts'

// Every stream is bounded, on every transport, by the core: an idle limit, a duration limit,
// flow control on the work held for it, and fair use of the model. Real clients, real server.
const fixture = loadFixture('hello_16k_mono') // 16 kHz s16 mono: 32000 bytes per second
const BYTES_PER_SECOND = 32000

const openStreams = (server: TestServer): Stream[] => [...server.app.streamer.registry.entries()]
const lastTwo = (events: StreamEvent[]): StreamEvent[] => events.slice(-2)

t.test('idle limit on the WebSocket: results for the audio received, then idle_timeout, end, close 1008', async (t) => {
  const server = await startServer({ limits: { idle_timeout_seconds: 0.5 } })
  t.teardown(() => server.close())
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  client.start(fixture.format)
  await client.sendAudio(fixture.pcm)
  // Then nothing: no stop, no keepalive.
  const closed = await client.closed
  t.equal(closed.code, 1008, 'closed as a policy limit')
  t.match(lastTwo(client.events), [{ type: 'error', code: 'idle_timeout', message: /0\.5 s/ }, { type: 'end', samples_received: [fixture.pcm.length / 2] }])
  assertSegmentedMatchesTruth(t, client.events, fixture)
  t.equal(server.app.streamer.registry.size, 0, 'nothing left open')
})

t.test('keepalive on the WebSocket holds an idle stream open without adding audio', async (t) => {
  const server = await startServer({ limits: { idle_timeout_seconds: 0.3 } })
  t.teardown(() => server.close())
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  client.start(fixture.format)
  await client.sendAudio(fixture.pcm.subarray(0, BYTES_PER_SECOND))
  for (let i = 0; i < 12; i++) {
    client.socket.send(JSON.stringify({ request: 'keepalive' }))
    await sleep(100)
  }
  t.equal(server.app.streamer.registry.size, 1, 'still open after four idle limits of keepalives')
  client.stop()
  const end = await client.waitFor((e) => e.type === 'end') as EndEvent
  t.same(end.samples_received, [16000], 'keepalives added no audio')
  t.notOk(client.events.some((e) => e.type === 'error'), 'no error')
  client.close()
})

t.test('idle limit on the HTTP upload: a body that stops moving ends the stream', async (t) => {
  const server = await startServer({ limits: { idle_timeout_seconds: 0.5 } })
  t.teardown(() => server.close())
  const session = http2.connect(server.http)
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  const query = `sample_rate=${fixture.format.sample_rate}&channels=1&bit_depth=16`
  const stream = session.request({ ':method': 'POST', ':path': `/api/v1/segmented?${query}`, 'content-type': 'application/octet-stream' })
  stream.on('error', () => {})
  const sse = new SseCollector()
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => { sse.feed(chunk) })
  stream.on('close', () => { sse.end() })
  stream.write(fixture.pcm.subarray(0, 3 * BYTES_PER_SECOND))
  // The body stays open and silent.
  t.ok(await until(() => sse.ended, 10000), 'the response ended')
  t.match(lastTwo(sse.events), [{ type: 'error', code: 'idle_timeout' }, { type: 'end', samples_received: [48000] }])
})

t.test('duration limit: audio past limits.max_stream_seconds is not taken; max_duration, end, close 1008', async (t) => {
  const server = await startServer({ limits: { max_stream_seconds: 1 } })
  t.teardown(() => server.close())
  const client = await WsClient.connect(`${server.ws}/api/v1/simple`)
  client.start(fixture.format)
  await client.sendAudio(fixture.pcm.subarray(0, 2 * BYTES_PER_SECOND + 100), { chunkBytes: 3000 })
  const closed = await client.closed
  t.equal(closed.code, 1008)
  const [error, end] = lastTwo(client.events) as [ErrorEvent, EndEvent]
  t.match(error, { type: 'error', code: 'max_duration', message: /limit of 1 s.*not taken/ })
  t.same(end.samples_received, [16000], 'exactly the limit was taken')
  const counted = client.events.filter((e): e is SegmentEvent => e.type === 'segment').reduce((n, s) => n + (s.count as number), 0)
  t.equal(counted, 16000, 'and every sample taken went through the model')
})

// A slow model: 5x real time on each of two threads, whatever the size of each call.
const SLOW_MODEL = { ...FAST_MODEL, delay: 0, constant_factor: 0.2 }

t.test('flow control on the WebSocket: a client 100x faster than real time is slowed, the work held stays bounded, nothing is lost', async (t) => {
  const maxBuffered = 1
  const server = await startServer({ model: { threads: 2, options: SLOW_MODEL }, limits: { max_buffered_seconds: maxBuffered, simple_max_chunk_seconds: 1 } })
  t.teardown(() => server.close())
  const audio = Buffer.concat([fixture.pcm, fixture.pcm, fixture.pcm]) // ~22 s
  const client = await WsClient.connect(`${server.ws}/api/v1/simple`)
  client.start(fixture.format)
  let maxHeld = 0
  let paused = false
  const watch = setInterval(() => {
    for (const stream of openStreams(server)) {
      maxHeld = Math.max(maxHeld, stream.session.heldSeconds)
      paused ||= stream.paused
    }
  }, 5)
  t.teardown(() => { clearInterval(watch) })
  await client.sendAudio(audio, { chunkBytes: 640 }) // 20 ms frames, as fast as the socket takes them
  client.stop()
  const end = await client.waitFor((e) => e.type === 'end', 0, 60000) as EndEvent
  clearInterval(watch)
  t.ok(paused, 'the server stopped reading the stream while its work drained')
  // The bound, from the configuration: what may be held, plus what was already off the socket
  // when reading paused: the 64 KiB socket read whose frames were being handled, and what the
  // WebSocket parser had buffered behind it (at most another such read).
  const bound = maxBuffered + 2 * 65536 / BYTES_PER_SECOND
  t.ok(maxHeld <= bound, `work held stayed within ${bound.toFixed(2)} s of audio (peak ${maxHeld.toFixed(2)} s)`)
  t.same(end.samples_received, [audio.length / 2], 'every sample sent was taken')
  const counted = client.events.filter((e): e is SegmentEvent => e.type === 'segment').reduce((n, s) => n + (s.count as number), 0)
  t.equal(counted, audio.length / 2, 'and went through the model')
  t.notOk(client.events.some((e) => e.type === 'error'), 'no error')
  client.close()
})

t.test('flow control on a paired session: chunks past the bound get 429 rate_limited with Retry-After and are not taken; resent, all arrive', async (t) => {
  const server = await startServer({ model: { threads: 2, options: SLOW_MODEL }, limits: { max_buffered_seconds: 1, simple_max_chunk_seconds: 1 } })
  t.teardown(() => server.close())
  const created = await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'simple', format: fixture.format }) })
  const session = await created.json() as { audio_url: string, stop_url: string, events_url: string }
  const chunk = 3200 // 100 ms
  let refusals = 0
  for (let seq = 0, at = 0; at < fixture.pcm.length; seq++, at += chunk) {
    while (true) {
      const answer = await fetch(`${server.http}${session.audio_url}?seq=${seq}`, { method: 'POST', body: fixture.pcm.subarray(at, at + chunk) })
      if (answer.status === 200) break
      t.equal(answer.status, 429, `seq ${seq}: refused only for the rate`)
      t.match(await answer.json(), { code: 'rate_limited', field: 'seq' })
      t.equal(answer.headers.get('retry-after'), '1')
      refusals++
      await sleep(50) // sooner than Retry-After asks, so the test does not wait for seconds
    }
  }
  t.ok(refusals > 0, `the client was told to slow down (${refusals} refusals)`)
  await fetch(`${server.http}${session.stop_url}`, { method: 'POST' })
  const sse = new SseCollector()
  const response = await fetch(`${server.http}${session.events_url}`)
  const decoder = new TextDecoder()
  for await (const part of response.body as AsyncIterable<Uint8Array>) sse.feed(decoder.decode(part, { stream: true }))
  const end = sse.events.at(-1) as EndEvent
  t.match(end, { type: 'end', samples_received: [fixture.pcm.length / 2] }, 'every sample arrived exactly once')
})

t.test('fair scheduling: a flooding session cannot hold back another session\'s results', async (t) => {
  // One slow model thread shared by both; flow control loose enough that the flooder's whole
  // backlog is queued for the model before the normal client starts. The model is slow enough
  // (0.5 s a final) that the VAD, working through the flood at tens of times real time, has
  // found 8 finals before the model is through two, even on a loaded 2-core machine: at 0.15 s
  // a final, the VAD needed ~75x real time and a busy CI machine sometimes fell short of it.
  const server = await startServer({ model: { threads: 1, options: { ...FAST_MODEL, delay: 0.5, constant_factor: 0.02 } }, limits: { max_buffered_seconds: 120 } })
  t.teardown(() => server.close())
  const order: string[] = []
  const flooder = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  const normal = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  flooder.socket.on('message', (data) => { if ((JSON.parse(data.toString()) as StreamEvent).type === 'end') order.push('flooder') })
  normal.socket.on('message', (data) => { if ((JSON.parse(data.toString()) as StreamEvent).type === 'end') order.push('normal') })
  // The flooder sends ~37 s of speech (10 utterances) at once: 10 finals queue for the model.
  flooder.start(fixture.format)
  await flooder.sendAudio(Buffer.concat([fixture.pcm, fixture.pcm, fixture.pcm, fixture.pcm, fixture.pcm]), { chunkBytes: 32000 })
  flooder.stop()
  t.ok(await until(() => server.app.streamer.stats().modelQueued >= 8, 10000), 'the flooder\'s finals are queued')
  // Then a normal client streams one clip.
  const events = await normal.stream(fixture.format, fixture.pcm, { chunkBytes: 32000 })
  await flooder.waitFor((e) => e.type === 'end', 0, 60000)
  assertSegmentedMatchesTruth(t, events, fixture)
  t.same(order, ['normal', 'flooder'], 'the normal client\'s end came before the flooder\'s queue drained')
  flooder.close()
  normal.close()
})
