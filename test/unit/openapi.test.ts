import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { generateOpenApi, OPENAPI_PATH } from '../../scripts/generate-openapi.ts'
import { startServer } from '../helpers/server.ts'

type Json = Record<string, unknown>
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

const committed = readFileSync(OPENAPI_PATH, 'utf8')
const generated = await generateOpenApi()
const document = parse(committed) as Json
const paths = document.paths as Record<string, Record<string, Json>>
const schemas = (document.components as { schemas: Record<string, Json> }).schemas
const operations = Object.entries(paths).flatMap(([path, item]) =>
  Object.entries(item).filter(([method]) => HTTP_METHODS.includes(method)).map(([method, operation]) => ({ path, method, operation })))

t.test('openapi.yaml is what the app\'s route schemas generate (npm run openapi)', async (t) => {
  t.equal(committed, generated, 'regenerate with `npm run openapi` and commit the result')
})

t.test('OpenAPI 3.1, every operation named, every schema named', async (t) => {
  t.equal(document.openapi, '3.1.0')
  const ids = operations.map(({ operation }) => operation.operationId)
  for (const { path, method, operation } of operations) {
    t.type(operation.operationId, 'string', `${method.toUpperCase()} ${path} has an operationId`)
    t.ok(Array.isArray(operation.tags) && operation.tags.length > 0, `${method.toUpperCase()} ${path} has a tag`)
  }
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  for (const name of Object.keys(schemas)) t.notMatch(name, /^def-\d+$|^schema-\d+$/, `component ${name} has a stable name`)
  // Every $ref points at a component that exists.
  const refs = [...committed.matchAll(/\$ref: "?#\/components\/schemas\/([^"\s]+)"?/g)].map((m) => m[1] as string)
  t.ok(refs.length > 0, 'components are referenced')
  for (const name of new Set(refs)) t.ok(schemas[name], `$ref ${name} resolves`)
  t.notMatch(committed, /\$id:/, 'no $id left inline')
})

t.test('the streaming routes and the paired-session routes are all described', async (t) => {
  const byId = new Map(operations.map((o) => [o.operation.operationId as string, o]))
  const expected: Array<[string, string, string]> = [
    ['streamSegmented', 'post', '/api/v1/segmented'],
    ['streamSimple', 'post', '/api/v1/simple'],
    ['createSession', 'post', '/api/v1/sessions'],
    ['streamSessionEvents', 'get', '/api/v1/sessions/{id}/events'],
    ['appendSessionAudio', 'post', '/api/v1/sessions/{id}/audio'],
    ['keepSessionAlive', 'post', '/api/v1/sessions/{id}/keepalive'],
    ['finalizeSession', 'post', '/api/v1/sessions/{id}/finalize'],
    ['stopSession', 'post', '/api/v1/sessions/{id}/stop'],
    ['getHealth', 'get', '/api/v1/health']
  ]
  for (const [id, method, path] of expected) {
    const found = byId.get(id)
    t.same(found && [found.method, found.path], [method, path], `${id} is ${method.toUpperCase()} ${path}`)
  }
  // SSE responses carry the event union, so a generator produces a typed event stream.
  for (const id of ['streamSegmented', 'streamSimple', 'streamSessionEvents']) {
    const ok = (byId.get(id)?.operation.responses as Record<string, Json> | undefined)?.['200']
    t.same((ok?.content as Json | undefined)?.['text/event-stream'], { schema: { $ref: '#/components/schemas/StreamEvent' } }, `${id}: 200 is text/event-stream of StreamEvent`)
  }
  const union = schemas.StreamEvent?.anyOf as Json[] | undefined
  t.same(union?.map((s) => s.$ref), ['StartedEvent', 'SegmentEvent', 'DataEvent', 'ActiveEvent', 'InactiveEvent', 'AckEvent', 'FinalizedEvent', 'ErrorEvent', 'ShutdownEvent', 'EndEvent'].map((n) => `#/components/schemas/${n}`), 'StreamEvent is the union of the ten events')
  const audio = byId.get('appendSessionAudio')?.operation.requestBody as Json | undefined
  t.same((audio?.content as Json | undefined)?.['application/octet-stream'], { schema: { type: 'string', format: 'binary' } }, 'audio chunks are binary bodies')
})

t.test('a running server serves the same document, and a docs page', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const yaml = await server.app.inject('/api/v1/openapi.yaml')
  t.equal(yaml.statusCode, 200)
  t.match(yaml.headers['content-type'], /yaml/)
  t.equal(yaml.body, committed, 'GET /api/v1/openapi.yaml is openapi.yaml')
  const json = await server.app.inject('/api/v1/openapi.json')
  t.same(json.json(), document, 'GET /api/v1/openapi.json is the same document')
  const docs = await server.app.inject('/docs/')
  t.equal(docs.statusCode, 200)
  t.match(docs.headers['content-type'], /text\/html/)
  t.match(docs.body, /swagger-ui/i, 'a Swagger UI page')
})
