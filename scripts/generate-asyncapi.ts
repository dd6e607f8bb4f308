// Writes asyncapi.yaml (AsyncAPI 3.0): the WebSocket channels and the SSE streams, with the
// message payloads taken from the same TypeBox schemas the server validates and sends with.
// `npm run asyncapi` regenerates it; test/unit/asyncapi.test.ts fails when the committed file
// differs from what this script writes, and validates it with @asyncapi/parser.
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { TSchema } from '@sinclair/typebox'
import { stringify } from 'yaml'
import { AudioFormat, Encoding } from '../schemas/audio-format.ts'
import { ERRORS } from '../schemas/error-codes.ts'
import { AckEvent, ActiveEvent, DataEvent, EndEvent, ErrorEvent, FinalizedEvent, InactiveEvent, SegmentEvent, ShutdownEvent, StartedEvent, StreamEvent } from '../schemas/events.ts'
import { FinalizeMessage, KeepaliveMessage, Mode, PROTOCOL_VERSION, StartMessage, StopMessage } from '../schemas/messages.ts'

export const ASYNCAPI_PATH = fileURLToPath(new URL('../asyncapi.yaml', import.meta.url))

type Json = Record<string, unknown>
const ref = (path: string): Json => ({ $ref: path })

// TypeBox schemas as plain JSON Schema components: a nested schema with an $id becomes a
// $ref to its own component, so every schema has one stable name.
export function schemaComponents (schemas: TSchema[]): Record<string, Json> {
  const components: Record<string, Json> = {}
  const visit = (node: unknown, top: boolean): unknown => {
    if (Array.isArray(node)) return node.map((item) => visit(item, false))
    if (typeof node !== 'object' || node === null) return node
    const object = node as Json
    const id = object.$id
    if (typeof id === 'string' && !top) {
      if (components[id] === undefined) add(object)
      return ref(`#/components/schemas/${id}`)
    }
    const out: Json = {}
    for (const [key, value] of Object.entries(object)) if (key !== '$id') out[key] = visit(value, false)
    return out
  }
  const add = (schema: Json): void => {
    const id = schema.$id as string
    components[id] = {} // claimed first: a schema that refers to itself stays a $ref
    components[id] = visit(schema, true) as Json
  }
  // JSON round trip: TypeBox's Symbol keys (Kind, Hint) are not part of the schema.
  for (const schema of schemas) add(JSON.parse(JSON.stringify(schema)) as Json)
  return Object.fromEntries(Object.entries(components).sort(([a], [b]) => a.localeCompare(b)))
}

const FORMAT_EXAMPLE = { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }

