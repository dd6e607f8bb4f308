import t from 'tap'
import type { StreamEvent } from '../../schemas/events.ts'
import { FIXTURE_NAMES, loadFixture, type Fixture } from '../helpers/fixtures.ts'
import { chunksOf, createOk, PairedReader, postChunk, stopPaired } from '../helpers/paired-client.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { FAST_MODEL, startServer, type TestServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'

// Three instances sharing a real redis-server: one paired session's requests go round-robin
// across them (create on A, chunks on A, B, C in turn, events read on C, stop on B) and its
// events must be those of a single instance without Redis, ids included.

const redis = await startRedis()
const single = await startServer({ model: { threads: 1, options: FAST_MODEL } })
const cluster = (name: string, extra: Record<string, unknown> = {}): Promise<TestServer> => startServer({
  model: { threads: 1, options: FAST_MODEL },
  cluster: { redis_url: redis.url, instance_id: name, heartbeat_ms: 200, claim_timeout_ms: 1500 },
  ...extra
})
const instances = [await cluster('a'), await cluster('b'), await cluster('c')]
t.teardown(async () => {
  for (const server of [...instances, single]) await server.close()
  await redis.stop()
})

// Within a channel (and for stream-wide events) the order is fixed; how channels interleave
// depends on worker timing. `started` names its own session.
const byChannel = (events: StreamEvent[]): Record<string, StreamEvent[]> => Object.groupBy(
  events.map((e) => e.type === 'started' ? { ...e, session_id: '' } : e),
  (e) => String(e.channel)
) as Record<string, StreamEvent[]>

async function run (servers: TestServer[], fixture: Fixture): Promise<{ events: StreamEvent[], ids: number[] }> {
  const bases = servers.map((s) => s.http)
  const session = await createOk(bases[0] as string, fixture)
  const reader = new PairedReader([bases.at(-1) as string], session.events_url)
  const reading = reader.follow()
  let turn = 0
  const chunks = chunksOf(fixture)
  for (const [seq, chunk] of chunks.entries()) {
    const ack = await postChunk(() => bases[turn++ % bases.length] as string, session, seq, chunk)
    if (ack.accepted_seq !== seq) throw new Error(`seq ${seq}: ${JSON.stringify(ack)}`)
  }
  const stopped = await stopPaired(bases[1 % bases.length] as string, session)
  if (stopped.status !== 202 || stopped.json.accepted_seq !== chunks.length - 1) throw new Error(`stop: ${stopped.status} ${JSON.stringify(stopped.json)}`)
  const events = await reading
  return { events, ids: [...reader.ids] }
}

for (const name of FIXTURE_NAMES) {
  t.test(`round-robin over 2 and 3 instances gives a single instance's events: ${name}`, async (t) => {
    const fixture = loadFixture(name)
    // The three runs at once: separate sessions, each with its own deterministic events.
    const [reference, ...runs] = await Promise.all([run([single], fixture), run(instances.slice(0, 2), fixture), run(instances, fixture)])
    assertSegmentedMatchesTruth(t, reference!.events, fixture)
    for (const [index, count] of [2, 3].entries()) {
      const clustered = runs[index]!
      t.same(byChannel(clustered.events), byChannel(reference!.events), `${count} instances: identical events on every channel`)
      t.same(clustered.ids, clustered.events.map((_, i) => i + 1), `${count} instances: ids 1, 2, 3... with no gap`)
      t.equal(clustered.events.at(-1)?.type, 'end')
    }
  })
}

t.test('Last-Event-ID replay on another instance, and 204 once the reader has end', async (t) => {
  const fixture = loadFixture(FIXTURE_NAMES[0] as string)
  const { events } = await run(instances, fixture)
  const session = await createOk(instances[0]!.http, fixture)
  for (const [seq, chunk] of chunksOf(fixture).entries()) await postChunk(() => instances[seq % 3]!.http, session, seq, chunk)
  await stopPaired(instances[2]!.http, session)
  const whole = new PairedReader([instances[1]!.http], session.events_url)
  const all = await whole.follow()
  t.same(byChannel(all), byChannel(events), 'a reader opened after the fact on B replays everything')
  // Resume after the third event, on C: the rest, with the same ids.
  const resumed = await fetch(`${instances[2]!.http}${session.events_url}?last_event_id=3`)
  const text = await resumed.text()
  t.match(text, /id: 4\n/, 'resumes at id 4')
  t.notMatch(text, /id: 3\n/, 'nothing before')
  const done = await fetch(`${instances[0]!.http}${session.events_url}`, { headers: { 'last-event-id': String(all.length) } })
  t.equal(done.status, 204, 'a reader that has end gets 204 on any instance')
})

t.test('an unknown id is 404 on every instance', async (t) => {
  for (const server of instances) {
    const response = await fetch(`${server.http}/api/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA/audio?seq=0`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(2) })
    t.equal(response.status, 404)
  }
})

t.test('/metrics shows the cluster: members, each instance\'s sessions, Redis up', async (t) => {
  const text = await (await fetch(`${instances[0]!.http}/metrics`)).text()
  t.match(text, /streamer_cluster_members 3\n/, 'three live members')
  for (const name of ['a', 'b', 'c']) t.match(text, new RegExp(`streamer_cluster_instance_sessions\\{instance="${name}"\\} \\d+`), `sessions of ${name}`)
  t.match(text, /streamer_cluster_redis_up 1\n/)
  t.match(text, /streamer_cluster_owned_paired_sessions \d+\n/)
})
