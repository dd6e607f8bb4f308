import { execFile } from 'node:child_process'
import { readdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { inflateSync } from 'node:zlib'
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { launchChromium, withChromium } from '../helpers/chromium.ts'
import { loadFixture, type Fixture } from '../helpers/fixtures.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { END_TOLERANCE, START_TOLERANCE } from '../helpers/speech-assertions.ts'

// The try-it page (web/, served at / by plugins/web-page.ts) in a real headless Chromium
// against a real server: the microphone (Chromium's fake device, playing a fixture), a file
// given to the file input, and the paired-session fallback when WebSockets are blocked. What the
// page rendered (the timeline's blocks carry their segment's times) is checked against the
// fixture's true speech regions.
//
// UPDATE_SCREENSHOT=1 also writes the page's screenshot to docs/screenshot.png (the README's).

const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url))
const SCREENSHOT = fileURLToPath(new URL('../../docs/screenshot.png', import.meta.url))
// What the fake microphone plays, looped. Chromium reads this 16 kHz file and captures at its
// own rate (44.1 kHz here), so the page sends 44.1 kHz and the server resamples.
const MIC = loadFixture('hello_16k_mono')

interface RenderedFinal { channel: number, start: number, end: number, count: number, latencyMs: number }

await withChromium(t, run)

