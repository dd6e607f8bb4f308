import t from 'tap'
import type { EndEvent, ErrorEvent, StreamEvent } from '../../schemas/events.ts'
import { FIXTURE_NAMES, loadFixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth, assertSimpleCoversAudio } from '../helpers/speech-assertions.ts'
import { WsClient } from '../helpers/ws-client.ts'

const server = await startServer({ limits: { max_frame_bytes: 65536 } })
t.teardown(() => server.close())

const lastError = (events: StreamEvent[]): ErrorEvent | undefined => events.filter((e): e is ErrorEvent => e.type === 'error').at(-1)

for (const name of FIXTURE_NAMES) {
  const fixture = loadFixture(name)
  for (const interim of [false, true]) {
    t.test(`segmented ${name}, interim_results ${interim}`, async (t) => {
      const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
      // 100 ms of audio per frame with short pauses, as a live client streams.
      const bytesPer100ms = fixture.format.sample_rate / 10 * fixture.format.channels * fixture.format.bit_depth / 8
      const events = await client.stream(fixture.format, fixture.pcm, { interim, chunkBytes: bytesPer100ms, pauseMs: 5 })
      assertSegmentedMatchesTruth(t, events, fixture)
      const interims = events.filter((e) => e.type === 'segment' && e.is_final === false)
      if (interim) t.ok(interims.length > 0, `interim results arrived (${interims.length})`)
      else t.equal(interims.length, 0, 'no interim results unless asked')
      const end = events.at(-1) as EndEvent
      t.same(end.segments, fixture.speech.map((r) => r.length))
      t.ok(Math.abs((end.seconds_received[0] ?? 0) - fixture.duration) < 0.01, 'end reports the seconds received')
      client.close()
    })
  }
  t.test(`simple ${name}`, async (t) => {
    const client = await WsClient.connect(`${server.ws}/api/v1/simple`)
    const events = await client.stream(fixture.format, fixture.pcm, { chunkBytes: 4001 })
    assertSimpleCoversAudio(t, events, fixture)
    client.close()
  })
}

t.test('stop, then a new start on the same connection; stop with disconnect closes 1000', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  const first = await client.stream(fixture.format, fixture.pcm)
  const second = await client.stream(fixture.format, fixture.pcm)
  assertSegmentedMatchesTruth(t, first, fixture)
  assertSegmentedMatchesTruth(t, second, fixture)
  // A start during a stream ends the current one (with its end event) and starts the next.
  const from = client.events.length
  client.start(fixture.format)
  await client.sendAudio(fixture.pcm)
  client.start(fixture.format)
  await client.sendAudio(fixture.pcm)
  client.stop(true)
  const closed = await client.closed
  const events = client.events.slice(from)
  const ends = events.map((e, i) => e.type === 'end' ? i : -1).filter((i) => i >= 0)
  t.equal(ends.length, 2, 'both streams ended')
  assertSegmentedMatchesTruth(t, events.slice(0, (ends[0] ?? 0) + 1), fixture)
  assertSegmentedMatchesTruth(t, events.slice((ends[0] ?? 0) + 1), fixture)
  t.equal(closed.code, 1000)
})

