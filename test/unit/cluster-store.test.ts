import t from 'tap'
import { ClusterConfig } from '../../schemas/config.ts'
import { Value } from '@sinclair/typebox/value'
import { command, connect } from '../../src/cluster/connection.ts'
import { Membership } from '../../src/cluster/membership.ts'
import { SessionStore } from '../../src/cluster/session-store.ts'
import { startRedis } from '../helpers/redis-server.ts'

// The Redis side of the cluster with no server: the chunk reordering script gives the acks a
// single instance gives, stop reports what it dropped, admission counts live members only,
// and a session is claimed only once its owner's heartbeat is gone. A real redis-server.

const redis = await startRedis()
const client = await connect({ url: redis.url, queueWhileOffline: false })
t.teardown(async () => {
  client.destroy()
  await redis.stop()
})
const config = (id: string): ClusterConfig => ({ ...Value.Default(ClusterConfig, {}) as ClusterConfig, redis_url: redis.url, instance_id: id, claim_timeout_ms: 300 })
const store = new SessionStore(client, 'streamer:')
const limits = { window: 4, maxBytes: 10, retention: 1000 }
const bytes = (n: number): Uint8Array => new Uint8Array(n)

t.test('chunks: applied, held behind a gap, released, duplicates, too far, too many bytes', async (t) => {
  await store.create('s1', { start: '{}', mode: 'segmented', key: undefined, owner: 'a', state: 'open' })
  t.same(await store.pushChunk('s1', 0, bytes(2), limits), { status: 'applied', accepted: 0, bytes: 2, held: [] })
  t.same(await store.pushChunk('s1', 2, bytes(3), limits), { status: 'held', accepted: 0, bytes: 2, held: [2] })
  t.same(await store.pushChunk('s1', 2, bytes(3), limits), { status: 'duplicate', accepted: 0, bytes: 2, held: [2] })
  await t.rejects(store.pushChunk('s1', 9, bytes(1), limits), { code: 'conflict' }, 'past the window')
  await t.rejects(store.pushChunk('s1', 3, bytes(8), limits), { code: 'conflict' }, 'past reorder_max_bytes')
  t.same(await store.pushChunk('s1', 1, bytes(1), limits), { status: 'applied', accepted: 2, bytes: 6, held: [] }, 'the gap fills: 1 and 2 applied')
  t.same(await store.pushChunk('s1', 0, bytes(2), limits), { status: 'duplicate', accepted: 2, bytes: 6, held: [] })
  const audio = await command(client, ['XLEN', store.audioKey('s1')])
  t.equal(audio, 4, 'start + three chunks on the audio stream, in order')
  await t.rejects(store.pushChunk('nope', 0, bytes(1), limits), { code: 'not_found' })
})

t.test('stop drops held chunks and says which; later chunks are refused, retries acknowledged', async (t) => {
  await store.create('s2', { start: '{}', mode: 'segmented', key: undefined, owner: 'a', state: 'open' })
  await store.pushChunk('s2', 0, bytes(1), limits)
  await store.pushChunk('s2', 2, bytes(1), limits)
  t.same(await store.stop('s2'), { accepted: 0, discarded: [2] })
  t.same(await store.stop('s2'), { accepted: 0, discarded: [] }, 'idempotent')
  t.equal((await store.pushChunk('s2', 0, bytes(1), limits)).status, 'duplicate')
  await t.rejects(store.pushChunk('s2', 1, bytes(1), limits), { code: 'conflict' })
  await t.rejects(store.control('s2', 'finalize'), { code: 'conflict' })
})

t.test('admission counts live members only; a claim needs the owner dead', async (t) => {
  const a = new Membership(client, config('a'))
  const b = new Membership(client, config('b'))
  await a.beat({ total: 1, perKey: new Map([['k1', 1]]) })
  await b.beat({ total: 0, perKey: new Map() })
  await b.reserve('k1', 2, 0)
  await t.rejects(b.reserve(undefined, 2, 0), { code: 'too_many_sessions' }, 'a (1) + b (1) = the limit of 2')
  await t.rejects(b.reserve('k1', 10, 2), { code: 'too_many_sessions' }, 'the key has 2 across the cluster')
  await store.create('s3', { start: '{}', mode: 'segmented', key: undefined, owner: 'a', state: 'open' })
  t.equal(await store.claim('s3', 'b'), false, 'a is alive')
  await new Promise((resolve) => setTimeout(resolve, 400)) // a's heartbeat (300 ms) expires
  await b.beat({ total: 1, perKey: new Map() })
  t.equal(await store.claim('s3', 'b'), true, 'a is dead: b takes it')
  t.equal(await store.claim('s3', 'c'), false, 'b is alive: nobody else can')
  await b.reserve(undefined, 2, 0)
  t.same([...(await b.members()).keys()], ['b'], 'a is no longer a member')
})