async function run (): Promise<void> {
  const api = await startServer()
  t.teardown(() => api.close())

  t.test('the page and its modules are served; the API keeps its routes and its JSON 404', async (t) => {
    const page = await api.app.inject('/')
    t.equal(page.statusCode, 200)
    t.equal(page.headers['content-type'], 'text/html; charset=utf-8')
    t.match(page.headers['content-security-policy'], /default-src 'self'/)
    t.equal(page.headers['cache-control'], 'no-cache', 'revalidated on every use (no build step, no hashed names)')
    const etag = page.headers.etag
    t.match(etag, /^"[\w-]+"$/)
    const again = await api.app.inject({ url: '/', headers: { 'if-none-match': String(etag) } })
    t.equal(again.statusCode, 304, 'an unchanged page costs a 304')
    // Every module and style sheet in web/ is served under /web/, with its type.
    const assets = readdirSync(WEB_DIR).filter((name) => /\.(js|css)$/.test(name))
    t.ok(assets.includes('capture-worklet.js') && assets.includes('app.js'), `web/ has ${assets.join(', ')}`)
    for (const name of assets) {
      const asset = await api.app.inject(`/web/${name}`)
      t.equal(asset.statusCode, 200, `/web/${name}`)
      t.equal(asset.headers['content-type'], name.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8', `${name}: its content type (an AudioWorklet module must be JavaScript)`)
      t.equal(asset.headers['x-content-type-options'], 'nosniff')
    }
    // Nothing else: unknown URLs, the page's own folder and API routes answer as before.
    for (const url of ['/api/v1/nope', '/web/nope.js', '/web/tsconfig.json', '/index.html']) {
      const missing = await api.app.inject(url)
      t.equal(missing.statusCode, 404, url)
      t.match(missing.headers['content-type'], /^application\/json/, `${url}: the API's JSON 404`)
      t.equal(missing.json().code, 'not_found')
    }
    const upgrade = await api.app.inject('/api/v1/segmented')
    t.equal(upgrade.statusCode, 426, 'the WebSocket route still answers a plain GET with upgrade_required')
    t.equal((await api.app.inject('/api/v1/health')).json().status, 'healthy')
    // /docs links to the page; the OpenAPI document itself is unchanged.
    const docs = (await api.app.inject('/docs/json')).json() as { info: { description: string } }
    t.match(docs.info.description, '[Try it in the browser](/)', 'the Swagger UI description links to /')
    const served = (await api.app.inject('/api/v1/openapi.json')).json() as { info: { description: string }, paths: Record<string, unknown> }
    t.notMatch(served.info.description, 'Try it in the browser', 'openapi.json (and openapi.yaml) are not changed')
    t.notOk(Object.keys(served.paths).some((path) => path === '/' || path.startsWith('/web')), 'the page is not an API operation')
  })

  t.test('the page\'s modules type-check (web/tsconfig.json: JSDoc types, DOM library)', async (t) => {
    const tsc = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url))
    const result = await promisify(execFile)(process.execPath, [tsc, '-p', join(WEB_DIR, 'tsconfig.json')]).then(() => '', (error: { stdout?: string }) => error.stdout ?? String(error))
    t.equal(result, '', 'tsc -p web/tsconfig.json')
  })

  const browser = await launchChromium(t, [
    // The microphone: granted without a prompt, a fake device that loops the fixture.
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${MIC.path}`
  ])

  const openPage = async (t: Test, origin: string): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    // An exception in the page is a failure; console errors (a refused WebSocket logs one) are shown.
    page.on('pageerror', (error) => { t.fail(`error in the page: ${error.message}`) })
    page.on('console', (message) => { if (message.type() === 'error') t.comment(`page console: ${message.text()}`) })
    await page.goto(`${origin}/`)
    t.teardown(() => page.close())
    return page
  }

  // The final segments as the page rendered them: its timeline's blocks.
  const renderedFinals = async (page: Page): Promise<RenderedFinal[]> => {
    const blocks = await page.locator('#timeline .block[data-final]').evaluateAll((elements) => elements.map((e) => ['channel', 'start', 'end', 'count', 'latency-ms'].map((name) => e.getAttribute(`data-${name}`))))
    return blocks.map(([channel, start, end, count, latencyMs]) => ({ channel: Number(channel), start: Number(start), end: Number(end), count: Number(count), latencyMs: Number(latencyMs) }))
  }

  const waitClosed = async (page: Page): Promise<string> => {
    await page.locator('#status[data-state="closed"]').waitFor({ timeout: 30000 })
    return await page.locator('#status').textContent() ?? ''
  }

  const streamFile = async (page: Page, fixture: Fixture, transport = 'auto'): Promise<void> => {
    await page.locator(`#transport-${transport}`).check()
    await page.locator('#file').setInputFiles(fixture.path)
    await page.locator('#fast').check()
    await page.locator('#file-start').click()
  }

  const checkEnd = async (t: Test, page: Page, bytes: number | null): Promise<void> => {
    await page.locator('#sha-check[data-check]:not([data-check=""])').waitFor({ timeout: 5000 })
    t.equal(await page.locator('#sha-check').getAttribute('data-check'), 'match', `the page's sha256 check: ${await page.locator('#sha-check').textContent() ?? ''}`)
    if (bytes !== null) t.match(await page.locator('#sha-check').textContent(), `all ${bytes} bytes`, 'every byte of the data chunk, as it is in the file')
    t.equal(await page.locator('#errors li').count(), 0, 'no errors shown')
  }

  let screenshot: Buffer | undefined

  t.test('the microphone: an AudioWorklet at the device rate, over a WebSocket, renders the fixture\'s speech', async (t) => {
    const page = await openPage(t, api.http)
    await page.locator('#mic-start').click()
    await page.locator('#status[data-state="streaming"]').waitFor({ timeout: 10000 })
    t.equal(await page.locator('#status').getAttribute('data-transport'), 'websocket')
    t.match(await page.locator('#stat-format').textContent(), /^(44100|48000) Hz, 16-bit, mono$/, 'the context\'s native rate, 16-bit PCM')
    // Interim results during the first utterance, replaced by its final.
    await page.locator('#interim:not([hidden])').waitFor({ timeout: 10000 })
    t.match(await page.locator('#interim').textContent(), /^ch0 0\.\d+ s to \d\.\d+ s: count \d+ \(interim\)$/, 'an interim result')
    // Both utterances of the file's first loop, live: about 7 s of audio.
    await page.locator('#timeline .block[data-final]').nth((MIC.speech[0]?.length ?? 1) - 1).waitFor({ timeout: 20000 })
    await page.locator('#stop').click()
    t.match(await waitClosed(page), 'Closed: WebSocket closed with code 1000 (Stream finished)')
    t.equal(await page.locator('#interim').isHidden(), true, 'every interim was replaced by its final')
    t.equal(await page.locator('#finals li').count(), await page.locator('#timeline .block[data-final]').count(), 'one result per final')
    // The fake device loops the file: the first loop's finals are the fixture's.
    const firstLoop = (await renderedFinals(page)).filter((f) => f.start < MIC.duration)
    assertFinalsMatch(t, firstLoop, MIC)
    await checkEnd(t, page, null)
    // From the audio at the segment's end being sent to its final: the VAD's 500 ms of silence and more.
    t.ok(firstLoop.every((f) => f.latencyMs >= 400 && f.latencyMs < 5000), `latency per final, ms: ${firstLoop.map((f) => f.latencyMs).join(', ')}`)
    screenshot = await page.screenshot({ fullPage: true })
  })

  t.test('a file given to the file input renders the same finals (as fast as possible)', async (t) => {
    // 16 kHz 16-bit mono; 48 kHz float; 44.1 kHz stereo with different speech per channel.
    for (const name of ['hello_16k_mono', 'weather_48k_f32', 'dialogue_44k_stereo']) {
      const fixture = loadFixture(name)
      const page = await openPage(t, api.http)
      await streamFile(page, fixture)
      t.match(await waitClosed(page), 'Closed: WebSocket closed with code 1000 (Stream finished)', name)
      t.equal(await page.locator('#status').getAttribute('data-transport'), 'websocket')
      assertFinalsMatch(t, await renderedFinals(page), fixture)
      await checkEnd(t, page, fixture.pcm.length)
    }
  })

  t.test('with WebSockets blocked, Auto falls back to a paired session and still renders finals', async (t) => {
    const proxy = await startProxy(t, api)
    const fixture = loadFixture('hello_16k_mono')
    const page = await openPage(t, proxy.origin)
    await streamFile(page, fixture)
    t.match(await waitClosed(page), 'Closed: events stream ended after end')
    t.ok(proxy.refusedUpgrades() >= 1, 'the page tried the WebSocket first, and the proxy refused it')
    t.equal(await page.locator('#status').getAttribute('data-transport'), 'paired')
    t.match(await page.locator('#log').textContent(), 'falling back to a paired session', 'the log says why')
    assertFinalsMatch(t, await renderedFinals(page), fixture)
    await checkEnd(t, page, fixture.pcm.length)

    // Picked by hand, the WebSocket alone fails visibly instead.
    const refused = proxy.refusedUpgrades()
    const other = await openPage(t, proxy.origin)
    await streamFile(other, fixture, 'websocket')
    await other.locator('#status[data-state="failed"]').waitFor({ timeout: 10000 })
    t.equal(proxy.refusedUpgrades(), refused + 1)
    t.match(await other.locator('#errors li').first().textContent(), 'WebSocket could not connect', 'the error is shown')
    t.equal(await other.locator('#mic-start').isEnabled(), true, 'the controls are usable again')

    // A token: the WebSocket subprotocol pair, and ?token= on the paired routes.
    const withToken = await openPage(t, proxy.origin)
    await withToken.locator('#token').fill('tok_abc-123.x')
    await streamFile(withToken, fixture)
    // What the server makes of the token is the auth layer's business; this is what the page sends.
    const eventsWithToken = /^\/api\/v1\/sessions\/[\w-]+\/events\?token=tok_abc-123\.x$/
    for (let waited = 0; !proxy.requests().some((url) => eventsWithToken.test(url)) && waited < 10000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50))
    t.equal(proxy.upgradeProtocols().at(-1), 'token, tok_abc-123.x', 'the WebSocket offered the subprotocols token, <token>')
    t.ok(proxy.requests().some((url) => url.startsWith('/api/v1/sessions?token=tok_abc-123.x')), 'the create has ?token=')
    t.ok(proxy.requests().some((url) => eventsWithToken.test(url)), 'the EventSource has ?token=')
  })

  t.test('a restart: the page shows draining after `shutdown`, then the close with its code', async (t) => {
    const draining = await startServer()
    t.teardown(() => draining.close())
    const fixture = loadFixture('weather_48k_f32')
    const page = await openPage(t, draining.http)
    await page.locator('#file').setInputFiles(fixture.path)
    await page.locator('#file-start').click() // at real time
    await page.locator('#status[data-state="streaming"]').waitFor({ timeout: 10000 })
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const drained = draining.app.streamer.drain(5)
    t.match(await waitClosed(page), 'Closed: WebSocket closed with code 1012 (Server restarting: the stream was drained)')
    await drained
    // The drain of a fast model's stream is over in moments: the log keeps the states it went through.
    const log = await page.locator('#log').textContent() ?? ''
    t.match(log, /Draining: the server is restarting and takes no more audio; the last results and end follow \(it ends open streams within 5 s\).*Stream ended/s, 'draining, then the end')
    // The server took the first part of the file: the page checks the hash of that part.
    await page.locator('#sha-check[data-check]:not([data-check=""])').waitFor({ timeout: 5000 })
    t.equal(await page.locator('#sha-check').getAttribute('data-check'), 'match', await page.locator('#sha-check').textContent() ?? '')
    const seconds = Number((await page.locator('#summary').textContent())?.match(/Seconds received([\d.]+)/)?.[1])
    t.ok(seconds > 1 && seconds < fixture.duration, `the server took ${seconds} s of ${fixture.duration} s`)
  })

  t.test('the screenshot shows the page, not a blank image', async (t) => {
    if (screenshot === undefined) {
      t.fail('no screenshot (the microphone test failed before taking it)')
      return
    }
    const image = decodePng(screenshot)
    t.ok(image.width >= 1000 && image.height >= 600, `${image.width}x${image.height}`)
    const { distinct, dominant } = colourStats(image)
    t.ok(distinct >= 50, `${distinct} distinct colours`)
    t.ok(dominant < 0.9, `the most common colour covers ${(dominant * 100).toFixed(1)}% of the page`)
    if (process.env.UPDATE_SCREENSHOT === '1') {
      writeFileSync(SCREENSHOT, screenshot)
      t.comment(`wrote ${SCREENSHOT}`)
    }
  })
}

