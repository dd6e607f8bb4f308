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
  // SSE responses are a stream of StreamEvents: x-itemSchema (OpenAPI 3.2's itemSchema) says
  // so, and schema too, for generators that type each event from it (hey-api).
  for (const id of ['streamSegmented', 'streamSegmentedPut', 'streamSimple', 'streamSimplePut', 'streamSessionEvents']) {
    const ok = (byId.get(id)?.operation.responses as Record<string, Json> | undefined)?.['200']
    const sse = (ok?.content as Json | undefined)?.['text/event-stream'] as Json | undefined
    t.same(sse?.schema, { $ref: '#/components/schemas/StreamEvent' }, `${id}: 200 is text/event-stream of StreamEvent`)
    t.same(sse?.['x-itemSchema'], { $ref: '#/components/schemas/StreamEvent' }, `${id}: each event is a StreamEvent (x-itemSchema)`)
    t.match(ok?.description, /x-itemSchema/, `${id}: the response documents the extension`)
  }
  for (const mode of ['Segmented', 'Simple']) {
    const body = byId.get(`stream${mode}`)?.operation.requestBody as { content: Record<string, Json> } | undefined
    for (const type of ['application/octet-stream', 'audio/wav']) t.same(body?.content[type]?.schema, { type: 'string', format: 'binary' }, `stream${mode}: ${type} is binary`)
  }
  const union = schemas.StreamEvent?.anyOf as Json[] | undefined
  t.same(union?.map((s) => s.$ref), ['StartedEvent', 'SegmentEvent', 'DataEvent', 'ActiveEvent', 'InactiveEvent', 'AckEvent', 'FinalizedEvent', 'ErrorEvent', 'ShutdownEvent', 'EndEvent'].map((n) => `#/components/schemas/${n}`), 'StreamEvent is the union of the ten events')
  const audio = byId.get('appendSessionAudio')?.operation.requestBody as Json | undefined
  t.same((audio?.content as Json | undefined)?.['application/octet-stream'], { schema: { type: 'string', format: 'binary' } }, 'audio chunks are binary bodies')
})

t.test('servers, enums, examples, error responses and security', async (t) => {
  t.same(document.servers, [{ url: '/', description: 'The server that serves this document' }], 'relative: whatever host and port serves it')
  t.same(schemas.Mode, { type: 'string', enum: ['segmented', 'simple'] }, 'a union of literals is an enum')
  t.same(schemas.Encoding?.enum, ['pcm', 'mulaw', 'alaw'])
  t.notMatch(committed, /PairedErrorResponse/, 'the error body has one name')
  t.same(Object.keys((document.components as { securitySchemes: Json }).securitySchemes).sort(), ['apiKey', 'token'])
  for (const { path, method, operation } of operations) {
    const name = `${method.toUpperCase()} ${path}`
    t.ok(Array.isArray(operation.security) && operation.security.length > 0, `${name}: security`)
    const responses = operation.responses as Record<string, Json>
    t.notOk(Object.keys(responses).some((s) => /x/i.test(s)), `${name}: no status ranges (4XX)`)
    for (const status of ['401', '403', '429', '500']) t.ok(responses[status], `${name}: ${status}`)
    const bodies = [...Object.entries((operation.requestBody as { content?: Record<string, Json> } | undefined)?.content ?? {}), ...Object.values(responses).flatMap((r) => Object.entries((r.content ?? {}) as Record<string, Json>))]
    for (const [type, media] of bodies) {
      if ((media.schema as Json | undefined)?.format === 'binary') continue // a file picker in Swagger UI
      t.not(media.example, undefined, `${name}: ${type} has an example`)
    }
  }
  const create = paths['/api/v1/sessions']?.post?.requestBody as { content: Record<string, Json> }
  t.same(create.content['application/json']?.example, { mode: 'segmented', format: { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }, interim_results: true })
})

t.test('the examples are what the server answers with: Try it out works unedited', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const create = paths['/api/v1/sessions']?.post as Json
  const created = await server.app.inject({ method: 'POST', url: '/api/v1/sessions', payload: ((create.requestBody as { content: Record<string, Json> }).content['application/json'] as Json).example as Json })
  t.equal(created.statusCode, 201, 'createSession\'s example body creates a session')
  const token = await server.app.inject({ method: 'POST', url: '/api/v1/tokens', payload: ((paths['/api/v1/tokens']?.post?.requestBody as { content: Record<string, Json> }).content['application/json'] as Json).example as Json })
  t.not(token.statusCode, 400, 'createToken\'s example body is valid')
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
  const asyncapi = await server.app.inject('/api/v1/asyncapi.yaml')
  t.equal(asyncapi.statusCode, 200)
  t.match(asyncapi.headers['content-type'], /yaml/)
  t.equal(asyncapi.body, readFileSync(new URL('../../asyncapi.yaml', import.meta.url), 'utf8'), 'GET /api/v1/asyncapi.yaml is asyncapi.yaml')
  const initializer = await server.app.inject('/docs/json')
  t.match(initializer.body, /\/api\/v1\/asyncapi\.yaml/, 'the docs page links to asyncapi.yaml')
})
