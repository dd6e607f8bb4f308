import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { WsClient } from '../helpers/ws-client.ts'

// The server as server.ts runs it (background warm-up): it listens at once, is alive, and is
// not ready until its model workers are warm.
t.test('readiness is 503 while the workers warm up, 200 once they are warm, 503 again when closed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'streamer-ready-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const gate = join(dir, 'gate')
  const { config, configDir } = loadConfig({
    file: null,
    env: {},
    overrides: { model: { module: new URL('../fixtures/models/gated-model.ts', import.meta.url).href, threads: 1, options: { gate } } }
  })
  const app = await buildApp({ config, configDir, background: true })
  let closed = false
  t.teardown(async () => { if (!closed) await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const base = `http://127.0.0.1:${port}`

  // The model cannot have loaded: its gate file does not exist yet.
  const warming = await fetch(`${base}/api/v1/ready`)
  t.equal(warming.status, 503)
  t.same(await warming.json(), { ready: false })
  t.equal((await fetch(`${base}/api/v1/health`)).status, 200, 'alive meanwhile')
  const metrics = await fetch(`${base}/metrics`)
  t.equal(metrics.status, 200, 'metrics answer during warm-up')
  const early = await WsClient.connect(`${base.replace('http', 'ws')}/api/v1/segmented`)
  const fixture = loadFixture('hello_16k_mono')
  early.start(fixture.format)
  t.match(await early.waitFor((e) => e.type === 'error'), { type: 'error', code: 'not_ready' }, 'a stream is refused with not_ready')
  early.close()

  writeFileSync(gate, '')
  await app.streamer.warm
  const ready = await fetch(`${base}/api/v1/ready`)
  t.equal(ready.status, 200)
  t.same(await ready.json(), { ready: true })
  const client = await WsClient.connect(`${base.replace('http', 'ws')}/api/v1/segmented`)
  const events = await client.stream(fixture.format, fixture.pcm)
  t.equal(events.at(-1)?.type, 'end', 'streams are served once warm')
  client.close()

  await app.close()
  closed = true
  t.equal(app.streamer.ready, false, 'not ready once shut down')
})

t.test('a warm-up that fails rejects `warm` and leaves the server not ready', async (t) => {
  const { config, configDir } = loadConfig({
    file: null,
    env: {},
    overrides: { model: { module: new URL('../fixtures/models/broken-model.ts', import.meta.url).href, threads: 1, options: {} } }
  })
  const app = await buildApp({ config, configDir, background: true })
  t.teardown(() => app.close())
  await t.rejects(app.streamer.warm, /model/)
  t.equal(app.streamer.ready, false)
  const response = await app.inject({ url: '/api/v1/ready' })
  t.equal(response.statusCode, 503)
})