// The fixture's true regions, per channel: one final each, within the suite's tolerance, the
// model having seen exactly the utterance (the dummy model's count).
function assertFinalsMatch (t: Test, finals: RenderedFinal[], fixture: Fixture): void {
  fixture.speech.forEach((regions, channel) => {
    const got = finals.filter((f) => f.channel === channel)
    t.equal(got.length, regions.length, `${fixture.name} ch${channel}: one final per utterance (${JSON.stringify(got.map((f) => [f.start, f.end]))})`)
    regions.forEach(([start, end], i) => {
      const final = got[i]
      if (final === undefined) return
      t.ok(Math.abs(final.start - start) <= START_TOLERANCE, `${fixture.name} ch${channel} #${i}: start ${final.start.toFixed(3)} vs ${start}`)
      t.ok(Math.abs(final.end - end) <= END_TOLERANCE, `${fixture.name} ch${channel} #${i}: end ${final.end.toFixed(3)} vs ${end}`)
      t.equal(final.count, Math.round((final.end - final.start) * 16000), 'the model saw the utterance')
    })
  })
}

// A proxy that forwards plain HTTP to the server and refuses every WebSocket upgrade, as some
// corporate proxies do.
async function startProxy (t: Test, api: TestServer): Promise<{ origin: string, refusedUpgrades: () => number, upgradeProtocols: () => string[], requests: () => string[] }> {
  let refused = 0
  const protocols: string[] = []
  const urls: string[] = []
  const proxy = http.createServer((request, response) => {
    urls.push(request.url ?? '')
    const upstream = http.request({ host: '127.0.0.1', port: api.port, method: request.method, path: request.url, headers: request.headers }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(response)
    })
    upstream.on('error', () => response.destroy())
    response.on('close', () => upstream.destroy())
    request.pipe(upstream)
  })
  proxy.on('upgrade', (request, socket) => {
    refused++
    protocols.push(request.headers['sec-websocket-protocol'] ?? '')
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { proxy.closeAllConnections(); proxy.close(() => resolve()) }))
  return { origin: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, refusedUpgrades: () => refused, upgradeProtocols: () => protocols, requests: () => urls }
}

