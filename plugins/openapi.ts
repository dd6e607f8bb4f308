import { readFileSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { stringify } from 'yaml'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { Type } from '@sinclair/typebox'
import { Encoding } from '../schemas/audio-format.ts'
import { ActiveEvent, DataEvent, EndEvent, ErrorEvent, InactiveEvent, SegmentEvent, StreamEvent } from '../schemas/events.ts'
import { Mode } from '../schemas/messages.ts'
import { ERROR_CODE_LIST, ERRORS, ErrorResponse } from '../schemas/error-codes.ts'
import type { AuthPolicy } from './auth/index.ts'

// The OpenAPI 3.1 description of the HTTP routes, built by @fastify/swagger from the route
// schemas (TypeBox), served at /api/v1/openapi.json and /api/v1/openapi.yaml, with a Swagger UI
// page at /docs. Registered before every route (fastify-plugin: not encapsulated), so its
// onRoute hook sees them all. scripts/generate-openapi.ts writes the same document to
// openapi.yaml.

export const OPENAPI_JSON_URL = '/api/v1/openapi.json'
export const OPENAPI_YAML_URL = '/api/v1/openapi.yaml'
export const ASYNCAPI_YAML_URL = '/api/v1/asyncapi.yaml'
export const DOCS_URL = '/docs'
const ASYNCAPI_FILE = new URL('../asyncapi.yaml', import.meta.url)
// The API's version is the package's.
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

// Always in the document, even where no route names them (the events of an SSE stream). The
// WebSocket's start and stop messages and the bare AudioFormat are asyncapi.yaml's: no HTTP
// route takes them as they are (createSession's format carries the server's channel limit).
export const SHARED_SCHEMAS = [Encoding, Mode, SegmentEvent, DataEvent, ActiveEvent, InactiveEvent, ErrorEvent, EndEvent, StreamEvent]

export const TAGS = [
  { name: 'streaming', description: 'Audio in, events out: the HTTP/2 duplex upload (the WebSocket routes are in asyncapi.yaml)' },
  { name: 'sessions', description: 'Paired sessions: audio by POST, events by Server-Sent Events, for browsers and clients that cannot stream a request body' },
  { name: 'operations', description: 'Health, readiness, metrics and this description' },
  { name: 'auth', description: 'Short-lived tokens that a backend holding an API key hands to a browser page' }
]

// How a client authenticates when the server has API keys (auth.api_keys); a server without
// keys ignores both. The WebSocket's ways (the same two, plus the `token` subprotocol) are in
// asyncapi.yaml.
export const SECURITY_SCHEMES = {
  apiKey: { type: 'http' as const, scheme: 'bearer', description: 'An API key (auth.api_keys), or a token from createToken, as `Authorization: Bearer <key>`' },
  token: { type: 'apiKey' as const, in: 'query', name: 'token', description: 'A token from createToken as `?token=`, for clients that cannot send headers (EventSource, WebSocket in a browser). Never an API key: URLs end up in logs' }
}

// What each route's auth policy (its config.auth, plugins/auth) means as OpenAPI security.
function securityOf (policy: AuthPolicy | undefined): Json[] {
  switch (policy) {
    case 'stream': return [{ apiKey: [] }, { token: [] }]
    // Open to all; a key adds to the answer (the session count of getHealth).
    case 'public': return [{}, { apiKey: [] }]
    default: return [{ apiKey: [] }]
  }
}

type Json = Record<string, unknown>

// Documentation the route definitions cannot carry without changing what the server does: the
// streaming upload's body is the audio stream itself (no body schema can describe a stream that
// is read as it arrives), and the SSE responses are written on the raw socket (a response
// schema there is never used to serialise). Merged into
// each route's own schema for the document only; a key that matches no route fails at start-up.
const Binary = Type.String({ format: 'binary' })
// An SSE response is a sequence of events, not one JSON value. OpenAPI 3.2 says so with
// `itemSchema`; this 3.1 document says it with the extension `x-itemSchema` (the same meaning:
// each event's `data` is one StreamEvent), and keeps `schema` as the event's schema because
// that is what generators with SSE support (hey-api) read as the type of each event.
export const SSE_ITEM_SCHEMA_EXTENSION = 'x-itemSchema'
// One event: an example of the stream as text would not match the event's schema.
const SSE_EXAMPLE = { type: 'segment', channel: 0, start_time: 0.52, end_time: 1.94, is_final: true }
const SseResponse = {
  description: 'Server-Sent Events, a stream (not one JSON value): each event is `event: <type>`, `id: <n>`, `data: <one StreamEvent as JSON>`, ' +
    `a blank line. \`${SSE_ITEM_SCHEMA_EXTENSION}\` (OpenAPI 3.2's \`itemSchema\`) is the schema of each event's data.`,
  content: { 'text/event-stream': { schema: StreamEvent, [SSE_ITEM_SCHEMA_EXTENSION]: StreamEvent, example: SSE_EXAMPLE } }
}
const uploadDocs = (mode: 'segmented' | 'simple'): Json => ({
  operationId: mode === 'segmented' ? 'streamSegmented' : 'streamSimple',
  tags: ['streaming'],
  summary: `Stream audio up, events down (${mode} mode)`,
  description: 'The request body is the audio, streamed: raw little-endian interleaved PCM with the format in the query, or a WAV file ' +
    '(`Content-Type: audio/wav`; the header is the format). The response is `text/event-stream` and starts at once: events flow while the ' +
    'upload goes on (full duplex on HTTP/2, cleartext with prior knowledge or TLS). The end of the body is the stop: the last results, then ' +
    '`end`. `PUT` works the same (curl -T): it is the operation beside this one. A request refused before the stream starts gets a JSON error; after, an `error` event ends the stream.',
  body: { content: { 'application/octet-stream': { schema: Binary }, 'audio/wav': { schema: Binary } } },
  response: {
    200: SseResponse,
    503: { description: 'Starting or shutting down, or at the session limit: retry after Retry-After seconds', content: { 'application/json': { schema: ErrorResponse } } }
  }
})

export const ROUTE_DOCS: Record<string, Json> = {
  'POST /api/v1/segmented': uploadDocs('segmented'),
  'POST /api/v1/simple': uploadDocs('simple'),
  'POST /api/v1/sessions': {
    operationId: 'createSession',
    tags: ['sessions'],
    summary: 'Create a paired session',
    description: 'The body is a start message plus `mode`. The answer names the session\'s URLs: read events from `events_url`, POST audio chunks to ' +
      '`audio_url?seq=0, 1, 2...`, POST `stop_url` to end the stream. Idle sessions expire after `expires_in` seconds.'
  },
  'GET /api/v1/sessions/:id/events': {
    operationId: 'streamSessionEvents',
    tags: ['sessions'],
    summary: 'The session\'s events (Server-Sent Events)',
    description: 'EventSource-compatible. Every event has an id; a reconnect with `Last-Event-ID` (or `?last_event_id=`) resumes without loss. ' +
      'The stream ends after `end`; a reconnect after that gets 204.',
    headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ description: 'Resume after this event id (set by EventSource on a reconnect)' })) }),
    response: { 200: SseResponse, 204: { description: 'The reader already has every event up to `end`', type: 'null' } }
  },
  'POST /api/v1/sessions/:id/audio': {
    operationId: 'appendSessionAudio',
    tags: ['sessions'],
    summary: 'Append one audio chunk',
    description: 'Raw PCM in the session\'s format. Chunks are applied in `seq` order; a repeated seq is ignored (retries are safe). ' +
      '200: applied (or a repeat); 202: held until the missing earlier chunks arrive.',
    body: { content: { 'application/octet-stream': { schema: Binary } } }
  },
  'POST /api/v1/sessions/:id/keepalive': {
    operationId: 'keepSessionAlive',
    tags: ['sessions'],
    summary: 'Keep an idle session open',
    description: 'Starts the session\'s idle clock (limits.idle_timeout_seconds) over without adding audio. An audio chunk, even an empty one, does the same; an open events reader does not.'
  },
  'POST /api/v1/sessions/:id/finalize': {
    operationId: 'finalizeSession',
    tags: ['sessions'],
    summary: 'Finalize the open utterances now',
    description: 'Deepgram\'s Finalize: the open utterance on every channel ends at the audio applied so far; its final, then a `finalized` event, follow on the events stream. The session stays open.'
  },
  'POST /api/v1/sessions/:id/stop': {
    operationId: 'stopSession',
    tags: ['sessions'],
    summary: 'End the stream',
    description: 'Open speech is finalised; the last results, then `end`, follow on the events stream.'
  },
  'GET /api/v1/openapi.json': { response: { 200: { description: 'This document', content: { 'application/json': { schema: { type: 'object' } } } } } },
  'GET /api/v1/openapi.yaml': { response: { 200: { description: 'This document', content: { 'application/yaml': { schema: { type: 'string' } } } } } },
  'GET /api/v1/asyncapi.yaml': { response: { 200: { description: 'The AsyncAPI 3.0 description of the WebSocket channels and the SSE streams', content: { 'application/yaml': { schema: { type: 'string' } } } } } },
  'GET /api/v1/health': { tags: ['operations'] },
  'GET /api/v1/ready': { tags: ['operations'] }
}