const EVENTS: Array<{ name: string, schema: TSchema, summary: string, example: Json }> = [
  { name: 'started', schema: StartedEvent, summary: 'The start was accepted: always the first event, with the session id and the settings in force', example: { type: 'started', channel: null, session_id: 'q2w9Yf0cR3u7lq1l1uYy8A', protocol_version: PROTOCOL_VERSION, mode: 'segmented', format: { ...FORMAT_EXAMPLE, encoding: 'pcm' }, interim_results: true, acks: false, vad: { threshold: 0.5, min_silence_ms: 500, speech_pad_ms: 30, max_utterance_seconds: 30 }, limits: { idle_timeout_seconds: 15, max_stream_seconds: 14400, max_buffered_seconds: 10 } } },
  { name: 'segment', schema: SegmentEvent, summary: 'A model result for a span of audio (final, or interim when asked for)', example: { type: 'segment', channel: 0, start_time: 0.79, end_time: 3.07, is_final: true, count: 36480 } },
  { name: 'data', schema: DataEvent, summary: 'A model result with no time bounds', example: { type: 'data', channel: 0, count: 16000 } },
  { name: 'active', schema: ActiveEvent, summary: 'Speech started on a channel (segmented mode)', example: { type: 'active', channel: 0, time: 0.79 } },
  { name: 'inactive', schema: InactiveEvent, summary: 'Speech ended on a channel (segmented mode)', example: { type: 'inactive', channel: 0, time: 3.07 } },
  { name: 'error', schema: ErrorEvent, summary: 'A failed inference (the stream goes on) or a refused request (the stream ends)', example: { type: 'error', channel: null, code: 'unsupported_format', message: 'format.sample_rate 4000 is not supported: accepted an integer from 8000 to 192000 Hz' } },
  { name: 'ack', schema: AckEvent, summary: 'Audio taken (with "acks": true): at most every ~100 ms; the last one before `end` carries the total', example: { type: 'ack', channel: null, bytes: 64000, seconds: [2] } },
  { name: 'finalized', schema: FinalizedEvent, summary: 'Answers {"request":"finalize"}: the finals of every utterance open up to here were sent', example: { type: 'finalized', channel: null, seconds: [3.5] } },
  { name: 'shutdown', schema: ShutdownEvent, summary: 'The server is restarting: no more audio is taken; results and `end` follow, then the connection closes (WebSocket 1012)', example: { type: 'shutdown', channel: null, deadline_seconds: 20 } },
  { name: 'end', schema: EndEvent, summary: 'Every result of the stream was sent; what the server took, with its SHA-256', example: { type: 'end', channel: null, seconds_received: [7.52], samples_received: [120400], segments: [2], interim_segments: [9], interim_segments_dropped: [0], bytes_received: 240800, sha256: '3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea', dropped: { truncated_audio: 0, max_duration: 0 }, errors: 0 } }
]

const SSE_FRAMING = 'Each event is one Server-Sent Event: `event: <type>`, `id: <n>` (0, 1, 2... per stream), ' +
  '`data: <the event as JSON>` on one line, then a blank line. Comment lines (`: keep-alive`) keep idle connections open.'

const MODES = {
  segmented: 'Voice activity detection (Silero VAD) splits each channel into utterances; the model runs on each utterance when it ends (final) and, with `interim_results`, every 500 ms of ongoing speech (interim). `active` and `inactive` mark speech start and end.',
  simple: 'Every sample goes through the model, in order, in chunks; no VAD and no active/inactive events. Queued audio is merged into one inference when the model is busy; results come back in audio order.'
} as const

// Authentication, when the server has API keys (auth.api_keys; without them both are ignored).
const AUTH = 'With API keys configured on the server (auth.api_keys), the upgrade needs one: `Authorization: Bearer <key>` from a server, or, from a browser ' +
  '(which cannot set headers on a WebSocket), a short-lived token from `POST /api/v1/tokens` as the subprotocols `new WebSocket(url, [\'token\', token])` ' +
  '(the server answers with the `token` subprotocol) or as `?token=`. Missing or bad credentials refuse the upgrade with HTTP 401, a token scoped to the ' +
  'other mode or to a paired session with 403, an address that keeps sending bad ones with 429: the socket never opens, so a browser sees a failed connection. ' +
  'A token is checked when the socket opens; the connection is not cut when it expires later.'
const SECURITY_SCHEMES = {
  bearer: { type: 'http', scheme: 'bearer', description: 'An API key, or a token from POST /api/v1/tokens, as `Authorization: Bearer <key>`' },
  token: { type: 'httpApiKey', in: 'query', name: 'token', description: 'A token from POST /api/v1/tokens as `?token=` (EventSource and browsers cannot send headers); on a WebSocket also as the subprotocol pair `token`, `<token>`' }
}
const SECURITY = [ref('#/components/securitySchemes/bearer'), ref('#/components/securitySchemes/token')]
// The WebSocket binding: what the upgrade request may carry.
const WS_BINDING = {
  method: 'GET',
  query: { type: 'object', properties: { token: { type: 'string', description: 'A token from POST /api/v1/tokens' } } },
  headers: {
    type: 'object',
    properties: {
      Authorization: { type: 'string', description: '`Bearer <API key or token>`' },
      'Sec-WebSocket-Protocol': { type: 'string', description: '`token, <token>`: what `new WebSocket(url, [\'token\', token])` sends; the server selects `token`' }
    }
  },
  bindingVersion: '0.1.0'
}

