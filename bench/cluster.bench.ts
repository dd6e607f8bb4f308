// Scale-out cost: (1) latency from a chunk POST to the `ack` event that covers it, read on
// the same instance (single, no Redis) versus on another instance (cluster of 2 over a real
// redis-server); (2) paired-session throughput: concurrent sessions posting audio as fast as
// acks allow, seconds of audio per wall second per instance. Acks are sent at most every
// ~100 ms (stream.ts), so latencies include up to that batching in both setups: compare the two.
import { loadFixture } from '../test/helpers/fixtures.ts'
import { chunksOf, createOk, PairedReader, postChunk, stopPaired } from '../test/helpers/paired-client.ts'
import { startRedis } from '../test/helpers/redis-server.ts'
import { FAST_MODEL, startServer, type TestServer } from '../test/helpers/server.ts'

const fixture = loadFixture('dialogue_44k_stereo')
const chunks = chunksOf(fixture)
const SESSIONS = Number(process.env.CLUSTER_BENCH_SESSIONS ?? 8)

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN
}

// One session: chunks from `post`, events read on `read`; per chunk, POST start -> ack covering it.
async function latencies (post: TestServer, read: TestServer): Promise<number[]> {
  const response = await fetch(`${post.http}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'segmented', format: fixture.format, acks: true }) })
  const session = await response.json() as Parameters<typeof postChunk>[1]
  const reader = new PairedReader([read.http], session.events_url)
  const reading = reader.follow(120000)
  const out: number[] = []
  let total = 0
  for (const [seq, chunk] of chunks.entries()) {
    total += chunk.length
    const sent = performance.now()
    await postChunk(() => post.http, session, seq, chunk)
    while (!reader.events.some((e) => e.type === 'ack' && e.bytes >= total)) await new Promise((resolve) => setTimeout(resolve, 1))
    out.push(performance.now() - sent)
  }
  await stopPaired(post.http, session)
  await reading
  return out
}

async function throughput (servers: TestServer[]): Promise<number> {
  const started = performance.now()
  await Promise.all(Array.from({ length: SESSIONS }, async (_, index) => {
    const session = await createOk(servers[index % servers.length]!.http, fixture)
    const reader = new PairedReader([servers[(index + 1) % servers.length]!.http], session.events_url)
    const reading = reader.follow(300000)
    let turn = index
    for (const [seq, chunk] of chunks.entries()) await postChunk(() => servers[turn++ % servers.length]!.http, session, seq, chunk)
    await stopPaired(servers[0]!.http, session)
    await reading
  }))
  const wall = (performance.now() - started) / 1000
  return SESSIONS * fixture.duration / wall / servers.length
}

const redis = await startRedis()
const single = await startServer({ log_level: 'silent', model: { threads: 2, options: FAST_MODEL } })
const cluster = (name: string): Promise<TestServer> => startServer({ log_level: 'silent', model: { threads: 2, options: FAST_MODEL }, cluster: { redis_url: redis.url, instance_id: name } })
const a = await cluster('a')
const b = await cluster('b')
try {
  const one = await latencies(single, single)
  const two = await latencies(a, b)
  console.log(`chunk POST -> its ack event, single instance:            p50 ${percentile(one, 0.5).toFixed(1)} ms  p99 ${percentile(one, 0.99).toFixed(1)} ms (${one.length} chunks)`)
  console.log(`chunk POST on A -> its ack event read on B (cluster):    p50 ${percentile(two, 0.5).toFixed(1)} ms  p99 ${percentile(two, 0.99).toFixed(1)} ms`)
  const singleRate = await throughput([single])
  const clusterRate = await throughput([a, b])
  console.log(`paired throughput, ${SESSIONS} sessions: single ${singleRate.toFixed(1)} s audio/s per instance; cluster of 2 ${clusterRate.toFixed(1)} s audio/s per instance (requests round-robin)`)
} finally {
  for (const server of [single, a, b]) await server.close()
  await redis.stop()
}