// The route's own schema wins; the documentation fills what it lacks (per status for responses).
function withDocs (schema: Json, docs: Json | undefined): Json {
  if (docs === undefined) return schema
  const merged: Json = { ...docs, ...schema }
  if (docs.response !== undefined && schema.response !== undefined) merged.response = { ...(docs.response as Json), ...(schema.response as Json) }
  return merged
}

// Every schema with an $id becomes one named component, and each place that embeds it (TypeBox
// composes by embedding) a $ref to it: stable names, no def-0. Done in the document only; the
// route schemas the server validates with are untouched.
class Components {
  readonly #schemas = new Map<string, Json>()

  constructor (shared: unknown[]) {
    for (const schema of shared) this.reference(schema)
  }

  // The schema with every $id'd object in it (itself included) replaced by a $ref.
  reference (node: unknown): unknown {
    if (Array.isArray(node)) return node.map((item) => this.reference(item))
    if (typeof node !== 'object' || node === null) return node
    const object = node as Json
    const id = object.$id
    if (typeof id === 'string') {
      if (!this.#schemas.has(id)) {
        this.#schemas.set(id, {}) // claimed first: a recursive schema refers to itself
        this.#schemas.set(id, this.#copy(object))
      }
      return { $ref: `#/components/schemas/${id}` }
    }
    return this.#copy(object)
  }

