import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { loadFixture } from '../helpers/fixtures.ts'
import { KEY, startAuthServer } from '../helpers/auth-server.ts'
import { generateHeyApiClient } from '../helpers/generated-client.ts'

// openapi.yaml declares how to authenticate, so a generated client sends credentials itself:
// a key as the bearer (a backend), a token in the query (what a page has). The client's `auth`
// callback is asked once per scheme of an operation, so it returns the key for the bearer only:
// a key must never travel in a URL.
const run = promisify(execFile)
const dir = mkdtempSync(join(tmpdir(), 'streamer-auth-client-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

const USE_CLIENT = `import { readFileSync } from 'node:fs'
import { createClient } from './client/client/index.ts'
import { appendSessionAudio, createSession, createToken, getHealth, stopSession, streamSessionEvents } from './client/index.ts'

const [baseUrl = '', key = '', rawPath = '', formatJson = '{}'] = process.argv.slice(2)
const format = JSON.parse(formatJson)
const anonymous = createClient({ baseUrl })
const backend = createClient({ baseUrl, auth: (scheme) => scheme.scheme === 'bearer' ? key : undefined })

const refused = await createSession({ client: anonymous, body: { mode: 'simple', format } })
console.log('anonymous', refused.response.status, refused.error?.code)
console.log('health', JSON.stringify((await getHealth({ client: backend })).data))
const minted = await createToken({ client: backend, body: { mode: 'simple' } })
if (minted.data === undefined) throw new Error(JSON.stringify(minted.error))

// A page's client: only the token, sent in the query.
const page = createClient({ baseUrl, auth: (scheme) => scheme.in === 'query' ? minted.data.token : undefined })
const created = await createSession({ client: page, body: { mode: 'simple', format } })
if (created.data === undefined) throw new Error(JSON.stringify(created.error))
const { id } = created.data
const { stream } = await streamSessionEvents({ client: page, path: { id }, sseMaxRetryAttempts: 1 })
const pcm = readFileSync(rawPath)
for (let at = 0, seq = 0; at < pcm.length; at += 32000, seq++) {
  const ack = await appendSessionAudio({ client: page, path: { id }, query: { seq }, body: new Blob([pcm.subarray(at, at + 32000)]) })
  if (ack.data === undefined) throw new Error(JSON.stringify(ack.error))
}
await stopSession({ client: page, path: { id } })
for await (const event of stream) {
  if (event?.type === 'end') {
    console.log('end', event.bytes_received)
    break
  }
}
// createToken declares the bearer only: the page's client has nothing to send there.
const notForPages = await createToken({ client: page, body: {} })
console.log('a page minting a token', notForPages.response.status, notForPages.error?.code)
`

t.test('a client generated from openapi.yaml sends a key as the bearer and a token in the query', async (t) => {
  await generateHeyApiClient(join(dir, 'client'))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  writeFileSync(join(dir, 'use-client.ts'), USE_CLIENT)
  const server = await startAuthServer()
  t.teardown(() => server.close())
  const fixture = loadFixture('hello_16k_mono')
  const raw = join(dir, 'hello.raw')
  writeFileSync(raw, fixture.pcm)
  const { stdout } = await run(process.execPath, [join(dir, 'use-client.ts'), server.http, KEY, raw, JSON.stringify(fixture.format)], { cwd: dir, timeout: 60000 })
  t.match(stdout, /^anonymous 401 unauthorized$/m, 'no credentials: refused')
  t.match(stdout, /^health \{"status":"healthy","sessions":0\}$/m, 'the key as the bearer')
  t.match(stdout, new RegExp(`^end ${fixture.pcm.length}$`, 'm'), 'a whole session with the token in the query')
  t.match(stdout, /^a page minting a token 401 unauthorized$/m, 'a token is never sent where only a key goes')
})
