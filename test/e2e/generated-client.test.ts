import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { StreamEvent } from '../../schemas/events.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'
import { generateHeyApiClient } from '../helpers/generated-client.ts'

// A user's view of openapi.yaml: generate a client with @hey-api/openapi-ts, type-check it
// with our code that uses it, and run that code against a live server for a whole paired
// session. Nothing generated is edited.
const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'streamer-client-gen-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

// The code a user writes against the generated client: every call and every event typed.
const USE_CLIENT = `import { readFileSync } from 'node:fs'
import { client } from './client/client.gen.ts'
import { appendSessionAudio, createSession, stopSession, streamSessionEvents } from './client/index.ts'
import type { EndEvent, PairedSessionCreate, StreamEvent } from './client/index.ts'

const [baseUrl = '', rawPath = '', formatJson = '{}', chunkText = '3200'] = process.argv.slice(2)
client.setConfig({ baseUrl })

// A refusal is typed too: {code, message, field}.
const refused = await createSession({ body: { mode: 'segmented', format: { channels: 0, sample_rate: 16000, bit_depth: 16, is_float: false } } })
if (refused.error === undefined) throw new Error('a session with 0 channels was accepted')
console.error(\`refused \${refused.response?.status} \${refused.error.code}: \${refused.error.message}\`)

const format = JSON.parse(formatJson) as PairedSessionCreate['format']
const created = await createSession({ body: { mode: 'segmented', format, interim_results: true } })
if (created.data === undefined) throw new Error(\`createSession failed: \${JSON.stringify(created.error)}\`)
const { id } = created.data

const { stream } = await streamSessionEvents({ path: { id }, sseMaxRetryAttempts: 1 })
let end: EndEvent | undefined
const reading = (async () => {
  for await (const event of stream) {
    if (event === undefined) continue // 204: nothing more for this reader
    const typed: StreamEvent = event
    switch (typed.type) {
      case 'segment':
        if (typed.end_time < typed.start_time) throw new Error('a segment ends before it starts')
        break
      case 'end':
        end = typed
        break
    }
    console.log(JSON.stringify(typed))
    if (typed.type === 'end') break
  }
})()

const pcm = readFileSync(rawPath)
const chunk = Number(chunkText)
for (let at = 0, seq = 0; at < pcm.length; at += chunk, seq++) {
  const ack = await appendSessionAudio({ path: { id }, query: { seq }, body: new Blob([pcm.subarray(at, at + chunk)]) })
  if (ack.data === undefined) throw new Error(\`appendSessionAudio failed: \${JSON.stringify(ack.error)}\`)
  if (ack.data.accepted_seq !== seq) throw new Error(\`seq \${seq} was not applied: \${JSON.stringify(ack.data)}\`)
}
const stopped = await stopSession({ path: { id } })
if (stopped.data === undefined) throw new Error(\`stopSession failed: \${JSON.stringify(stopped.error)}\`)
await reading
if (end === undefined) throw new Error('the events ended without an end event')
console.error(\`end: \${end.segments.join(',')} segments\`)
`

// A user's project: ESM, strict, Node's types plus the DOM's fetch types the client uses.
const TSCONFIG = {
  compilerOptions: {
    target: 'es2024',
    lib: ['es2024', 'dom', 'dom.asynciterable'],
    module: 'nodenext',
    moduleResolution: 'nodenext',
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules/@types')],
    strict: true,
    noEmit: true,
    allowImportingTsExtensions: true,
    verbatimModuleSyntax: true,
    erasableSyntaxOnly: true,
    // Our .d.ts dependencies are not under test; every generated .ts file is.
    skipLibCheck: true
  },
  include: ['*.ts', 'client/**/*.ts']
}

t.test('generate, type-check and run a client from openapi.yaml', async (t) => {
  await generateHeyApiClient(join(dir, 'client'))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2))
  writeFileSync(join(dir, 'use-client.ts'), USE_CLIENT)

  const tsc = await run(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(dir, 'tsconfig.json')]).then(() => '', (error: { stdout?: string }) => error.stdout ?? String(error))
  t.equal(tsc, '', 'the generated client and the code using it type-check')

  const server = await startServer()
  t.teardown(() => server.close())
  const fixture = loadFixture('hello_16k_mono')
  const raw = join(dir, 'hello.raw')
  writeFileSync(raw, fixture.pcm)
  const { stdout, stderr } = await run(process.execPath, [join(dir, 'use-client.ts'), server.http, raw, JSON.stringify(fixture.format), '3200'], { cwd: dir, timeout: 60000 })
  t.match(stderr, /refused 400 unsupported_format: format\.channels must be an integer from 1 to 8, got 0/, 'a refusal arrives typed, with its code')
  const events = stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as StreamEvent)
  assertSegmentedMatchesTruth(t, events, fixture)
  t.ok(events.some((e) => e.type === 'segment' && e.is_final === false), 'interim results arrived')
  t.match(stderr, /end: 2 segments/)
})