  // Parameters (query, path, headers) are listed one by one: the object itself stays inline.
  inline (node: unknown): unknown {
    return typeof node === 'object' && node !== null && !Array.isArray(node) ? this.#copy(node as Json) : node
  }

  #copy (object: Json): Json {
    const out: Json = {}
    for (const [key, value] of Object.entries(object)) if (key !== '$id') out[key] = this.reference(value)
    return asEnum(out)
  }

  all (): Record<string, Json> {
    return Object.fromEntries([...this.#schemas.entries()].sort(([a], [b]) => a.localeCompare(b)))
  }
}

// The document as YAML: the committed openapi.yaml and the served one are this same text.
export function renderOpenApiYaml (document: unknown): string {
  return '# Generated from the route schemas by @fastify/swagger (scripts/generate-openapi.ts): do not edit by hand (npm run openapi).\n' +
    stringify(document, { lineWidth: 0, aliasDuplicateObjects: false })
}

async function openapi (app: FastifyInstance): Promise<void> {
  // Rebuilt whenever the document is (swagger() caches its result).
  let components = new Components(SHARED_SCHEMAS)

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'streamer HTTP API',
        version: VERSION,
        description: 'Audio streams in, observations stream out. The streaming routes answer with `text/event-stream`: each event is ' +
          '`event: <type>`, `id: <n>`, `data: <a StreamEvent as JSON>`. The WebSocket routes and the SSE message flows are described in asyncapi.yaml.\n\n' +
          'Authentication is off unless the server is given API keys (auth.api_keys). Then every route needs `Authorization: Bearer <key>`, except ' +
          'health and readiness; the streaming and paired-session routes also take a short-lived token from createToken, as `?token=` or as the bearer. ' +
          'Missing or bad credentials are refused with 401 `unauthorized`, valid ones outside their scope with 403 `forbidden`, and an address that keeps ' +
          'sending bad ones with 429 `rate_limited` and Retry-After.',
        license: { name: 'MIT', identifier: 'MIT' }
      },
      // Relative: the server that serves this document (Swagger UI's "Try it out" then calls the
      // host and port the page came from, whatever they are).
      servers: [{ url: '/', description: 'The server that serves this document' }],
      tags: TAGS,
      components: { securitySchemes: SECURITY_SCHEMES }
    },
    // OpenAPI 3.1 is JSON Schema 2020-12: `const` stays `const`.
    convertConstToEnum: false,
    transform: ({ schema: ownSchema, url, route }) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method]
      // A prefixed plugin's '/' route is '/api/v1/sessions/' here; clients use the name without the slash.
      const path = url.length > 1 ? url.replace(/\/$/, '') : url
      const docs = methods.map((method) => ROUTE_DOCS[`${method} ${path}`]).find((d) => d !== undefined)
      // Routes with neither a schema nor documentation (the docs page's assets) are left out.
      if ((ownSchema === undefined && docs === undefined) || url.startsWith(DOCS_URL)) return { schema: { hide: true } as unknown as typeof ownSchema, url }
      const schema = withDocs((ownSchema ?? {}) as Json, docs)
      const transformed: Json = {}
      for (const [key, value] of Object.entries(schema)) {
        const plain: unknown = JSON.parse(JSON.stringify(value ?? null)) // TypeBox's Symbol keys dropped
        if (key === 'body') transformed.body = components.reference(plain)
        else if (['querystring', 'params', 'headers'].includes(key)) transformed[key] = components.inline(plain)
        else if (key === 'response') transformed.response = referenceResponses(plain as Json, components)
        else transformed[key] = value
      }
      transformed.security = securityOf(route.config?.auth)
      return { schema: transformed as unknown as typeof ownSchema, url: path }
    },
    transformObject: (documentObject) => {
      // Only the openapi (not swagger 2) form is configured above.
      const document = ('openapiObject' in documentObject ? documentObject.openapiObject : documentObject.swaggerObject) as Json
      const schemas = components.all()
      components = new Components(SHARED_SCHEMAS)
      // A route answering POST and PUT alike is two operations: an operationId must be unique.
      const paths = document.paths as Record<string, Record<string, Json>>
      for (const operations of Object.values(paths)) {
        if (operations.put !== undefined && operations.post !== undefined && operations.put.operationId === operations.post.operationId) {
          operations.put = { ...operations.put, operationId: `${String(operations.post.operationId)}Put`, summary: `${String(operations.post.summary)}, by PUT (curl -T)` }
        }
      }
      for (const [path, operations] of Object.entries(paths)) {
        for (const [method, operation] of Object.entries(operations)) completeOperation(path, method, operation)
      }
      // Paths in name order: the document does not change with the order plugins register in.
      const sorted = Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b)))
      return { ...document, paths: sorted, components: { ...(document.components as Json | undefined), schemas } }
    }
  })

  // Documentation for a route that does not exist is a mistake, not a silent no-op.
  const documented = new Set(Object.keys(ROUTE_DOCS))
  app.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) documented.delete(`${method} ${route.url}`)
  })
  app.addHook('onReady', async () => {
    if (documented.size > 0) throw new Error(`plugins/openapi.ts documents routes that do not exist: ${[...documented].join(', ')}`)
  })

  // The docs page (only: not the served or committed document) links to the try-it page at /.
  await app.register(swaggerUi, {
    routePrefix: DOCS_URL,
    uiConfig: { deepLinking: true },
    transformSpecification: (document) => ({ ...document, info: { ...document.info, description: `${String(document.info?.description ?? '')}\n\n**[Try it in the browser](/)**: stream your microphone or a file and see what the server hears. **[asyncapi.yaml](${ASYNCAPI_YAML_URL})**: the WebSocket channels and the SSE streams (AsyncAPI 3.0).` } })
  })

  app.get(OPENAPI_JSON_URL, { schema: { operationId: 'getOpenApiJson', summary: 'This document, as JSON', tags: ['operations'] } }, async () => app.swagger())
  app.get(OPENAPI_YAML_URL, { schema: { operationId: 'getOpenApiYaml', summary: 'This document, as YAML', tags: ['operations'] } }, async (_request, reply) => {
    return reply.type('application/yaml').send(renderOpenApiYaml(app.swagger()))
  })
  // The committed file (scripts/generate-asyncapi.ts writes it from the same schemas), read once.
  const asyncapi = readFileSync(ASYNCAPI_FILE, 'utf8')
  app.get(ASYNCAPI_YAML_URL, { schema: { operationId: 'getAsyncApiYaml', summary: 'The AsyncAPI description (WebSocket channels, SSE streams), as YAML', tags: ['operations'] } }, async (_request, reply) => {
    return reply.type('application/yaml').send(asyncapi)
  })
}

