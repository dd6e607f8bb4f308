import t from 'tap'
import type { Test } from 'tap'
import { FIXTURE_NAMES, loadFixture } from '../helpers/fixtures.ts'
import { chunksOf, createOk, createPaired, PairedReader, postChunk, stopPaired } from '../helpers/paired-client.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { FAST_MODEL, startServer, type TestServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'
import { retryWhile, sleep, until } from '../helpers/waiting.ts'
import { bearer, craftToken, KEY, SECRET } from '../helpers/auth-server.ts'
import { WsClient } from '../helpers/ws-client.ts'
import http from 'node:http'
import { createClient } from 'redis'

// Cluster-wide limits, readiness without Redis, and a Redis restart mid-session (Redis with
// its append-only file, as in production: it comes back with its data).

const redis = await startRedis({ persist: true })
const cluster = (name: string, extra: Record<string, unknown> = {}): Promise<TestServer> => startServer({
  model: { threads: 1, options: FAST_MODEL },
  cluster: { redis_url: redis.url, instance_id: name, heartbeat_ms: 200, claim_timeout_ms: 1500 },
  ...extra
})
const instances = [await cluster('a'), await cluster('b')]
t.teardown(async () => {
  for (const server of instances) await server.close()
  await redis.stop()
})

// Closes a subtest's extra instances once every session they run has reached its end. Closed
// earlier, an instance hands a stopped session over, and one of the shared instances claims it
// and would count it as its own in a later subtest.
async function closeOnceIdle (t: Test, servers: TestServer[]): Promise<void> {
  t.ok(await until(() => servers.every((server) => server.app.cluster?.ownedCount === 0)), 'every session of these instances ended before they close')
  for (const server of servers) await server.close()
}

t.test('Redis restarted mid-session: the session completes, nothing lost', async (t) => {
  const fixture = loadFixture('dialogue_44k_stereo')
  const chunks = chunksOf(fixture)
  const session = await createOk(instances[0]!.http, fixture)
  const reader = new PairedReader([instances[1]!.http, instances[0]!.http], session.events_url)
  const reading = reader.follow(60000)
  let turn = 0
  const pick = (): string => instances[turn++ % 2]!.http
  const half = Math.floor(chunks.length / 2)
  for (let seq = 0; seq < half; seq++) await postChunk(pick, session, seq, chunks[seq] as Uint8Array)
  const restarting = redis.restart(800)
  // Chunks sent meanwhile get 503 cluster_unavailable and are sent again (postChunk retries).
  for (let seq = half; seq < chunks.length; seq++) await postChunk(pick, session, seq, chunks[seq] as Uint8Array)
  await restarting
  const stopped = await retryWhile(async () => await stopPaired(pick(), session), (answer) => answer.status === 503)
  t.equal(stopped.status, 202)
  const events = await reading
  assertSegmentedMatchesTruth(t, events, fixture)
  t.same(reader.ids, events.map((_, i) => i + 1), 'ids 1, 2, 3...: no gap, no duplicate over the reconnects')
  t.equal(events.filter((e) => e.type === 'end').length, 1)
  await until(() => instances.every((server) => server.app.cluster?.ownedCount === 0))
  t.same(instances.map((server) => server.app.cluster?.ownedCount), [0, 0], 'once it ended no instance follows it any more (nor holds its Redis connection)')
})

t.test('limits.max_sessions counts the sessions of every instance', async (t) => {
  const limited = [await cluster('limited-a', { limits: { max_sessions: 2 } }), await cluster('limited-b', { limits: { max_sessions: 2 } })]
  // The other instances' sessions are over; their counts reach Redis with the next heartbeat.
  await sleep(500)
  const fixture = loadFixture(FIXTURE_NAMES[0] as string)
  const first = await createOk(limited[0]!.http, fixture)
  const second = await createOk(limited[1]!.http, fixture)
  const third = await createPaired(limited[0]!.http, fixture)
  t.equal(third.status, 503, 'a third session is refused, though each instance has only one')
  t.equal(third.json.code, 'too_many_sessions')
  const fourth = await createPaired(limited[1]!.http, fixture)
  t.equal(fourth.status, 503, 'on the other instance too')
  await stopPaired(limited[1]!.http, first)
  await new PairedReader([limited[1]!.http], first.events_url).follow()
  // Once the ended session's count is gone (the next heartbeat), there is room again.
  const again = await retryWhile(async () => await createPaired(limited[1]!.http, fixture), (answer) => answer.status === 503)
  t.equal(again.status, 201, 'a slot freed on one instance serves another')
  await stopPaired(limited[0]!.http, second)
  await stopPaired(limited[0]!.http, again.json as never)
  await closeOnceIdle(t, limited)
})

