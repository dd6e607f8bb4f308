import t from 'tap'
import { createClient } from 'redis'
import type { StreamEvent } from '../../schemas/events.ts'
import { startInstance } from '../helpers/cluster-process.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import type { PairedSessionCreated } from '../../schemas/paired-session.ts'
import { chunksOf, createOk, createPaired, PairedReader, postChunk, stopPaired } from '../helpers/paired-client.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { FAST_MODEL, startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'
import { until } from '../helpers/waiting.ts'

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

// What is timing-dependent must not break the failover: interim results (one in flight per
// channel, so how many come out depends on the model's pace; max_buffered_seconds is raised so
// that the upload, sent as fast as it goes, never puts the stream under the pressure that skips
// them), acks (at most every ~100 ms) and
// a model that fails a third of its inferences (other ones on the replay). The new owner
// recognises what was published by what it is about (src/cluster/replay-filter.ts): every
// utterance gets exactly one final result (its final, or the error of its failed inference),
// no interim or ack is repeated, the ids run on with no gap.
t.test('kill -9 mid-session with interim results, acks and a failing model: one final result per utterance, nothing repeated', async (t) => {
  const failing = { model: { threads: 1, options: { ...FAST_MODEL, delay: 0.02, jitter: 0.5, failure_rate: 0.3 } }, limits: { max_buffered_seconds: 600 } }
  const c = await startInstance('c', redis.url, {}, failing)
  const d = await startInstance('d', redis.url, {}, failing)
  t.teardown(async () => {
    await c.kill('SIGKILL')
    await d.kill('SIGKILL')
  })
  const expected = await reference()
  const created = await createPaired(c.http, fixture, { interim_results: true, acks: true })
  t.equal(created.status, 201)
  const session = created.json as unknown as PairedSessionCreated
  const reader = new PairedReader([d.http], session.events_url)
  const reading = reader.follow(60000)
  const half = Math.floor(chunks.length / 2)
  for (let seq = 0; seq < half; seq++) await postChunk(() => (seq % 2 === 0 ? c : d).http, session, seq, chunks[seq] as Uint8Array)
  const isFinalResult = (e: StreamEvent): boolean => (e.type === 'segment' || (e.type === 'error' && e.start_time !== undefined)) && e.is_final !== false
  t.ok(await until(() => reader.events.some(isFinalResult), 20000), 'a final result arrived before the kill')
  await c.kill('SIGKILL')
  for (let seq = half; seq < chunks.length; seq++) await postChunk(() => d.http, session, seq, chunks[seq] as Uint8Array)
  t.equal((await stopPaired(d.http, session)).status, 202)
  const events = await reading
  t.same(reader.ids, events.map((_, i) => i + 1), 'ids 1, 2, 3...: no gap, no duplicate')
  t.equal(events.filter((e) => e.type === 'end').length, 1, 'one end, the last event')
  t.equal(events.at(-1)?.type, 'end')
  t.equal(events.filter((e) => e.type === 'started').length, 1, 'one started')
  const span = (e: StreamEvent): string => e.type === 'segment' || e.type === 'error' ? `${String(e.channel)} ${String(e.start_time)}-${String(e.end_time)}` : ''
  t.same(events.filter(isFinalResult).map(span).sort(), expected.filter(isFinalResult).map(span).sort(),
    'exactly one final result (final segment or failed inference) per utterance of the single-instance run')
  // An interim result is an interim segment or, for the third of inferences that fail, its
  // error event: the replay must not repeat either.
  const isInterimResult = (e: StreamEvent): boolean => (e.type === 'segment' || (e.type === 'error' && e.start_time !== undefined)) && e.is_final === false
  const interims = events.filter(isInterimResult).map(span)
  t.equal(new Set(interims).size, interims.length, `no interim result repeated (${interims.length} interim results)`)
  t.ok(interims.length > 0, 'interim results were sent')
  const acks = events.flatMap((e) => e.type === 'ack' ? [e.bytes] : [])
  t.same(acks, [...acks].sort((x, y) => x - y), 'acks never go back')
  t.equal(new Set(acks).size, acks.length, 'no ack repeated')
  for (const type of ['active', 'inactive'] as const) {
    const times = events.flatMap((e) => e.type === type ? [`${e.channel} ${e.time}`] : [])
    const reference = expected.flatMap((e) => e.type === type ? [`${e.channel} ${e.time}`] : [])
    t.same(times.sort(), reference.sort(), `${type}: the single instance's, once each`)
  }
  const end = events.at(-1)
  t.equal(end?.type === 'end' ? end.bytes_received : -1, fixture.pcm.length, 'every byte was taken')
})

// SIGTERM (a rolling restart) of the instance running a paired session: it hands the session
// over instead of ending it. Another instance claims it at its next heartbeat and carries on;
// the reader on the stopping instance is cut and resumes on the other with Last-Event-ID.
t.test('SIGTERM of the owner hands the session over: it goes on elsewhere, nothing lost or repeated', async (t) => {
  const e = await startInstance('e', redis.url)
  const f = await startInstance('f', redis.url)
  t.teardown(async () => {
    await e.kill('SIGKILL')
    await f.kill('SIGKILL')
  })
  const expected = await reference()
  const session = await createOk(e.http, fixture) // owned by e
  const reader = new PairedReader([e.http, f.http], session.events_url)
  const reading = reader.follow(60000)
  const half = Math.floor(chunks.length / 2)
  for (let seq = 0; seq < half; seq++) await postChunk(() => (seq % 2 === 0 ? e : f).http, session, seq, chunks[seq] as Uint8Array)
  t.ok(await until(() => reader.events.some((ev) => ev.type === 'segment' && ev.is_final), 20000), 'a final arrived before the restart')
  const stopping = Date.now()
  await e.kill('SIGTERM')
  // What matters is that it did not wait for the session (a drain would hold it until the client
  // stopped or shutdown.drain_seconds passed); how long the exit took is reported, not asserted.
  t.notOk(reader.events.some((ev) => ev.type === 'end' || ev.type === 'shutdown'), `the stopping instance exited (in ${Date.now() - stopping} ms) with the session still open`)
  for (let seq = half; seq < chunks.length; seq++) await postChunk(() => f.http, session, seq, chunks[seq] as Uint8Array)
  t.equal((await stopPaired(f.http, session)).status, 202)
  const events = await reading
  t.ok(reader.reconnects >= 1, 'the reader on the stopping instance was cut and came back')
  t.same(reader.ids, events.map((_, i) => i + 1), 'ids 1, 2, 3...: no gap, no duplicate')
  t.notOk(events.some((ev) => ev.type === 'shutdown' || ev.type === 'error'), 'no shutdown or error event: the session was not drained')
  t.same(byChannel(events), byChannel(expected), 'the same events as a single instance')
  const check = createClient({ url: redis.url })
  await check.connect()
  // Any live instance may claim it: f, or b from the first test (still running).
  t.match(await check.hGet(`streamer:s:${session.id}`, 'owner'), /^(f|b)$/, 'a surviving instance runs it now')
  check.destroy()
})
