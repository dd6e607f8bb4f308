import { readFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { launchChromium, withChromium } from '../helpers/chromium.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import { loadFixture, type Fixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'

// A real browser against a real server: a page from another origin (its own port) creates a
// paired session with fetch, reads events with EventSource and POSTs a fixture's PCM in chunks;
// the test reads back what the page received.

const PAGE = readFileSync(new URL('./browser-page.html', import.meta.url))

interface PageEvent { id: string, type: string, data: StreamEvent }
interface PageState { events: PageEvent[], opens: number, errors: number, acks: Array<{ seq: number, status: number }> }

await withChromium(t, run)

async function run (): Promise<void> {
  const api = await startServer()
  t.teardown(() => api.close())

  // What reached the API from the page: preflights and events requests, with their sockets so
  // the test can cut an events connection the way a flaky network would.
  const seen: Array<{ method: string, url: string, origin: string | undefined, lastEventId: string | undefined, socket: Socket }> = []
  api.app.server.on('request', (request: http.IncomingMessage) => {
    const lastEventId = request.headers['last-event-id']
    seen.push({ method: request.method ?? '', url: request.url ?? '', origin: request.headers.origin, lastEventId: typeof lastEventId === 'string' ? lastEventId : undefined, socket: request.socket })
  })

  // The page's own origin: another port, so every API call is cross-origin.
  const pages = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://page')
    const fixture = /^\/fixtures\/([a-z0-9_]+)\.pcm$/.exec(url.pathname)?.[1]
    if (url.pathname === '/favicon.ico') {
      response.writeHead(204).end()
    } else if (url.pathname === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE)
    } else if (fixture !== undefined) {
      response.writeHead(200, { 'content-type': 'application/octet-stream' }).end(loadFixture(fixture).pcm)
    } else {
      response.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve))
  const pageOrigin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`
  t.teardown(() => new Promise<void>((resolve) => { pages.closeAllConnections(); pages.close(() => resolve()) }))

  const browser = await launchChromium(t)

  const openPage = async (t: Test): Promise<Page> => {
    const page = await browser.newPage()
    // An exception in the page is a failure; console errors (a cut connection logs one) are shown.
    page.on('pageerror', (error) => { t.fail(`error in the page: ${error.message}`) })
    page.on('console', (message) => { if (message.type() === 'error') t.comment(`page console: ${message.text()}`) })
    await page.goto(`${pageOrigin}/`)
    t.teardown(() => page.close())
    return page
  }

  const startOn = async (page: Page, fixture: Fixture): Promise<{ id: string, chunks: number }> =>
    await page.evaluate(async ([apiBase, path, start]) => await (globalThis as unknown as { startSession: (a: string, p: string, s: unknown) => Promise<{ id: string, chunks: number }> }).startSession(apiBase, path, start),
      [api.http, `/fixtures/${fixture.name}.pcm`, { mode: 'segmented', format: fixture.format, interim_results: true }] as const)

  const send = async (page: Page, fixture: Fixture, from: number, to: number, parallel: number): Promise<void> => {
    await page.evaluate(async ([format, a, b, n]) => { await (globalThis as unknown as { sendChunks: (f: unknown, a: number, b: number, n: number) => Promise<void> }).sendChunks(format, a, b, n) }, [fixture.format, from, to, parallel] as const)
  }

  const stop = async (page: Page): Promise<{ status: number, body: unknown }> =>
    await page.evaluate(async () => await (globalThis as unknown as { stopSession: () => Promise<{ status: number, body: unknown }> }).stopSession())

  const state = async (page: Page): Promise<PageState> => await page.evaluate(() => (globalThis as unknown as { paired: PageState }).paired)

  const waitForPage = async (page: Page, what: string, condition: (s: PageState) => boolean): Promise<PageState> => {
    const deadline = Date.now() + 30000
    while (true) {
      const current = await state(page)
      if (condition(current)) return current
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the page has ${JSON.stringify(current.events.map((e) => e.type))}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  const checkIds = (t: Test, events: PageEvent[]): void => {
    t.same(events.map((e) => e.id), events.map((_, i) => String(i + 1)), `event ids 1..${events.length}, each once`)
    t.same(events.map((e) => e.type), events.map((e) => e.data.type), 'the SSE event name is the event type')
  }

  t.test('a page on another origin streams a stereo fixture with fetch and reads results with EventSource', async (t) => {
    const fixture = loadFixture('dialogue_44k_stereo')
    const page = await openPage(t)
    const { id, chunks } = await startOn(page, fixture)
    t.match(id, /^[A-Za-z0-9_-]{22}$/)
    // Four requests in flight at once: chunks may arrive out of order; the server reorders.
    await send(page, fixture, 0, chunks, 4)
    const stopped = await stop(page)
    t.same(stopped, { status: 202, body: { accepted_seq: chunks - 1 } })
    const { events, acks } = await waitForPage(page, 'end', (s) => s.events.at(-1)?.type === 'end')
    checkIds(t, events)
    assertSegmentedMatchesTruth(t, events.map((e) => e.data), fixture)
    t.ok(events.some((e) => e.type === 'segment' && e.data.type === 'segment' && e.data.is_final === false), 'interim results reached the page')
    t.equal(acks.length, chunks, 'every chunk acknowledged')

    // CORS was exercised, not bypassed: the page's origin sent a preflight for the JSON create,
    // and the chunk POSTs (bytes, no Content-Type) needed none.
    const fromPage = seen.filter((r) => r.origin === pageOrigin)
    t.ok(fromPage.some((r) => r.method === 'OPTIONS' && r.url === '/api/v1/sessions'), 'a preflight for the create')
    t.notOk(fromPage.some((r) => r.method === 'OPTIONS' && r.url.includes('/audio')), 'no preflight per audio chunk')
    t.ok(fromPage.some((r) => r.method === 'GET' && r.url === `/api/v1/sessions/${id}/events`), 'EventSource sent its Origin: a cross-origin request')
  })

  t.test('EventSource resumes by itself with Last-Event-ID after the connection is cut mid-stream', async (t) => {
    const fixture = loadFixture('counting_8k_mono')
    const page = await openPage(t)
    const { id, chunks } = await startOn(page, fixture)
    const cut1 = Math.floor(chunks * 0.4)
    const cut2 = Math.floor(chunks * 0.7)
    await send(page, fixture, 0, cut1, 2)
    // The first utterance is over within 40 % of the audio: active, inactive, final and interims.
    const before = await waitForPage(page, 'the first events', (s) => s.events.length >= 3)
    const eventsRequests = (): typeof seen => seen.filter((r) => r.method === 'GET' && r.url.startsWith(`/api/v1/sessions/${id}/events`))
    t.equal(eventsRequests().length, 1)
    // The network drops the events connection; audio keeps flowing while the page reconnects.
    eventsRequests()[0]?.socket.destroy()
    await send(page, fixture, cut1, cut2, 2)
    await waitForPage(page, 'the EventSource reconnect', (s) => s.opens >= 2)
    await send(page, fixture, cut2, chunks, 2)
    t.equal((await stop(page)).status, 202)
    const after = await waitForPage(page, 'end', (s) => s.events.at(-1)?.type === 'end')
    t.ok(after.errors >= 1, 'the page saw the connection fail')
    const reconnect = eventsRequests()[1]
    t.ok(reconnect, 'EventSource reconnected')
    t.ok(Number(reconnect?.lastEventId) >= before.events.length, `with Last-Event-ID ${String(reconnect?.lastEventId)}`)
    checkIds(t, after.events)
    assertSegmentedMatchesTruth(t, after.events.map((e) => e.data), fixture)
  })
}
