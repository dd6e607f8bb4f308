import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { launchChromium, withChromium } from '../helpers/chromium.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { assertSegmentedMatchesTruth, assertSimpleCoversAudio } from '../helpers/speech-assertions.ts'
import { craftToken, startAuthServer, tokenFrom } from '../helpers/auth-server.ts'

// A browser page on another origin against a server with authentication on, as the README's
// "Securing it" describes: the page's backend (here, the test) holds the API key and hands the
// page short-lived tokens; the page sends them where a browser can, in the URL for fetch and
// EventSource and as the WebSocket subprotocol. Expired, forged and out-of-scope tokens must
// fail the way a browser shows it: EventSource closes for good, the WebSocket never opens.

const fixture = loadFixture('hello_16k_mono')

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>auth</title>
<script>
const TYPES = ['started', 'active', 'inactive', 'segment', 'data', 'ack', 'finalized', 'error', 'shutdown', 'end']

// A whole paired session, the token in every URL; the events as EventSource delivered them.
globalThis.pairedSession = async (api, token, pcmPath, start, chunkBytes) => {
  const pcm = new Uint8Array(await (await fetch(pcmPath)).arrayBuffer())
  const created = await fetch(api + '/api/v1/sessions?token=' + token, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(start) })
  if (created.status !== 201) return { status: created.status, body: await created.json(), events: [] }
  const session = await created.json()
  const events = []
  const source = new EventSource(api + session.events_url + '?token=' + token)
  const ended = new Promise((resolve, reject) => {
    for (const type of TYPES) {
      source.addEventListener(type, (message) => {
        if (message.data === undefined) return // the connection's own error, below
        events.push(JSON.parse(message.data))
        if (type === 'end') { source.close(); resolve() }
      })
    }
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) reject(new Error('the events stream failed')) }
  })
  for (let at = 0, seq = 0; at < pcm.length; at += chunkBytes, seq++) {
    const ack = await fetch(api + session.audio_url + '?seq=' + seq + '&token=' + token, { method: 'POST', body: pcm.subarray(at, at + chunkBytes) })
    if (ack.status !== 200) return { status: ack.status, body: await ack.json(), events }
  }
  await fetch(api + session.stop_url + '?token=' + token, { method: 'POST' })
  await ended
  return { status: 201, events }
}

// What EventSource makes of a URL: it opens, or it fails for good (readyState CLOSED).
globalThis.eventSourceOutcome = (url) => new Promise((resolve) => {
  const source = new EventSource(url)
  source.onopen = () => { source.close(); resolve('open') }
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) resolve('closed for good') }
})

// A whole WebSocket stream with the token as the subprotocol, or how the socket failed.
globalThis.webSocketStream = (url, protocols, start, pcmPath) => new Promise((resolve) => {
  const socket = new WebSocket(url, protocols)
  socket.binaryType = 'arraybuffer'
  const events = []
  let opened = false
  let protocol = null
  socket.onopen = async () => {
    opened = true
    protocol = socket.protocol
    const pcm = new Uint8Array(await (await fetch(pcmPath)).arrayBuffer())
    socket.send(JSON.stringify({ request: 'start', ...start }))
    for (let at = 0; at < pcm.length; at += 8192) socket.send(pcm.subarray(at, at + 8192))
    socket.send(JSON.stringify({ request: 'stop', disconnect: true }))
  }
  socket.onmessage = (message) => { events.push(JSON.parse(message.data)) }
  socket.onclose = (close) => { resolve({ opened, protocol, code: close.code, events }) }
})

