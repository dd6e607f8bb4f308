import t from 'tap'
import { clientProject, readmeRecipe, runDriverAgainstServer } from '../helpers/generated-client.ts'

// The README's orval recipe, run as written: generate the client
// from openapi.yaml (the pinned orval, fetch client), type-check it with the recipe's code, and
// run it against a live server for a whole paired session and one streaming upload.
const project = clientProject('streamer-orval-')
t.teardown(() => { project.remove() })

// The test's own driver: calls the recipe's two functions and prints what they return.
const DRIVER = `import { createReadStream, readFileSync } from 'node:fs'
import { Readable } from 'node:stream'
import { pairedSession, streamUpload } from './orval-session.ts'
import { server } from './orval-fetch.ts'

const [baseUrl = '', rawPath = '', wavPath = '', formatJson = '{}'] = process.argv.slice(2)
server.baseUrl = baseUrl
const paired = await pairedSession(JSON.parse(formatJson) as Parameters<typeof pairedSession>[0], readFileSync(rawPath))
// The WAV file as it is read, 8 KiB at a time: a streamed (chunked) request body.
const wav = Readable.toWeb(createReadStream(wavPath, { highWaterMark: 8192 })) as ReadableStream<Uint8Array<ArrayBuffer>>
const upload = await streamUpload(wav)
console.log(JSON.stringify({ paired, upload }))
`

t.test('orval: generate, type-check, run a paired session and an upload', async (t) => {
  project.write('orval.config.mjs', readmeRecipe('orval-config'))
  project.write('orval-fetch.ts', readmeRecipe('orval-fetch'))
  await project.bin('orval', ['--config', 'orval.config.mjs'])
  project.write('sse.ts', readmeRecipe('sse-helper'))
  project.write('orval-session.ts', readmeRecipe('orval-session'))
  project.write('run.ts', DRIVER)
  t.equal(await project.typeCheck(['*.ts', 'orval/**/*.ts']), '', 'the generated client and the recipe type-check')

  await runDriverAgainstServer(t, project)
})