// TypeBox writes a union of string literals as anyOf of consts, which viewers render as
// `(string | string | string)`: the document says `enum` instead, each value's description
// kept beside it (x-enumDescriptions, as Redocly and several generators read it).
function asEnum (schema: Json): Json {
  const members = schema.anyOf
  if (!Array.isArray(members) || members.length === 0) return schema
  const literals = members as Json[]
  if (!literals.every((m) => m.type === 'string' && typeof m.const === 'string' && Object.keys(m).every((k) => ['type', 'const', 'description'].includes(k)))) return schema
  const { anyOf: _members, ...rest } = schema
  const out: Json = { ...rest, type: 'string', enum: literals.map((m) => m.const) }
  if (literals.some((m) => typeof m.description === 'string')) out['x-enumDescriptions'] = Object.fromEntries(literals.map((m) => [m.const, m.description ?? '']))
  return out
}

// Examples, by operationId: request bodies and success responses (the error responses get theirs
// from the catalogue). Swagger UI's "Try it out" sends these as they are.
const FORMAT_EXAMPLE = { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }
const EXAMPLES: Record<string, { request?: unknown, responses?: Record<string, unknown> }> = {
  createSession: {
    request: { mode: 'segmented', format: FORMAT_EXAMPLE, interim_results: true },
    responses: { 201: { id: 'q3J0bV9zZXNzaW9uX2lkXzEy', events_url: '/api/v1/sessions/q3J0bV9zZXNzaW9uX2lkXzEy/events', audio_url: '/api/v1/sessions/q3J0bV9zZXNzaW9uX2lkXzEy/audio', stop_url: '/api/v1/sessions/q3J0bV9zZXNzaW9uX2lkXzEy/stop', expires_in: 60 } }
  },
  appendSessionAudio: { responses: { 200: { accepted_seq: 3, bytes: 12800 }, 202: { accepted_seq: 1, bytes: 6400, buffered: [3] } } },
  finalizeSession: { responses: { 202: { accepted_seq: 3 } } },
  stopSession: { responses: { 202: { accepted_seq: 3 } } },
  createToken: { request: { expires_in: 60, mode: 'segmented' }, responses: { 200: { token: 'eyJtIjoic2VnbWVudGVkIn0.c2lnbmF0dXJl', expires_in: 60 } } },
  getHealth: { responses: { 200: { status: 'healthy', sessions: 2 } } },
  getReadiness: { responses: { 200: { ready: true }, 503: { ready: false } } },
  getMetrics: { responses: { 200: '# HELP streamer_sessions_active Open streaming sessions\n# TYPE streamer_sessions_active gauge\nstreamer_sessions_active 2\n' } },
  getOpenApiJson: { responses: { 200: { openapi: '3.1.0', info: { title: 'streamer HTTP API', version: VERSION }, paths: {} } } },
  getOpenApiYaml: { responses: { 200: `openapi: 3.1.0\ninfo:\n  title: streamer HTTP API\n  version: ${VERSION}\n` } },
  getAsyncApiYaml: { responses: { 200: `asyncapi: 3.0.0\ninfo:\n  title: streamer streaming API\n  version: ${VERSION}\n` } }
}