globalThis.fetchAnswer = async (url, init) => {
  const response = await fetch(url, init)
  return { status: response.status, body: await response.json(), retryAfter: response.headers.get('retry-after') }
}
</script>`

interface PairedResult { status: number, body?: Record<string, unknown>, events: StreamEvent[] }
interface SocketResult { opened: boolean, protocol: string | null, code: number, events: StreamEvent[] }

await withChromium(t, run)

async function run (): Promise<void> {
  // The page's own origin: another port, so every API call is cross-origin.
  const pages = http.createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://page').pathname
    if (path === '/') response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE)
    else if (path === `/fixtures/${fixture.name}.pcm`) response.writeHead(200, { 'content-type': 'application/octet-stream' }).end(fixture.pcm)
    else response.writeHead(404).end()
  })
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve))
  const pageOrigin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`
  t.teardown(() => new Promise<void>((resolve) => { pages.closeAllConnections(); pages.close(() => resolve()) }))

  const api = await startAuthServer({ paired: { cors_origins: [pageOrigin] } })
  t.teardown(() => api.close())

  const browser = await launchChromium(t)

  const openPage = async (t: Test): Promise<Page> => {
    const page = await browser.newPage()
    page.on('pageerror', (error) => { t.fail(`error in the page: ${error.message}`) })
    await page.goto(`${pageOrigin}/`)
    t.teardown(() => page.close())
    return page
  }
  type PageFunctions = Record<string, (...args: unknown[]) => Promise<unknown>>
  const inPage = async <T>(page: Page, name: string, ...args: unknown[]): Promise<T> =>
    await page.evaluate(async ([fn, rest]) => await (globalThis as unknown as PageFunctions)[fn as string]?.(...(rest as unknown[])), [name, args] as const) as T
  const pcmPath = `/fixtures/${fixture.name}.pcm`
  const start = { format: fixture.format, interim_results: true }

  t.test('EventSource, fetch and the HTTP upload with ?token=, from a page on another origin', async (t) => {
    const page = await openPage(t)
    const token = await tokenFrom(api, { mode: 'segmented' })
    const result = await inPage<PairedResult>(page, 'pairedSession', api.http, token, pcmPath, { mode: 'segmented', ...start }, 32000)
    t.equal(result.status, 201, `the session ran (${JSON.stringify(result.body)})`)
    assertSegmentedMatchesTruth(t, result.events, fixture)
    t.ok(result.events.some((e) => e.type === 'segment' && !e.is_final), 'interim results reached EventSource')
  })

  t.test('EventSource with an expired, a forged or an out-of-scope token closes for good', async (t) => {
    const page = await openPage(t)
    const created = await fetch(`${api.http}/api/v1/sessions?token=${await tokenFrom(api)}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'simple', ...start }) })
    const { id } = await created.json() as { id: string }
    const events = (token: string): string => `${api.http}/api/v1/sessions/${id}/events?token=${token}`
    t.equal(await inPage(page, 'eventSourceOutcome', events(await tokenFrom(api, { session_id: id }))), 'open', 'a token for this session opens it')
    t.equal(await inPage(page, 'eventSourceOutcome', events(craftToken({ expiresAt: Math.floor(Date.now() / 1000) - 1 }))), 'closed for good', 'expired')
    t.equal(await inPage(page, 'eventSourceOutcome', events(craftToken({}, 'some-other-secret-0123456789abcdef!'))), 'closed for good', 'forged')
    t.equal(await inPage(page, 'eventSourceOutcome', events(await tokenFrom(api, { session_id: 'another-session' }))), 'closed for good', 'another session\'s token')
    t.equal(await inPage(page, 'eventSourceOutcome', events(await tokenFrom(api, { mode: 'segmented' }))), 'closed for good', 'a token for the other mode')
    t.equal(await inPage(page, 'eventSourceOutcome', `${api.http}/api/v1/sessions/${id}/events`), 'closed for good', 'no token')
    // fetch sees why: the refusal carries CORS headers, so the page can read its body.
    const refused = await inPage<{ status: number, body: Record<string, unknown> }>(page, 'fetchAnswer', events(craftToken({ expiresAt: 1 })))
    t.match(refused, { status: 401, body: { code: 'unauthorized', message: /expired/ } })
    const scoped = await inPage<{ status: number, body: Record<string, unknown> }>(page, 'fetchAnswer', `${api.http}/api/v1/sessions?token=${await tokenFrom(api, { session_id: id })}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'simple', ...start }) })
    t.match(scoped, { status: 403, body: { code: 'forbidden' } })
    await fetch(`${api.http}/api/v1/sessions/${id}/stop?token=${await tokenFrom(api)}`, { method: 'POST' })
  })

  t.test('WebSocket: the token as the subprotocol opens it; a bad one fails the connection before any frame', async (t) => {
    const page = await openPage(t)
    const url = `${api.ws}/api/v1/simple`
    const ok = await inPage<SocketResult>(page, 'webSocketStream', url, ['token', await tokenFrom(api, { mode: 'simple' })], start, pcmPath)
    t.ok(ok.opened, 'opened')
    t.equal(ok.protocol, 'token', 'the server answered with the token subprotocol (a browser refuses a handshake that names none)')
    t.equal(ok.code, 1000, 'closed normally after the stop')
    assertSimpleCoversAudio(t, ok.events, fixture)
    const query = await inPage<SocketResult>(page, 'webSocketStream', `${url}?token=${await tokenFrom(api)}`, [], start, pcmPath)
    t.ok(query.opened && query.events.at(-1)?.type === 'end', 'a token in the query works too')
    for (const [what, token] of [
      ['expired', craftToken({ expiresAt: Math.floor(Date.now() / 1000) - 1 })],
      ['forged', craftToken({}, 'some-other-secret-0123456789abcdef!')],
      ['for the other mode', await tokenFrom(api, { mode: 'segmented' })]
    ] as const) {
      const failed = await inPage<SocketResult>(page, 'webSocketStream', url, ['token', token], start, pcmPath)
      t.same(failed, { opened: false, protocol: null, code: 1006, events: [] }, `${what}: a failed connection, no frame`)
    }
    const none = await inPage<SocketResult>(page, 'webSocketStream', url, [], start, pcmPath)
    t.same(none, { opened: false, protocol: null, code: 1006, events: [] }, 'no token: a failed connection')
  })
}