t.test('bad input gets an error event with a stable code naming the field; the connection stays usable', async (t) => {
  const good = { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }
  // A healthy stream runs beside the bad inputs and must be unaffected.
  const fixture = loadFixture('hello_16k_mono')
  const bystander = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  const bystanderEvents = bystander.stream(fixture.format, fixture.pcm, { chunkBytes: 3200, pauseMs: 5 })

  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  const cases: Array<[string, () => void, string, RegExp]> = [
    ['invalid JSON', () => client.socket.send('{"request": "start",'), 'invalid_json', /JSON/],
    ['unknown request', () => client.socket.send(JSON.stringify({ request: 'pause' })), 'invalid_message', /"pause".*"start", "stop"/],
    ['0 channels', () => client.start({ ...good, channels: 0 }), 'unsupported_format', /format\.channels.*1 to 8/],
    ['too many channels', () => client.start({ ...good, channels: 9 }), 'unsupported_format', /format\.channels.*1 to 8/],
    ['sample rate too low', () => client.start({ ...good, sample_rate: 4000 }), 'unsupported_format', /format\.sample_rate.*8000.*192000/],
    ['sample rate too high', () => client.start({ ...good, sample_rate: 384000 }), 'unsupported_format', /format\.sample_rate.*8000.*192000/],
    ['unsupported bit depth', () => client.start({ ...good, bit_depth: 12 }), 'unsupported_format', /format\.bit_depth.*16/],
    ['float of 16 bits', () => client.start({ ...good, bit_depth: 16, is_float: true }), 'unsupported_format', /bit_depth.*32/],
    ['missing format', () => client.socket.send(JSON.stringify({ request: 'start' })), 'invalid_message', /format/],
    ['audio before start', () => client.socket.send(new Uint8Array(640)), 'audio_before_start', /before a start/],
    ['stop without start', () => client.stop(), 'stop_without_start', /no stream/]
  ]
  for (const [what, act, code, message] of cases) {
    const from = client.events.length
    act()
    const error = await client.waitFor((e) => e.type === 'error', from) as ErrorEvent
    t.equal(error.code, code, `${what}: code`)
    t.match(error.message, message, `${what}: message "${error.message}"`)
    t.equal(error.channel, null)
  }
  // Still usable: a correct stream works on the same connection.
  const events = await client.stream(fixture.format, fixture.pcm)
  assertSegmentedMatchesTruth(t, events, fixture)
  assertSegmentedMatchesTruth(t, await bystanderEvents, fixture)
  t.notOk(lastError(await bystanderEvents), 'the bystander saw no error')
  client.close()
  bystander.close()
})

t.test('odd byte counts across frames decode exactly', async (t) => {
  const fixture = loadFixture('counting_8k_mono')
  const client = await WsClient.connect(`${server.ws}/api/v1/simple`)
  const events = await client.stream(fixture.format, fixture.pcm, { chunkBytes: 333 })
  assertSimpleCoversAudio(t, events, fixture)
  const end = events.at(-1) as EndEvent
  t.same(end.samples_received, [fixture.pcm.length / 2])
  t.notOk(lastError(events), 'no error')
  client.close()
})

t.test('NaN and Inf float samples do not poison the VAD', async (t) => {
  const fixture = loadFixture('weather_48k_f32')
  const pcm = new Uint8Array(fixture.pcm)
  const view = new DataView(pcm.buffer)
  // Scatter non-finite samples through the first silence and the speech.
  for (let i = 0; i < pcm.length / 4; i += 997) view.setFloat32(i * 4, [Number.NaN, Infinity, -Infinity][i % 3] as number, true)
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  const events = await client.stream(fixture.format, pcm)
  assertSegmentedMatchesTruth(t, events, fixture)
  client.close()
})

t.test('a frame over the size limit closes with 1009; other sessions go on', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const bystander = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  const bystanderEvents = bystander.stream(fixture.format, fixture.pcm, { chunkBytes: 3200, pauseMs: 5 })
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  client.start(fixture.format)
  client.socket.send(new Uint8Array(65537))
  const closed = await client.closed
  t.equal(closed.code, 1009, `close code 1009 (${closed.reason})`)
  assertSegmentedMatchesTruth(t, await bystanderEvents, fixture)
  bystander.close()
})

t.test('a client that disconnects mid-stream frees its session', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  client.start(fixture.format)
  await client.sendAudio(fixture.pcm.subarray(0, 32000))
  await client.waitFor(() => true, 0, 100).catch(() => undefined)
  t.ok(server.app.streamer.registry.count('websocket') >= 1, 'the session is open')
  client.socket.terminate()
  const deadline = Date.now() + 5000
  while (server.app.streamer.registry.count('websocket') > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(server.app.streamer.registry.count('websocket'), 0, 'no session left open')
})
