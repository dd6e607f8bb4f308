import t from 'tap'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchChromium, withChromium } from '../helpers/chromium.ts'
import { assertFinalsMatchTruth, printedFinals } from '../helpers/example-finals.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { sleep } from '../helpers/waiting.ts'

// examples/browser/ as a user opens it: a static server (its own origin, so every API call is
// cross-origin) serves examples/, headless Chromium opens the page, the test types the
// server's URL, picks a fixture in the file input, presses Stream and reads the finals the
// page printed, which must match the fixture's true speech.
const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url))
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.wav': 'audio/wav', '.md': 'text/markdown' }

await withChromium(t, async () => {
  const api = await startServer()
  t.teardown(() => api.close())
  const pages = http.createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://page').pathname
    const file = normalize(join(EXAMPLES, path.endsWith('/') ? `${path}index.html` : path))
    if (!file.startsWith(EXAMPLES)) { response.writeHead(403).end(); return }
    let body: Buffer
    try {
      body = readFileSync(file)
    } catch {
      response.writeHead(404).end()
      return
    }
    response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body)
  })
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { pages.closeAllConnections(); pages.close(() => resolve()) }))
  const pageUrl = `http://127.0.0.1:${(pages.address() as AddressInfo).port}/browser/`
  const browser = await launchChromium(t)

  const streamOnPage = async (t: Parameters<typeof assertFinalsMatchTruth>[0], act: (page: import('playwright-core').Page) => Promise<void>, server: TestServer = api): Promise<{ status: string, finals: string }> => {
    const page = await browser.newPage()
    t.teardown(() => page.close())
    page.on('pageerror', (error) => { t.fail(`error in the page: ${error.message}`) })
    await page.goto(pageUrl)
    await page.fill('#server', server.http)
    await act(page)
    await page.locator('#status').filter({ hasText: /^(end|failed)/ }).waitFor({ timeout: 30000 })
    return { status: await page.textContent('#status') ?? '', finals: await page.textContent('#finals') ?? '' }
  }

  for (const name of ['hello_16k_mono', 'dialogue_44k_stereo', 'weather_48k_f32']) {
    t.test(`${name}, picked in the file input`, async (t) => {
      const fixture = loadFixture(name)
      const { status, finals } = await streamOnPage(t, async (page) => {
        await page.setInputFiles('#file', fixture.path)
        await page.click('#start')
      })
      t.match(status, new RegExp(`^end: .* finals, ${fixture.pcm.length} bytes received$`), `the stream ended with every byte taken (${status})`)
      assertFinalsMatchTruth(t, printedFinals(finals), fixture)
    })
  }

  t.test('the "Stream ../speech.wav" button', async (t) => {
    const { status, finals } = await streamOnPage(t, async (page) => { await page.click('#example') })
    t.match(status, /^end: 2 finals/, status)
    // examples/speech.wav is the same recording as the hello fixture.
    assertFinalsMatchTruth(t, printedFinals(finals), loadFixture('hello_16k_mono'))
  })

  t.test('the server restarts mid-upload: the page stops sending, shows the results for the audio taken and says so', async (t) => {
    const draining = await startServer()
    t.teardown(() => draining.close())
    const fixture = loadFixture('hello_16k_mono')
    const TAKEN_CHUNKS = 5
    const chunkBytes = 1600 * 2 // the page's 100 ms chunks of 16 kHz mono s16
    const seqs: number[] = []
    const { status } = await streamOnPage(t, async (page) => {
      // The restart (what SIGTERM does) begins just before chunk 5 reaches the server.
      await page.route((url) => url.pathname.endsWith('/audio'), async (route) => {
        const seq = Number(new URL(route.request().url()).searchParams.get('seq'))
        seqs.push(seq)
        if (seq === TAKEN_CHUNKS) {
          void draining.app.streamer.drain(10)
          await sleep(200)
        }
        await route.continue()
      })
      await page.setInputFiles('#file', fixture.path)
      await page.click('#start')
    }, draining)
    const taken = TAKEN_CHUNKS * chunkBytes
    t.match(status, new RegExp(`^end: \\d+ finals, ${taken} bytes received of ${fixture.pcm.length}: the server restarted after 0\\.50 s; stream the rest again$`), `the chunks taken are accounted for (${status})`)
    t.same(seqs, [0, 1, 2, 3, 4, 5], 'no chunk is sent after the refused one')
  })
})
