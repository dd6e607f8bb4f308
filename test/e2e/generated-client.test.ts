import t from 'tap'
import { join } from 'node:path'
import type { StreamEvent } from '../../schemas/events.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'
import { clientProject, generateHeyApiClient } from '../helpers/generated-client.ts'

// A user's view of openapi.yaml: generate a client with @hey-api/openapi-ts, type-check it
// with our code that uses it, and run that code against a live server for a whole paired
// session. Nothing generated is edited.
const project = clientProject('streamer-client-gen-')
t.teardown(() => { project.remove() })

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

t.test('generate, type-check and run a client from openapi.yaml', async (t) => {
  await generateHeyApiClient(join(project.dir, 'client'))
  project.write('use-client.ts', USE_CLIENT)
  // The client is typed with the DOM's fetch types, beside Node's.
  const tsc = await project.typeCheck(['*.ts', 'client/**/*.ts'], ['es2024', 'dom', 'dom.asynciterable'])
  t.equal(tsc, '', 'the generated client and the code using it type-check')

  const server = await startServer()
  t.teardown(() => server.close())
  const fixture = loadFixture('hello_16k_mono')
  project.write('hello.raw', fixture.pcm)
  const { stdout, stderr } = await project.node(['use-client.ts', server.http, 'hello.raw', JSON.stringify(fixture.format), '3200'])
  t.match(stderr, /refused 400 unsupported_format: format\.channels must be an integer from 1 to 8, got 0/, 'a refusal arrives typed, with its code')
  const events = stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as StreamEvent)
  assertSegmentedMatchesTruth(t, events, fixture)
  t.ok(events.some((e) => e.type === 'segment' && e.is_final === false), 'interim results arrived')
  t.match(stderr, /end: 2 segments/)
})
