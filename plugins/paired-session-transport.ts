import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import cors from '@fastify/cors'
import { ApiError } from '../schemas/error-codes.ts'
import type { Mode } from '../schemas/messages.ts'
import {
  PairedAudioAck,
  PairedAudioQuery,
  PairedErrorResponse,
  PairedEventsQuery,
  PairedSessionCreate,
  PairedSessionCreated,
  PairedStopAck
} from '../schemas/paired-session.ts'
import { PairedSessions, parseLastEventId, parseSeq, type EventReader } from '../src/core/paired-session.ts'
import { SessionRegistry } from '../src/core/session-registry.ts'
import { parseStartRequest } from '../src/core/start-request.ts'
import { openEventStream, type EventStream } from './event-stream.ts'

export const PAIRED_PREFIX = '/api/v1/sessions'

// The paired-session transport: for browsers (fetch + EventSource) and for clients that cannot
// stream a request body or sit behind proxies that break WebSockets.
//
//   POST /api/v1/sessions                 start message + "mode" -> 201 {id, events_url, audio_url, stop_url, expires_in}
//   GET  /api/v1/sessions/{id}/events     SSE; every event has an id; Last-Event-ID resumes
//   POST /api/v1/sessions/{id}/audio?seq=N   raw PCM chunk -> 200 applied / 202 held for a gap
//   POST /api/v1/sessions/{id}/stop       -> 202; final results, then `end`, on the events stream
//
// Everything here is encapsulated (no fastify-plugin): the CORS policy, the body parsers and
// the JSON error answers apply to these routes only.
export default async function pairedSessionTransport (app: FastifyInstance): Promise<void> {
  await app.register(routes, { prefix: PAIRED_PREFIX })
}

const noValidation = (): ((data: unknown) => { value: unknown }) => (data) => ({ value: data })

const ERROR_RESPONSES = { '4xx': PairedErrorResponse, '5xx': PairedErrorResponse }

const mediaType = (header: string | undefined): string | undefined => header?.split(';')[0]?.trim().toLowerCase()

function lastHeader (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.at(-1) : value
}