t.test('readiness is 503 while Redis is unreachable, 200 again after it is back', async (t) => {
  const ready = async (): Promise<number> => (await fetch(`${instances[0]!.http}/api/v1/ready`)).status
  t.equal(await ready(), 200)
  const restarting = redis.restart(1500)
  // Watched until Redis is back at the latest: it must be seen down while it is down.
  let restarted = false
  void restarting.then(() => { restarted = true })
  let sawDown = false
  await until(async () => (sawDown = await ready() === 503) || restarted)
  t.ok(sawDown, 'not ready while Redis is down')
  const audio = await fetch(`${instances[0]!.http}/api/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA/audio?seq=0`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(2) })
  if (audio.status === 503) {
    t.equal(((await audio.json()) as { code: string }).code, 'cluster_unavailable', 'paired routes answer 503 cluster_unavailable')
    t.ok(audio.headers.get('retry-after'), 'with Retry-After')
  }
  await restarting
  t.ok(await until(async () => await ready() === 200), 'ready again once Redis is back')
})

t.test('WebSocket and upload streams count against the cluster-wide limits too', async (t) => {
  const limited = [await cluster('ws-a', { limits: { max_sessions: 2 } }), await cluster('ws-b', { limits: { max_sessions: 2 } })]
  await sleep(500)
  const fixture = loadFixture('hello_16k_mono')
  const paired = await createOk(limited[0]!.http, fixture)
  const holder = await WsClient.connect(`${limited[1]!.ws}/api/v1/segmented`)
  holder.start(fixture.format)
  await holder.waitFor((e) => e.type === 'started')
  // One session on each instance: the cluster is full, though neither instance is.
  const refused = await WsClient.connect(`${limited[0]!.ws}/api/v1/segmented`)
  refused.start(fixture.format)
  t.match(await refused.waitFor((e) => e.type === 'error'), { code: 'too_many_sessions', message: /counted across instances/ }, 'a WebSocket stream is refused')
  t.match(await refused.closed, { code: 1013 })
  const upload = await fetch(`${limited[1]!.http}/api/v1/simple?sample_rate=16000&channels=1&bit_depth=16&is_float=false`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: fixture.pcm.subarray(0, 3200) })
  t.equal(upload.status, 503, 'an HTTP upload is refused')
  t.match(await upload.json(), { code: 'too_many_sessions', message: /counted across instances/ })
  holder.stop(true)
  await holder.closed
  // Its slot is free once the next heartbeat has the new count.
  const events = await retryWhile(async () => {
    const again = await WsClient.connect(`${limited[0]!.ws}/api/v1/simple`)
    const answer = await again.stream(fixture.format, fixture.pcm).catch(() => [])
    again.close()
    return answer
  }, (answer) => answer.at(-1)?.type !== 'end')
  t.equal(events.at(-1)?.type, 'end', 'admitted again once a slot is free')
  await stopPaired(limited[0]!.http, paired)
  await closeOnceIdle(t, limited)
})

// A reader open until the test closes it.
function openReader (url: string): Promise<{ status: number, close: () => void }> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false, headers: { accept: 'text/event-stream' } }, (response) => {
      response.resume()
      resolve({ status: response.statusCode ?? 0, close: () => { request.destroy() } })
    })
    request.once('error', reject)
  })
}

