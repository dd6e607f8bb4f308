import t from 'tap'
import { createClient } from 'redis'
import type { StreamEvent } from '../../schemas/events.ts'
import { startInstance } from '../helpers/cluster-process.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { chunksOf, createOk, PairedReader, postChunk, stopPaired } from '../helpers/paired-client.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { FAST_MODEL, startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'
import { until } from '../helpers/sse-collector.ts'

// kill -9 of the instance that runs a paired session, mid-session: another instance claims
// it once the heartbeat expires, replays the session's audio from Redis into a new pipeline
// and carries on. The reader (on the surviving instance) sees every event exactly once, in
// order with no gap, and the same events as a single instance gives for the same audio.

const byChannel = (events: StreamEvent[]): Record<string, StreamEvent[]> => Object.groupBy(
  events.map((e) => e.type === 'started' ? { ...e, session_id: '' } : e),
  (e) => String(e.channel)
) as Record<string, StreamEvent[]>

const redis = await startRedis()
const a = await startInstance('a', redis.url)
const b = await startInstance('b', redis.url)
const single = await startServer({ model: { threads: 1, options: FAST_MODEL } })
t.teardown(async () => {
  await a.kill('SIGKILL')
  await b.kill('SIGKILL')
  await single.close()
  await redis.stop()
})

const fixture = loadFixture('dialogue_44k_stereo')
const chunks = chunksOf(fixture)

async function reference (): Promise<StreamEvent[]> {
  const session = await createOk(single.http, fixture)
  const reader = new PairedReader([single.http], session.events_url)
  const reading = reader.follow()
  for (const [seq, chunk] of chunks.entries()) await postChunk(() => single.http, session, seq, chunk)
  await stopPaired(single.http, session)
  return await reading
}

t.test('kill -9 of the owner mid-session: the session completes on the other instance', async (t) => {
  const expected = await reference()
  assertSegmentedMatchesTruth(t, expected, fixture)
  const session = await createOk(a.http, fixture) // owned by a
  const reader = new PairedReader([b.http], session.events_url)
  const reading = reader.follow(60000)
  const half = Math.floor(chunks.length / 2)
  let turn = 0
  for (let seq = 0; seq < half; seq++) await postChunk(() => (turn++ % 2 === 0 ? a : b).http, session, seq, chunks[seq] as Uint8Array)
  t.ok(await until(() => reader.events.some((e) => e.type === 'segment' && e.is_final), 20000), 'a final arrived before the kill')
  await a.kill('SIGKILL')
  for (let seq = half; seq < chunks.length; seq++) await postChunk(() => b.http, session, seq, chunks[seq] as Uint8Array)
  const stopped = await stopPaired(b.http, session)
  t.equal(stopped.status, 202)
  const events = await reading
  t.same(reader.ids, events.map((_, i) => i + 1), 'ids 1, 2, 3...: no gap, no duplicate')
  t.same(byChannel(events), byChannel(expected), 'the same events as a single instance: every final once, then end')
  t.equal(events.at(-1)?.type, 'end')
  const check = createClient({ url: redis.url })
  await check.connect()
  t.equal(await check.hGet(`streamer:s:${session.id}`, 'owner'), 'b', 'the session was claimed by b (it is kept for linger_ms after end)')
  check.destroy()
})