interface Image { width: number, height: number, channels: number, pixels: Uint8Array }

// Just enough PNG to look at a screenshot: 8-bit RGB or RGBA, not interlaced (what Chromium
// writes). The IDAT stream is inflated and each row's filter undone.
function decodePng (png: Buffer): Image {
  if (png.subarray(0, 8).toString('latin1') !== '\x89PNG\r\n\x1a\n') throw new Error('not a PNG')
  let at = 8
  let width = 0
  let height = 0
  let channels = 0
  const idat: Buffer[] = []
  while (at < png.length) {
    const length = png.readUInt32BE(at)
    const type = png.subarray(at + 4, at + 8).toString('latin1')
    const data = png.subarray(at + 8, at + 8 + length)
    if (type === 'IHDR') {
      width = data.readUInt32BE(0)
      height = data.readUInt32BE(4)
      const [depth, colour, , , interlace] = [data[8], data[9], data[10], data[11], data[12]]
      if (depth !== 8 || (colour !== 2 && colour !== 6) || interlace !== 0) throw new Error(`PNG depth ${depth} colour type ${colour} interlace ${interlace}: not handled`)
      channels = colour === 6 ? 4 : 3
    }
    if (type === 'IDAT') idat.push(data)
    at += 12 + length
  }
  const raw = inflateSync(Buffer.concat(idat))
  const stride = width * channels
  const pixels = new Uint8Array(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]
    for (let x = 0; x < stride; x++) {
      const value = raw[y * (stride + 1) + 1 + x] ?? 0
      const left = x >= channels ? pixels[y * stride + x - channels] ?? 0 : 0
      const up = y > 0 ? pixels[(y - 1) * stride + x] ?? 0 : 0
      const upLeft = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] ?? 0 : 0
      let predicted = 0
      if (filter === 1) predicted = left
      else if (filter === 2) predicted = up
      else if (filter === 3) predicted = (left + up) >> 1
      else if (filter === 4) {
        const p = left + up - upLeft
        const [pa, pb, pc] = [Math.abs(p - left), Math.abs(p - up), Math.abs(p - upLeft)]
        predicted = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft
      }
      pixels[y * stride + x] = (value + predicted) & 0xff
    }
  }
  return { width, height, channels, pixels }
}

// How many colours, and what share the most common one covers: a blank or single-colour image
// has one colour covering everything.
function colourStats ({ width, height, channels, pixels }: Image): { distinct: number, dominant: number } {
  const counts = new Map<number, number>()
  for (let i = 0; i < width * height; i++) {
    const at = i * channels
    const colour = ((pixels[at] ?? 0) << 16) | ((pixels[at + 1] ?? 0) << 8) | (pixels[at + 2] ?? 0)
    counts.set(colour, (counts.get(colour) ?? 0) + 1)
  }
  return { distinct: counts.size, dominant: Math.max(...counts.values()) / (width * height) }
}

t.test('with authentication on, the page and its assets stay public while the API asks for a key', async (t) => {
  const secured = await startServer({ auth: { api_keys: ['a-test-key-that-is-long-enough-000'] } })
  t.teardown(() => secured.close())
  for (const path of ['/', '/web/app.js', '/web/style.css']) {
    t.equal((await fetch(`${secured.http}${path}`)).status, 200, `${path} needs no key`)
  }
  const api = await fetch(`${secured.http}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(api.status, 401, 'the API does')
})