t.test('paired.max_readers counts the readers on every instance', async (t) => {
  const limited = [await cluster('readers-a', { paired: { max_readers: 2 } }), await cluster('readers-b', { paired: { max_readers: 2 } })]
  const fixture = loadFixture('hello_16k_mono')
  const session = await createOk(limited[0]!.http, fixture)
  const first = await openReader(`${limited[0]!.http}${session.events_url}`)
  const second = await openReader(`${limited[1]!.http}${session.events_url}`)
  t.same([first.status, second.status], [200, 200])
  const third = await fetch(`${limited[0]!.http}${session.events_url}`)
  t.equal(third.status, 409, 'a third reader is refused, though each instance has one')
  t.match(await third.json(), { code: 'conflict', message: /max_readers, counted across instances/ })
  second.close()
  const again = await retryWhile(async () => {
    const reader = await openReader(`${limited[1]!.http}${session.events_url}`)
    reader.close()
    return reader.status
  }, (status) => status !== 200, 50)
  t.equal(again, 200, 'a closed reader frees its place')
  first.close()
  await stopPaired(limited[1]!.http, session)
  await closeOnceIdle(t, limited)
})

t.test('a token scoped to a mode is checked against the session\'s mode on every instance', async (t) => {
  const auth = { auth: { api_keys: [KEY], token_secret: SECRET } }
  const secured = [await cluster('auth-a', auth), await cluster('auth-b', auth)]
  const fixture = loadFixture('hello_16k_mono')
  const created = await fetch(`${secured[0]!.http}/api/v1/sessions`, { method: 'POST', headers: { ...bearer(KEY), 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'simple', format: fixture.format }) })
  t.equal(created.status, 201)
  const { id } = await created.json() as { id: string }
  const segmentedOnly = craftToken({ mode: 'segmented' })
  const simpleOnly = craftToken({ mode: 'simple' })
  for (const [name, server] of [['the creating instance', secured[0]!], ['another instance', secured[1]!]] as const) {
    const refused = await fetch(`${server.http}/api/v1/sessions/${id}/audio?seq=0&token=${segmentedOnly}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: fixture.pcm.subarray(0, 3200) })
    t.equal(refused.status, 403, `${name}: a segmented-only token cannot post to a simple session`)
    t.match(await refused.json(), { code: 'forbidden', message: /scoped to segmented mode/ })
  }
  const allowed = await fetch(`${secured[1]!.http}/api/v1/sessions/${id}/audio?seq=0&token=${simpleOnly}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: fixture.pcm.subarray(0, 3200) })
  t.equal(allowed.status, 200, 'a simple-only token can, on another instance')
  const stopped = await fetch(`${secured[1]!.http}/api/v1/sessions/${id}/stop`, { method: 'POST', headers: bearer(KEY) })
  t.equal(stopped.status, 202)
  await closeOnceIdle(t, secured)
})

// Two instances must never both run a session: if Redis says another instance owns a session
// this one runs (a claim made while this one could not beat), this one stops it silently, and
// the instance named runs it (rebuilt from Redis), with no gap or repeat for the reader.
t.test('an owner that lost its session stops it; the new owner runs it', async (t) => {
  const fixture = loadFixture('dialogue_44k_stereo')
  const chunks = chunksOf(fixture)
  const [a, b] = instances as [TestServer, TestServer]
  t.ok(await until(() => instances.every((server) => server.app.cluster?.ownedCount === 0)), 'no session left over from an earlier subtest')
  const session = await createOk(a.http, fixture)
  const reader = new PairedReader([b.http], session.events_url)
  const reading = reader.follow(60000)
  const half = Math.floor(chunks.length / 2)
  for (let seq = 0; seq < half; seq++) await postChunk(() => a.http, session, seq, chunks[seq] as Uint8Array)
  t.equal(a.app.cluster?.ownedCount, 1)
  const check = createClient({ url: redis.url })
  await check.connect()
  await check.hSet(`streamer:s:${session.id}`, 'owner', 'b')
  t.ok(await until(() => a.app.cluster?.ownedCount === 0 && b.app.cluster?.ownedCount === 1), 'a stopped it, b runs it')
  for (let seq = half; seq < chunks.length; seq++) await postChunk(() => a.http, session, seq, chunks[seq] as Uint8Array)
  t.equal((await stopPaired(a.http, session)).status, 202)
  const events = await reading
  assertSegmentedMatchesTruth(t, events, fixture)
  t.same(reader.ids, events.map((_, i) => i + 1), 'ids 1, 2, 3...: no gap, no duplicate')
  t.equal(events.filter((e) => e.type === 'end').length, 1)
  t.equal(await check.hGet(`streamer:s:${session.id}`, 'owner'), 'b')
  check.destroy()
})
