import t from 'tap'
import { clientProject, readmeRecipe, runDriverAgainstServer } from '../helpers/generated-client.ts'

// The README's openapi-typescript + openapi-fetch recipe, run as written: generate the types
// from openapi.yaml (the pinned openapi-typescript), type-check the recipe's code with them, and
// run it against a live server for a whole paired session and one streaming upload.
const project = clientProject('streamer-openapi-fetch-')
t.teardown(() => { project.remove() })

// The test's own driver: calls the recipe's two functions and prints what they return.
const DRIVER = `import { createReadStream, readFileSync } from 'node:fs'
import { Readable } from 'node:stream'
import { pairedSession, streamUpload } from './openapi-fetch-session.ts'

const [baseUrl = '', rawPath = '', wavPath = '', formatJson = '{}'] = process.argv.slice(2)
const paired = await pairedSession(baseUrl, JSON.parse(formatJson) as Parameters<typeof pairedSession>[1], readFileSync(rawPath))
// The WAV file as it is read, 8 KiB at a time: a streamed (chunked) request body.
const wav = Readable.toWeb(createReadStream(wavPath, { highWaterMark: 8192 })) as ReadableStream<Uint8Array<ArrayBuffer>>
const upload = await streamUpload(baseUrl, wav)
console.log(JSON.stringify({ paired, upload }))
`

t.test('openapi-typescript + openapi-fetch: generate, type-check, run a paired session and an upload', async (t) => {
  project.write('generate-api-types.mjs', readmeRecipe('openapi-typescript-generate'))
  await project.node(['generate-api-types.mjs'])
  project.write('sse.ts', readmeRecipe('sse-helper'))
  project.write('openapi-fetch-session.ts', readmeRecipe('openapi-fetch-session'))
  project.write('run.ts', DRIVER)
  t.equal(await project.typeCheck(['*.ts']), '', 'the generated types and the recipe type-check')

  await runDriverAgainstServer(t, project)
})