const ERROR_REF = { $ref: '#/components/schemas/ErrorResponse' }
const STREAM_OPERATIONS = new Set(['streamSegmented', 'streamSimple', 'createSession'])

// The error statuses an operation can answer with: authentication on every route (401, 403,
// 429), validation where there is input, the session's own refusals under /sessions/{id}, the
// server's state where a stream starts. Each is listed with its catalogue codes, not as a range
// (4XX), which some generators turn into invalid code.
function errorStatuses (path: string, operation: Json): number[] {
  const statuses = new Set([401, 403, 429, 500])
  const hasBody = operation.requestBody !== undefined
  if (hasBody || (Array.isArray(operation.parameters) && operation.parameters.length > 0)) statuses.add(400)
  if (hasBody) { statuses.add(413); statuses.add(415) }
  if (path.includes('{id}')) { statuses.add(404); statuses.add(409) }
  if (STREAM_OPERATIONS.has(String(operation.operationId))) statuses.add(503)
  return [...statuses].sort((a, b) => a - b)
}

function errorResponse (status: number): Json {
  const codes = ERROR_CODE_LIST.filter((code) => ERRORS[code].status === status)
  const first = codes[0]
  const description = codes.length === 0 ? describeStatus(String(status)) : `${STATUS_CODES[status] ?? status}: ${codes.map((code) => `\`${code}\``).join(', ')} (the error catalogue says what each means)`
  const example = first === undefined ? undefined : { code: first, message: ERRORS[first].meaning }
  return { description, content: { 'application/json': { schema: ERROR_REF, ...(example !== undefined ? { example } : {}) } } }
}

// Fills in what every operation needs in the document: explicit error responses, and examples.
function completeOperation (path: string, _method: string, operation: Json): void {
  const responses = (operation.responses ?? {}) as Record<string, Json>
  for (const range of ['4XX', '5XX', '4xx', '5xx']) delete responses[range]
  for (const status of errorStatuses(path, operation)) {
    const own = responses[String(status)]
    if (own === undefined) responses[String(status)] = errorResponse(status)
    else if (own.content !== undefined) addExample(own, errorResponse(status).content as Json)
  }
  const examples = EXAMPLES[String(operation.operationId).replace(/Put$/, '')]
  const body = operation.requestBody as Json | undefined
  if (examples?.request !== undefined && body?.content !== undefined) {
    for (const media of Object.values(body.content as Record<string, Json>)) media.example = examples.request
  }
  for (const [status, example] of Object.entries(examples?.responses ?? {})) {
    const content = responses[status]?.content as Record<string, Json> | undefined
    for (const media of Object.values(content ?? {})) if (media.example === undefined) media.example = example
  }
  operation.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)))
}

// The catalogue's example, where a route's own error response has none.
function addExample (response: Json, fallback: Json): void {
  const content = response.content as Record<string, Json>
  for (const [type, media] of Object.entries(content)) {
    const example = (fallback[type] as Json | undefined)?.example
    if (media.example === undefined && example !== undefined && (media.schema as Json | undefined)?.$ref === ERROR_REF.$ref) media.example = example
  }
}

// What a status means when the route's schema does not say.
function describeStatus (status: string): string {
  if (/^4xx$/i.test(status)) return 'Refused: the body says why ({code, message, field})'
  if (/^5xx$/i.test(status)) return 'Server fault or not ready ({code, message})'
  return STATUS_CODES[Number(status)] ?? status
}

// Response schemas: each status's schema, or each content type's schema.
function referenceResponses (response: Json, components: Components): Json {
  const out: Json = {}
  for (const [status, value] of Object.entries(response)) {
    const entry = value as Json
    const description = typeof entry.description === 'string' ? entry.description : describeStatus(status)
    if (typeof entry.content === 'object' && entry.content !== null) {
      const content: Json = {}
      for (const [type, media] of Object.entries(entry.content as Json)) {
        const { schema, [SSE_ITEM_SCHEMA_EXTENSION]: itemSchema, ...rest } = media as Json
        content[type] = { ...rest, schema: components.reference(schema), ...(itemSchema !== undefined ? { [SSE_ITEM_SCHEMA_EXTENSION]: components.reference(itemSchema) } : {}) }
      }
      out[status] = { ...entry, description, content }
    } else {
      // swagger takes the response's description from the schema object it is given.
      out[status] = { ...(components.reference(entry) as Json), description }
    }
  }
  return out
}

export default fp(openapi, { name: 'openapi' })
