import { readFileSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { stringify } from 'yaml'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { Type } from '@sinclair/typebox'
import { AudioFormat, Encoding } from '../schemas/audio-format.ts'
import { ActiveEvent, DataEvent, EndEvent, ErrorEvent, InactiveEvent, SegmentEvent, StreamEvent } from '../schemas/events.ts'
import { Mode, StartMessage, StopMessage } from '../schemas/messages.ts'
import { ErrorResponse } from '../schemas/error-codes.ts'
import type { AuthPolicy } from './auth/index.ts'

// The OpenAPI 3.1 description of the HTTP routes, built by @fastify/swagger from the route
// schemas (TypeBox), served at /api/v1/openapi.json and /api/v1/openapi.yaml, with a Swagger UI
// page at /docs. Registered before every route (fastify-plugin: not encapsulated), so its
// onRoute hook sees them all. scripts/generate-openapi.ts writes the same document to
// openapi.yaml.

export const OPENAPI_JSON_URL = '/api/v1/openapi.json'
export const OPENAPI_YAML_URL = '/api/v1/openapi.yaml'
export const DOCS_URL = '/docs'
// The API's version is the package's.
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

// Always in the document, even where no route names them (the events of an SSE stream).
export const SHARED_SCHEMAS = [AudioFormat, Encoding, Mode, StartMessage, StopMessage, SegmentEvent, DataEvent, ActiveEvent, InactiveEvent, ErrorEvent, EndEvent, StreamEvent]

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
const SseResponse = {
  description: 'Server-Sent Events: each event is `event: <type>`, `id: <n>`, `data: <the event as JSON>`',
  content: { 'text/event-stream': { schema: StreamEvent } }
}
const uploadDocs = (mode: 'segmented' | 'simple'): Json => ({
  operationId: mode === 'segmented' ? 'streamSegmented' : 'streamSimple',
  tags: ['streaming'],
  summary: `Stream audio up, events down (${mode} mode)`,
  description: 'The request body is the audio, streamed: raw little-endian interleaved PCM with the format in the query, or a WAV file ' +
    '(`Content-Type: audio/wav`; the header is the format). The response is `text/event-stream` and starts at once: events flow while the ' +
    'upload goes on (full duplex on HTTP/2, cleartext with prior knowledge or TLS). The end of the body is the stop: the last results, then ' +
    '`end`. `PUT` works the same (curl -T). A request refused before the stream starts gets a JSON error; after, an `error` event ends the stream.',
  body: { content: { 'application/octet-stream': { schema: Binary }, 'audio/wav': { schema: Binary } } },
  response: {
    200: SseResponse,
    '4xx': { description: 'Refused before the stream started: 400 a bad format or query, 413 too large, 415 a content type not accepted', content: { 'application/json': { schema: ErrorResponse } } },
    503: { description: 'Starting or shutting down', content: { 'application/json': { schema: ErrorResponse } } }
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
    return out
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
        license: { name: 'MIT' }
      },
      servers: [{ url: 'http://localhost:8080', description: 'A local server (npm start)' }],
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
      // A route answering POST and PUT alike is one operation: an operationId must be unique.
      const paths = document.paths as Record<string, Record<string, Json>>
      for (const operations of Object.values(paths)) {
        if (operations.put !== undefined && operations.post !== undefined && operations.put.operationId === operations.post.operationId) delete operations.put
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
    transformSpecification: (document) => ({ ...document, info: { ...document.info, description: `${String(document.info?.description ?? '')}\n\n**[Try it in the browser](/)**: stream your microphone or a file and see what the server hears.` } })
  })

  app.get(OPENAPI_JSON_URL, { schema: { operationId: 'getOpenApiJson', summary: 'This document, as JSON', tags: ['operations'] } }, async () => app.swagger())
  app.get(OPENAPI_YAML_URL, { schema: { operationId: 'getOpenApiYaml', summary: 'This document, as YAML', tags: ['operations'] } }, async (_request, reply) => {
    return reply.type('application/yaml').send(renderOpenApiYaml(app.swagger()))
  })
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
        const { schema, ...rest } = media as Json
        content[type] = { ...rest, schema: components.reference(schema) }
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