async function routes (app: FastifyInstance): Promise<void> {
  const streamer = app.streamer
  const config = streamer.config.paired
  const maxFrameBytes = streamer.config.limits.max_frame_bytes
  const sessions = new PairedSessions({
    limits: config,
    onClose: (session, reason) => { app.log.info({ session: session.id, reason }, 'paired session closed') }
  })

  // Ids are the only credential, so no cookies: credentials stay off and nothing is exposed.
  // Last-Event-ID is listed because EventSource sets it on a reconnect.
  await app.register(cors, {
    origin: config.cors_origins.includes('*') ? '*' : config.cors_origins,
    methods: ['GET', 'HEAD', 'POST'],
    allowedHeaders: ['Content-Type', 'Last-Event-ID'],
    credentials: false,
    maxAge: 600
  })

  // Audio chunks: raw bytes, buffered up to one frame's limit. `*` also catches a body with no
  // Content-Type, which is what fetch sends for a Uint8Array body: the request stays a CORS
  // "simple request", so a browser does not send a preflight before every chunk.
  const parseRaw = (_request: FastifyRequest, body: Buffer, done: (error: Error | null, body?: Buffer) => void): void => { done(null, body) }
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: maxFrameBytes }, parseRaw)
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxFrameBytes }, parseRaw)

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof ApiError) {
      return reply.code(error.statusCode).send({ code: error.code, message: error.message, ...(error.field !== undefined ? { field: error.field } : {}) })
    }
    switch (error.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.code(413).send({ code: 'frame_too_large', message: `A request body may be at most ${maxFrameBytes} bytes (limits.max_frame_bytes); send audio in smaller chunks` })
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.code(400).send({ code: 'invalid_json', message: `The body must be JSON: ${error.message}` })
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.code(415).send({ code: 'unsupported_media_type', message: 'Unsupported Content-Type' })
    }
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.code(error.statusCode).send({ code: 'invalid_message', message: error.message })
    }
    request.log.error({ err: error }, 'paired session request failed')
    return reply.code(500).send({ code: 'internal', message: 'Internal server error' })
  })

  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send({ code: 'not_found', message: `No route ${request.method} ${request.url.split('?')[0]}` })
  })

  // Shutdown: readers' responses are ended (or the server could not close) and streams aborted.
  app.addHook('preClose', async () => { sessions.abortAll() })

  app.post('/', {
    schema: { body: PairedSessionCreate, response: { 201: PairedSessionCreated, ...ERROR_RESPONSES } },
    // Checked by parseStartRequest, exactly like the WebSocket start message (no type coercion).
    validatorCompiler: noValidation,
    onRequest: async (request) => {
      const type = mediaType(request.headers['content-type'])
      // text/plain too: a page can send JSON that way to skip the CORS preflight.
      if (type !== undefined && type !== 'application/json' && type !== 'text/plain') {
        throw new ApiError('unsupported_media_type', `Send the start request as JSON (Content-Type: application/json), not ${type}`, { statusCode: 415, field: 'Content-Type' })
      }
    }
  }, async (request, reply) => {
    const body = parseJsonBody(request.body)
    const mode = parseMode(body)
    const start = parseStartRequest(body, streamer.config.limits.max_channels)
    streamer.admit()
    const id = SessionRegistry.newId()
    const paired = sessions.create(id)
    const entry = streamer.openSession({
      transport: 'paired',
      mode,
      start,
      id,
      emit: (event) => { paired.record(event) },
      onFault: (error) => { request.log.error({ err: error, session: id }, 'stream fault') }
    })
    paired.attach(entry.session)
    // The core aborted the stream (shutdown): readers are closed, the id forgotten.
    void entry.session.closed.then((state) => { if (state === 'aborted') paired.abort() })
    request.log.info({ session: id, mode, format: start.format }, 'paired session started')
    const base = `${PAIRED_PREFIX}/${id}`
    return reply.code(201).send({
      id,
      events_url: `${base}/events`,
      audio_url: `${base}/audio`,
      stop_url: `${base}/stop`,
      expires_in: config.idle_timeout_ms / 1000
    })
  })

  app.get<{ Params: { id: string }, Querystring: { last_event_id?: string } }>('/:id/events', {
    schema: { querystring: PairedEventsQuery, response: ERROR_RESPONSES },
    validatorCompiler: noValidation,
    // A HEAD would open (and count as) a reader; EventSource never sends one.
    exposeHeadRoute: false
  }, (request, reply) => {
    const paired = sessions.get(request.params.id)
    const lastId = parseLastEventId(lastHeader(request.headers['last-event-id']), request.query.last_event_id)
    let stream: EventStream | undefined
    const handle = paired.openReader(lastId, (): EventReader => {
      const opened = openEventStream(request, reply)
      stream = opened
      return {
        send: (logged) => { opened.send(logged.event, logged.id) },
        close: () => { opened.end() }
      }
    })
    if (handle === null || stream === undefined) {
      // The reader has everything up to `end`: 204 makes EventSource stop reconnecting.
      return reply.code(204).send()
    }
    void stream.done.then(() => { handle.detach() })
    return reply
  })

  app.post<{ Params: { id: string }, Querystring: { seq?: string } }>('/:id/audio', {
    schema: { querystring: PairedAudioQuery, response: { 200: PairedAudioAck, 202: PairedAudioAck, ...ERROR_RESPONSES } },
    validatorCompiler: noValidation,
    // Refused before the body is read.
    onRequest: async (request) => {
      const type = mediaType(request.headers['content-type'])
      if (type !== undefined && type !== 'application/octet-stream') {
        throw new ApiError('unsupported_media_type', `Send audio chunks as raw PCM with Content-Type: application/octet-stream (or no Content-Type), not ${type}`, { statusCode: 415, field: 'Content-Type' })
      }
    }
  }, async (request, reply) => {
    const paired = sessions.get(request.params.id)
    const seq = parseSeq(request.query.seq)
    const bytes = request.body instanceof Uint8Array ? request.body : new Uint8Array(0)
    const ack = paired.pushChunk(seq, bytes)
    // 202: held, not yet applied (an earlier seq is missing).
    return reply.code(ack.buffered?.includes(seq) === true && ack.duplicate !== true ? 202 : 200).send(ack)
  })

  app.post<{ Params: { id: string } }>('/:id/stop', {
    schema: { response: { 202: PairedStopAck, ...ERROR_RESPONSES } },
    validatorCompiler: noValidation
  }, async (request, reply: FastifyReply) => {
    const ack = sessions.get(request.params.id).stop()
    return reply.code(202).send(ack)
  })
}

function parseJsonBody (body: unknown): unknown {
  if (typeof body !== 'string') return body
  try {
    return JSON.parse(body)
  } catch (error) {
    throw new ApiError('invalid_json', `The body must be JSON: ${(error as Error).message}`)
  }
}

function parseMode (body: unknown): Mode {
  const fields = typeof body === 'object' && body !== null ? body as Record<string, unknown> : {}
  if (fields.request !== undefined && fields.request !== 'start') {
    throw new ApiError('invalid_message', `request must be "start" (or left out) when creating a session, got ${JSON.stringify(fields.request)}`, { field: 'request' })
  }
  if (fields.mode !== 'segmented' && fields.mode !== 'simple') {
    throw new ApiError('invalid_message', `mode must be "segmented" or "simple", got ${fields.mode === undefined ? 'nothing' : JSON.stringify(fields.mode)}`, { field: 'mode' })
  }
  return fields.mode
}
