import { createHash } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { createClient } from 'redis'
import { StreamEvent, type EndEvent } from '../../schemas/events.ts'
import { launchChromium, withChromium } from '../helpers/chromium.ts'
import { startInstance } from '../helpers/cluster-process.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { chunksOf, createOk, postChunk, stopPaired } from '../helpers/paired-client.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'

// cluster-failover.test.ts with the readers a browser has: headless Chromium's EventSource.
// Three instances share a real redis-server; the session is created on `a`, which runs its
// pipeline, and `a` is killed with SIGKILL mid-session. A page (on an origin of its own, so
// every events URL is cross-origin) runs two readers: one on `b`, a survivor, whose connection
// the kill never touches, and one on `a` itself, which is cut by the kill and resumes on `c`
// with ?last_event_id= (what a page does when the instance it reads from is gone; EventSource's
// own reconnect would only try the dead instance again). Both must see every final exactly
// once, ids 1, 2, 3... with no duplicate, and then `end` with the sha256 of the bytes sent.

// Each event type's name, as the server writes it in `event:` (EventSource dispatches by it).
const TYPES = StreamEvent.anyOf.map((schema) => schema.properties.type.const)

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>cluster failover</title>
<script>
globalThis.readers = {}

// An events reader: EventSource on urls[0]; when its connection is cut, the next URL (the last
// one again when none is left), resumed after the last id received.
globalThis.follow = (name, urls, types) => {
  const reader = { events: [], connections: [], ended: false }
  globalThis.readers[name] = reader
  const connect = () => {
    const last = reader.events.at(-1)?.id
    const base = urls[Math.min(reader.connections.length, urls.length - 1)]
    const url = last === undefined ? base : base + '?last_event_id=' + last
    const connection = { url, opened: false, events: 0, error: null }
    reader.connections.push(connection)
    const source = new EventSource(url)
    source.onopen = () => { connection.opened = true }
    for (const type of types) {
      source.addEventListener(type, (message) => {
        if (message.data === undefined) return // the connection's own error, below
        reader.events.push({ id: message.lastEventId, type, data: message.data })
        connection.events++
        if (type === 'end') { reader.ended = true; source.close() }
      })
    }
    source.addEventListener('error', (event) => {
      if (event.data !== undefined || reader.ended) return // an error event of the stream
      connection.error = source.readyState === EventSource.CLOSED ? 'closed' : 'cut'
      source.close()
      if (reader.connections.length < 20) setTimeout(connect, 100)
    })
  }
  connect()
}
</script>`

interface Received { id: string, type: string, data: string }
interface Connection { url: string, opened: boolean, events: number, error: string | null }
interface Reader { events: Received[], connections: Connection[], ended: boolean }
type Readers = Record<'steady' | 'failover', Reader>

await withChromium(t, async () => {
  const redis = await startRedis()
  const [browser, a, b, c] = await Promise.all([launchChromium(t), ...['a', 'b', 'c'].map(async (name) => await startInstance(name, redis.url))])
  if (a === undefined || b === undefined || c === undefined) throw new Error('three instances')
  t.teardown(async () => {
    for (const instance of [a, b, c]) await instance.kill('SIGKILL')
    await redis.stop()
  })
  const pages = http.createServer((request, response) => {
    if (new URL(request.url ?? '/', 'http://page').pathname === '/') response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE)
    else response.writeHead(404).end()
  })
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { pages.closeAllConnections(); pages.close(() => resolve()) }))
  const pageOrigin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`
  const check = createClient({ url: redis.url })
  await check.connect()
  t.teardown(() => { check.destroy() })

  const fixture = loadFixture('dialogue_44k_stereo')
  const chunks = chunksOf(fixture)

  t.test('kill -9 of the owner mid-session: EventSource readers in Chromium see every final once, then end', async (t) => {
    const page = await browser.newPage()
    t.teardown(() => page.close())
    page.on('pageerror', (error) => { t.fail(`error in the page: ${error.message}`) })
    await page.goto(`${pageOrigin}/`)
    const readers = async (): Promise<Readers> => await page.evaluate(() => (globalThis as unknown as { readers: Readers }).readers)
    // `condition` runs in the page.
    const waitInPage = async (what: string, condition: () => boolean, timeout: number): Promise<void> => {
      try {
        await page.waitForFunction(condition, undefined, { timeout, polling: 50 })
      } catch (error) {
        throw new Error(`${what}: ${(error as Error).message.split('\n')[0] ?? ''}; readers: ${JSON.stringify(await readers()).slice(0, 3000)}`)
      }
    }

    const session = await createOk(a.http, fixture)
    t.equal(await check.hGet(`streamer:s:${session.id}`, 'owner'), 'a', 'the instance that created the session runs its pipeline')
    await page.evaluate(([steady, failover, types]) => {
      const page = globalThis as unknown as { follow: (name: string, urls: readonly string[], types: readonly string[]) => void }
      page.follow('steady', steady, types)
      page.follow('failover', failover, types)
    }, [[`${b.http}${session.events_url}`], [`${a.http}${session.events_url}`, `${c.http}${session.events_url}`], TYPES] as const)

    // The first half round-robin over the three, until both readers have a final.
    const half = Math.floor(chunks.length / 2)
    let turn = 0
    for (let seq = 0; seq < half; seq++) await postChunk(() => [a, b, c][turn++ % 3]?.http as string, session, seq, chunks[seq] as Uint8Array)
    await waitInPage('a final in both readers before the kill', () => {
      const readers = (globalThis as unknown as { readers: Readers }).readers
      return Object.values(readers).every((reader) => reader.events.some((e) => e.type === 'segment' && (JSON.parse(e.data) as { is_final?: boolean }).is_final === true))
    }, 20000)
    await a.kill('SIGKILL')
    // The rest to the survivors (postChunk retries a 429 or 503 while the session moves).
    for (let seq = half; seq < chunks.length; seq++) await postChunk(() => [b, c][turn++ % 2]?.http as string, session, seq, chunks[seq] as Uint8Array)
    const stopped = await stopPaired(c.http, session)
    t.equal(stopped.status, 202, 'stop taken by a survivor')
    await waitInPage('end in both readers', () => Object.values((globalThis as unknown as { readers: Readers }).readers).every((reader) => reader.ended), 30000)

    const { steady, failover } = await readers()
    const sha256 = createHash('sha256').update(fixture.pcm).digest('hex')
    for (const [name, reader] of [['steady (on b)', steady], ['failover (on a, then c)', failover]] as const) {
      t.test(name, async (t) => {
        const ids = reader.events.map((e) => Number(e.id))
        t.same(ids, reader.events.map((_, i) => i + 1), 'ids 1, 2, 3...: strictly increasing, no gap, no duplicate')
        const events = reader.events.map((e) => JSON.parse(e.data) as StreamEvent)
        t.same(reader.events.map((e) => e.type), events.map((e) => e.type), 'each event under its own `event:` name')
        assertSegmentedMatchesTruth(t, events, fixture)
        t.same(events.filter((e) => e.type === 'error'), [], 'no error event')
        const ends = events.filter((e): e is EndEvent => e.type === 'end')
        t.equal(ends.length, 1, 'exactly one end')
        t.match(ends[0], { bytes_received: fixture.pcm.length, sha256, errors: 0 }, 'end: every byte sent was taken, in order (sha256 of the bytes sent)')
      })
    }
    t.same(failover.events, steady.events, 'both readers got the same events with the same ids')
    t.match(steady.connections, [{ url: `${b.http}${session.events_url}`, opened: true, error: null }], 'the reader on a survivor kept its one connection through the failover')
    t.equal(steady.connections.length, 1)
    const [onOwner, resumed] = failover.connections
    t.equal(failover.connections.length, 2, `the reader on the owner connected twice (${JSON.stringify(failover.connections)})`)
    t.ok(onOwner !== undefined && onOwner.events > 0 && onOwner.error === 'cut', 'events arrived from the owner, then its connection was cut')
    t.match(resumed, { url: `${c.http}${session.events_url}?last_event_id=${onOwner?.events ?? -1}`, opened: true, error: null }, 'and resumed on c after the last id the owner sent')
    t.ok((resumed?.events ?? 0) > 0, 'the rest came from c')
    t.ok(['b', 'c'].includes(await check.hGet(`streamer:s:${session.id}`, 'owner') ?? ''), 'a survivor claimed the session')
  })
})
