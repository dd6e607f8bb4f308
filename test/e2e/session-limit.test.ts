import t from 'tap'
import { loadFixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'
import { WsClient } from '../helpers/ws-client.ts'

// limits.max_sessions counts open sessions on every transport together; one more is refused
// with too_many_sessions (an error event on the WebSocket, HTTP 503 elsewhere), and room frees
// up the moment a session ends.
const server = await startServer({ limits: { max_sessions: 1 } })
t.teardown(() => server.close())
const fixture = loadFixture('hello_16k_mono')
const query = 'sample_rate=16000&channels=1&bit_depth=16&is_float=false'

t.test('the session over the limit is refused on every transport, then admitted once one ends', async (t) => {
  const holder = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  holder.start(fixture.format)
  await holder.sendAudio(fixture.pcm.subarray(0, 16000))
  while (server.app.streamer.registry.size < 1) await new Promise((resolve) => setTimeout(resolve, 10))

  const second = await WsClient.connect(`${server.ws}/api/v1/simple`)
  second.start(fixture.format)
  const refused = await second.waitFor((e) => e.type === 'error')
  t.match(refused, { code: 'too_many_sessions', message: /limit of 1 open sessions/ })
  t.match(await second.closed, { code: 1013 }, 'then the socket closes with 1013 (try again later)')

  const upload = await fetch(`${server.http}/api/v1/simple?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: fixture.pcm.subarray(0, 3200) })
  t.equal(upload.status, 503, 'HTTP upload refused with 503')
  t.equal(upload.headers.get('retry-after'), '2', 'saying when to come back')
  t.match(await upload.json(), { code: 'too_many_sessions' })

  const paired = await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'simple', format: fixture.format }) })
  t.equal(paired.status, 503, 'paired session refused with 503')
  t.equal(paired.headers.get('retry-after'), '2', 'saying when to come back')
  t.match(await paired.json(), { code: 'too_many_sessions' })

  holder.stop()
  await holder.waitFor((e) => e.type === 'end')
  while (server.app.streamer.registry.size > 0) await new Promise((resolve) => setTimeout(resolve, 10))
  const third = await WsClient.connect(`${server.ws}/api/v1/simple`)
  const events = await third.stream(fixture.format, fixture.pcm)
  t.equal(events.at(-1)?.type, 'end', 'a new session is admitted once the first ended')
  holder.close()
  third.close()
})

t.test('limits.max_sessions_per_ip caps one client address; others are unaffected', async (t) => {
  const capped = await startServer({ limits: { max_sessions_per_ip: 1 } })
  t.teardown(() => capped.close())
  const first = await WsClient.connect(`${capped.ws}/api/v1/segmented`)
  first.start(fixture.format)
  await first.sendAudio(fixture.pcm.subarray(0, 16000))
  while (capped.app.streamer.registry.size < 1) await new Promise((resolve) => setTimeout(resolve, 10))
  const upload = await fetch(`${capped.http}/api/v1/simple?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: fixture.pcm.subarray(0, 3200) })
  t.equal(upload.status, 503)
  t.match(await upload.json(), { code: 'too_many_sessions', message: /limits\.max_sessions_per_ip/ })
  // The test server listens on 127.0.0.1 only, so another address is checked in the core.
  t.throws(() => { capped.app.streamer.admit('127.0.0.1') }, { code: 'too_many_sessions' })
  t.doesNotThrow(() => { capped.app.streamer.admit('192.0.2.7') }, 'another address is admitted')
  first.close()
})