export function buildAsyncApi (): Json {
  const eventRefs = Object.fromEntries(EVENTS.map((e) => [e.name, ref(`#/components/messages/${e.name}`)]))
  const channels: Json = {}
  const operations: Json = {}
  const channelEvents = (channel: string): Json[] => EVENTS.map((e) => ref(`#/channels/${channel}/messages/${e.name}`))

  for (const mode of ['segmented', 'simple'] as const) {
    const ws = `ws${mode[0]?.toUpperCase()}${mode.slice(1)}`
    channels[ws] = {
      address: `/api/v1/${mode}`,
      title: `WebSocket, ${mode} mode`,
      description: `${MODES[mode]}\n\nText frames carry control messages (client to server) and events (server to client); binary frames carry audio. ` +
        'Start a stream with a start message, send audio, end it with a stop message; every result for the audio received follows, then `end`. ' +
        'After `end` a new start may begin another stream on the same connection. A start during a stream ends the current one first. ' +
        'Close codes (RFC 6455): 1000 after a stop with `disconnect: true`, 1009 for a frame over the size limit, 1001 when the server shuts down, 1011 on a server fault. ' +
        'A refused control message is answered with an `error` event and the connection stays open.\n\n' + AUTH,
      servers: [ref('#/servers/websocket')],
      messages: { start: ref('#/components/messages/start'), stop: ref('#/components/messages/stop'), keepalive: ref('#/components/messages/keepalive'), finalize: ref('#/components/messages/finalize'), audio: ref('#/components/messages/audio'), ...eventRefs },
      bindings: { ws: WS_BINDING }
    }
    operations[`${ws}ReceiveControl`] = {
      action: 'receive',
      channel: ref(`#/channels/${ws}`),
      title: 'Control messages',
      summary: 'The client starts and stops streams with JSON text frames.',
      messages: [ref(`#/channels/${ws}/messages/start`), ref(`#/channels/${ws}/messages/stop`), ref(`#/channels/${ws}/messages/keepalive`), ref(`#/channels/${ws}/messages/finalize`)]
    }
    operations[`${ws}ReceiveAudio`] = {
      action: 'receive',
      channel: ref(`#/channels/${ws}`),
      title: 'Audio',
      summary: 'The client sends raw PCM as binary frames, after a start message.',
      messages: [ref(`#/channels/${ws}/messages/audio`)]
    }
    operations[`${ws}SendEvents`] = {
      action: 'send',
      channel: ref(`#/channels/${ws}`),
      title: 'Events',
      summary: 'The server sends results and stream events as JSON text frames.',
      messages: channelEvents(ws)
    }

    const upload = `http${mode[0]?.toUpperCase()}${mode.slice(1)}`
    channels[upload] = {
      address: `/api/v1/${mode}`,
      title: `HTTP/2 duplex upload, ${mode} mode`,
      description: `${MODES[mode]}\n\n\`POST\` (or \`PUT\`) with the audio as the streamed request body: raw PCM with the format in query parameters named like the start message's fields ` +
        '(`?sample_rate=16000&channels=1&bit_depth=16&is_float=false&interim_results=true`), or a WAV file with `Content-Type: audio/wav`. ' +
        `The response is \`text/event-stream\` and events flow while the upload goes on (full duplex on HTTP/2: h2c with prior knowledge, or TLS). The end of the body is the stop. ${SSE_FRAMING} ` +
        'A request refused before the stream starts gets a plain HTTP error (see openapi.yaml); with API keys configured it needs `Authorization: Bearer <key or token>` or `?token=`.',
      servers: [ref('#/servers/http')],
      messages: { audio: ref('#/components/messages/audio'), ...eventRefs },
      bindings: { http: { bindingVersion: '0.3.0' } }
    }
    operations[`${upload}ReceiveAudio`] = {
      action: 'receive',
      channel: ref(`#/channels/${upload}`),
      title: 'Audio upload',
      summary: 'The request body: audio, as it is produced.',
      messages: [ref(`#/channels/${upload}/messages/audio`)],
      bindings: { http: { method: 'POST', bindingVersion: '0.3.0' } }
    }
    operations[`${upload}SendEvents`] = {
      action: 'send',
      channel: ref(`#/channels/${upload}`),
      title: 'Events (SSE response)',
      summary: 'The response body: Server-Sent Events.',
      messages: channelEvents(upload)
    }
  }

  const sessionParameters = { id: { description: 'The session id returned by POST /api/v1/sessions (128 random bits, base64url)' } }
  channels.sessionEvents = {
    address: '/api/v1/sessions/{id}/events',
    title: 'Paired session: events',
    description: 'For browsers and clients that cannot stream a request body. Create the session with `POST /api/v1/sessions` (a start message plus `mode`; see openapi.yaml), ' +
      'post audio chunks to its audio URL, read events here with `GET` (EventSource-compatible), and `POST` its stop URL to end it. ' +
      `${SSE_FRAMING} A reconnect with \`Last-Event-ID\` (or \`?last_event_id=\`) resumes without loss; after \`end\` a reconnect gets 204. ` +
      'With API keys configured, an EventSource sends its token as `?token=` (a token scoped to this session with `session_id` is enough); a reconnect after the token expired is refused with 401.',
    servers: [ref('#/servers/http')],
    parameters: sessionParameters,
    messages: eventRefs,
    bindings: { http: { bindingVersion: '0.3.0' } }
  }
  operations.sessionSendEvents = {
    action: 'send',
    channel: ref('#/channels/sessionEvents'),
    title: 'Events (SSE)',
    summary: 'The session\'s events, as Server-Sent Events with ids.',
    messages: channelEvents('sessionEvents'),
    bindings: { http: { method: 'GET', bindingVersion: '0.3.0' } }
  }
  channels.sessionAudio = {
    address: '/api/v1/sessions/{id}/audio',
    title: 'Paired session: audio',
    description: 'One chunk of raw PCM per `POST ...?seq=N` (N = 0, 1, 2...). Chunks are applied in seq order; a repeated seq is ignored, so retries are safe. ' +
      'The answer (200 applied, 202 held for a gap) is described in openapi.yaml.',
    servers: [ref('#/servers/http')],
    parameters: sessionParameters,
    messages: { audio: ref('#/components/messages/audio') },
    bindings: { http: { bindingVersion: '0.3.0' } }
  }
  operations.sessionReceiveAudio = {
    action: 'receive',
    channel: ref('#/channels/sessionAudio'),
    title: 'Audio chunks',
    summary: 'Raw PCM chunks, numbered by the `seq` query parameter.',
    messages: [ref('#/channels/sessionAudio/messages/audio')],
    bindings: { http: { method: 'POST', bindingVersion: '0.3.0' } }
  }

  const messages: Json = {
    start: {
      name: 'start',
      title: 'Start message',
      summary: 'Starts a stream and declares its audio format. `trace_id` (a W3C traceparent) joins the server\'s spans to the client\'s trace.',
      contentType: 'application/json',
      payload: ref('#/components/schemas/StartMessage'),
      examples: [{ name: 's16 mono with interim results', payload: { request: 'start', format: FORMAT_EXAMPLE, interim_results: true } }]
    },
    stop: {
      name: 'stop',
      title: 'Stop message',
      summary: 'Ends the current stream: open speech is finalised, every result for the audio received is sent, then `end`. With `disconnect: true` the connection closes after that.',
      contentType: 'application/json',
      payload: ref('#/components/schemas/StopMessage'),
      examples: [{ name: 'stop and close', payload: { request: 'stop', disconnect: true } }]
    },
    keepalive: {
      name: 'keepalive',
      title: 'Keepalive message',
      summary: 'Starts the idle clock (limits.idle_timeout_seconds) over without adding audio; also keeps a connection with no stream open.',
      contentType: 'application/json',
      payload: ref('#/components/schemas/KeepaliveMessage'),
      examples: [{ name: 'keepalive', payload: { request: 'keepalive' } }]
    },
    finalize: {
      name: 'finalize',
      title: 'Finalize message',
      summary: 'Finalises the open utterance on every channel now; its finals, then a `finalized` event, follow; the stream stays open.',
      contentType: 'application/json',
      payload: ref('#/components/schemas/FinalizeMessage'),
      examples: [{ name: 'finalize', payload: { request: 'finalize' } }]
    },
    audio: {
      name: 'audio',
      title: 'Audio',
      summary: 'Raw little-endian PCM, channels interleaved, in the declared format (any size; a sample split across chunks is reassembled).',
      contentType: 'application/octet-stream',
      payload: { type: 'string', format: 'binary', description: 'Interleaved little-endian samples (u8, s16, s24, s32, f32, f64, or 8-bit mu-law / A-law)' }
    }
  }
  for (const event of EVENTS) {
    messages[event.name] = {
      name: event.name,
      title: `${event.name} event`,
      summary: event.summary,
      contentType: 'application/json',
      payload: ref(`#/components/schemas/${String(event.schema.$id)}`),
      examples: [{ payload: event.example }]
    }
  }
  const errorCodes = Object.entries(ERRORS).map(([code, spec]) => `\`${code}\` (${spec.meaning})`).join(', ')

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'streamer streaming API',
      // The protocol's own version: what `started.protocol_version` says.
      version: PROTOCOL_VERSION,
      description: 'Audio streams in, observations stream out. Three transports feed one session core, so the same audio gives the same events on each: ' +
        'WebSocket, an HTTP/2 duplex upload with a Server-Sent Events response, and paired sessions (audio by POST, events by SSE). ' +
        'Operations are described from the server\'s side: it receives control messages and audio, and sends events.\n\n' +
        'Every event carries `type` and `channel` (null for events about the whole stream). Times are seconds of the stream\'s own audio, not wall time. ' +
        `Error codes are stable snake_case strings: ${errorCodes}.\n\nThe HTTP routes (health, paired-session management) are described in openapi.yaml.`,
      license: { name: 'MIT' }
    },
    defaultContentType: 'application/json',
    servers: {
      websocket: { host: 'localhost:8080', protocol: 'ws', description: 'A local server (`npm start`); `wss` when TLS is configured', security: SECURITY },
      http: { host: 'localhost:8080', protocol: 'http', description: 'The same port: HTTP/1.1 and HTTP/2 (h2c prior knowledge); `https` with TLS', security: SECURITY }
    },
    channels,
    operations,
    components: {
      schemas: schemaComponents([AudioFormat, Encoding, Mode, StartMessage, StopMessage, KeepaliveMessage, FinalizeMessage, StartedEvent, SegmentEvent, DataEvent, ActiveEvent, InactiveEvent, AckEvent, FinalizedEvent, ErrorEvent, ShutdownEvent, EndEvent, StreamEvent]),
      messages,
      securitySchemes: SECURITY_SCHEMES
    }
  }
}

export function renderAsyncApi (): string {
  return '# Generated by scripts/generate-asyncapi.ts from the TypeBox schemas: do not edit by hand (npm run asyncapi).\n' +
    stringify(buildAsyncApi(), { lineWidth: 0, aliasDuplicateObjects: false })
}

if (import.meta.main) {
  writeFileSync(ASYNCAPI_PATH, renderAsyncApi())
  console.log(`wrote ${ASYNCAPI_PATH}`)
}
