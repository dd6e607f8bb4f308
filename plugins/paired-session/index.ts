import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { ApiError, ErrorResponse } from '../../schemas/error-codes.ts'
import { Mode } from '../../schemas/messages.ts'
import {
  PairedAudioAck,
  PairedAudioQuery,
  PairedEventsQuery,
  PairedSessionCreated,
  PairedSessionParams,
  PairedFinalizeAck,
  PairedStopAck
} from '../../schemas/paired-session.ts'
import { SessionRegistry } from '../../src/core/session-registry.ts'
import type { Stream, StreamSink } from '../../src/core/stream.ts'
import { checkScope, keyIdOf } from '../auth/index.ts'
import { openEventStream, type EventStream } from '../event-stream.ts'
import { PairedSessions, parseLastEventId, type EventReader } from './paired-session.ts'

export const PAIRED_PREFIX = '/api/v1/sessions'

// The paired-session transport: for browsers (fetch + EventSource) and for clients that cannot
// stream a request body or sit behind proxies that break WebSockets.
//
//   POST /api/v1/sessions                 start message + "mode" -> 201 {id, events_url, audio_url, stop_url, expires_in}
//   GET  /api/v1/sessions/{id}/events     SSE; every event has an id; Last-Event-ID resumes
//   POST /api/v1/sessions/{id}/audio?seq=N   raw PCM chunk -> 200 applied / 202 held for a gap
//   POST /api/v1/sessions/{id}/stop       -> 202; final results, then `end`, on the events stream
//
// Everything here is encapsulated (no fastify-plugin): the body parsers apply to these routes
// only. CORS for these routes (and the HTTP upload) is plugins/auth/cors.ts, at the root, so it
// answers before authentication does. With auth on, every route needs a key or a token; a
// token scoped to a session (session_id) may use that session's routes only.
export default async function pairedSessionTransport (app: FastifyInstance): Promise<void> {
  await app.register(routes, { prefix: PAIRED_PREFIX })
}

const ERROR_RESPONSES = { '4xx': ErrorResponse, '5xx': ErrorResponse }

const mediaType = (header: string | undefined): string | undefined => header?.split(';')[0]?.trim().toLowerCase()

function lastHeader (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.at(-1) : value
}

// Refused before the body is read, naming what is accepted.
function requireMediaType (accepted: string[], what: string) {
  return async (request: FastifyRequest): Promise<void> => {
    const type = mediaType(request.headers['content-type'])
    if (type !== undefined && !accepted.includes(type)) {
      throw new ApiError('unsupported_media_type', `Send ${what} with Content-Type: ${accepted.join(' or ')}${accepted.includes('application/octet-stream') ? ' (or no Content-Type)' : ''}, not ${type}`, { field: 'content-type' })
    }
  }
}

async function routes (app: FastifyInstance): Promise<void> {
  const streamer = app.streamer
  const config = streamer.config.paired
  const maxFrameBytes = streamer.config.limits.max_frame_bytes
  const maxOutboundBytes = streamer.config.limits.max_outbound_bytes
  // Each session's mode, for tokens scoped to a mode; forgotten with the session.
  const modes = new Map<string, Mode>()
  const sessions = new PairedSessions({ limits: config, onClose: (session) => { modes.delete(session.id) } })
  // In a cluster (cluster.redis_url) every route body goes to clustered-sessions.ts instead.
  const clustered = app.cluster
  app.addHook('onRequest', async (request) => {
    const id = (request.params as { id?: unknown } | undefined)?.id
    if (typeof id !== 'string') return
    // In a cluster the session may have been created anywhere: its mode is read from Redis, and
    // only for a token scoped to a mode (the one case that needs it).
    const auth = request.auth
    const mode = clustered !== undefined && auth.kind === 'token' && auth.token.mode !== undefined ? await clustered.modeOf(id) : modes.get(id)
    checkScope(auth, { sessionId: id, mode })
  })
  // The create body: the start message's fields (with this server's channel limit) plus the mode.
  const createBody = Type.Composite([
    Type.Object({
      request: Type.Optional(Type.Literal('start', { description: 'Optional, so a WebSocket start message can be sent as it is' })),
      mode: Mode
    }),
    streamer.startParser.schema
  ], { $id: 'PairedSessionCreate', additionalProperties: false, description: 'A start message plus the mode' })

  // JSON may come as text/plain: a page can send it that way to skip the CORS preflight.
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'))
  // Audio chunks: raw bytes, buffered up to one frame's limit. `*` also catches a body with no
  // Content-Type, which is what fetch sends for a Uint8Array body: the request stays a CORS
  // "simple request", so a browser does not send a preflight before every chunk.
  const parseRaw = (_request: FastifyRequest, body: Buffer, done: (error: Error | null, body?: Buffer) => void): void => { done(null, body) }
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: maxFrameBytes }, parseRaw)
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxFrameBytes }, parseRaw)

  app.post<{ Body: { mode: Mode, request?: 'start' } & Parameters<typeof streamer.startParser.fromValidated>[0] }>('/', {
    schema: { body: createBody, response: { 201: PairedSessionCreated, ...ERROR_RESPONSES } },
    config: { auth: 'stream' },
    onRequest: requireMediaType(['application/json', 'text/plain'], 'the start request as JSON')
  }, async (request, reply) => {
    const { mode, request: _request, ...fields } = request.body
    // The mode is in the body: a token scoped to the other one (or to a session) stops here.
    checkScope(request.auth, { mode })
    const start = streamer.startParser.fromValidated(fields)
    const key = keyIdOf(request.auth)
    streamer.admit(request.ip, key)
    const id = SessionRegistry.newId()
    if (clustered !== undefined) {
      await clustered.create(request, mode, fields, key, id)
      const base = `${PAIRED_PREFIX}/${id}`
      return reply.code(201).send({ id, events_url: `${base}/events`, audio_url: `${base}/audio`, stop_url: `${base}/stop`, expires_in: streamer.config.limits.idle_timeout_seconds })
    }
    const paired = sessions.create(id)
    const sink: StreamSink = {
      send: (event) => { paired.record(event) },
      // The server ended the stream. After a limit (idle, duration) it sent every result and
      // `end`: the session lingers for readers as after a stop. At once (shutdown): the error
      // event reached the readers; they are closed and the id forgotten.
      close: () => { if (paired.state !== 'ended') paired.abort() }
    }
    let stream: Stream
    try {
      stream = streamer.openStream({ transport: 'paired', mode, start, id, client: request.ip, key, sink })
    } catch (error) {
      paired.abort() // refused: the id is forgotten at once
      throw error
    }
    paired.attach(stream)
    modes.set(id, mode)
    const base = `${PAIRED_PREFIX}/${id}`
    return reply.code(201).send({
      id,
      events_url: `${base}/events`,
      audio_url: `${base}/audio`,
      stop_url: `${base}/stop`,
      expires_in: streamer.config.limits.idle_timeout_seconds
    })
  })

  app.get<{ Params: PairedSessionParams, Querystring: PairedEventsQuery }>('/:id/events', {
    schema: { params: PairedSessionParams, querystring: PairedEventsQuery, response: ERROR_RESPONSES },
    config: { auth: 'stream' },
    // A HEAD would open (and count as) a reader; EventSource never sends one.
    exposeHeadRoute: false
  }, (request, reply) => {
    if (clustered !== undefined) return clustered.events(request, reply, request.params.id, parseLastEventId(lastHeader(request.headers['last-event-id']), request.query.last_event_id))
    const paired = sessions.get(request.params.id)
    const lastId = parseLastEventId(lastHeader(request.headers['last-event-id']), request.query.last_event_id)
    let stream: EventStream | undefined
    // The replay is written in one burst, before the client can have read any of it: it is
    // bounded by the replay buffer, not by max_outbound_bytes, and what is still unsent of it
    // after the burst is allowed on top of the limit for the live events that follow.
    let replaying = true
    let allowance = maxOutboundBytes
    const handle = paired.openReader(lastId, (): EventReader => {
      const opened = openEventStream(request, reply)
      stream = opened
      return {
        send: (logged) => {
          if (opened.closed) return
          // A reader that does not read is dropped, not buffered without bound: it can come
          // back with Last-Event-ID and get the rest from the replay buffer.
          if (!replaying && opened.bufferedBytes() > allowance) {
            request.log.info({ session: request.params.id }, 'events reader not reading: closed')
            opened.end()
            return
          }
          opened.send(logged.event, logged.id)
        },
        close: () => { opened.end() }
      }
    })
    replaying = false
    allowance += stream?.bufferedBytes() ?? 0
    if (handle === null || stream === undefined) {
      // The reader has everything up to `end`: 204 makes EventSource stop reconnecting.
      return reply.code(204).send()
    }
    void stream.done.then(() => { handle.detach() })
    return reply
  })

  app.post<{ Params: PairedSessionParams, Querystring: PairedAudioQuery, Body: Buffer | undefined }>('/:id/audio', {
    schema: { params: PairedSessionParams, querystring: PairedAudioQuery, response: { 200: PairedAudioAck, 202: PairedAudioAck, ...ERROR_RESPONSES } },
    bodyLimit: maxFrameBytes,
    config: { quietRequestLog: true, auth: 'stream' },
    onRequest: requireMediaType(['application/octet-stream'], 'audio chunks as raw PCM')
  }, async (request, reply) => {
    const seq = request.query.seq
    const bytes = request.body instanceof Uint8Array ? request.body : new Uint8Array(0)
    if (clustered !== undefined) {
      const { status, ack } = await clustered.pushChunk(request.params.id, seq, bytes)
      return reply.code(status).send(ack)
    }
    const paired = sessions.get(request.params.id)
    const ack = paired.pushChunk(seq, bytes)
    // 202: held, not yet applied (an earlier seq is missing).
    return reply.code(ack.buffered?.includes(seq) === true && ack.duplicate !== true ? 202 : 200).send(ack)
  })

  app.post<{ Params: PairedSessionParams }>('/:id/keepalive', {
    schema: { params: PairedSessionParams, response: { 204: Type.Null({ description: 'The idle clock started over' }), ...ERROR_RESPONSES } },
    config: { quietRequestLog: true, auth: 'stream' }
  }, async (request, reply) => {
    if (clustered !== undefined) await clustered.control(request.params.id, 'keepalive')
    else sessions.get(request.params.id).keepalive()
    return reply.code(204).send()
  })

  app.post<{ Params: PairedSessionParams }>('/:id/finalize', {
    schema: { params: PairedSessionParams, response: { 202: PairedFinalizeAck, ...ERROR_RESPONSES } },
    config: { auth: 'stream' }
  }, async (request, reply) => {
    if (clustered !== undefined) return reply.code(202).send({ accepted_seq: await clustered.control(request.params.id, 'finalize') })
    const paired = sessions.get(request.params.id)
    paired.finalize()
    return reply.code(202).send({ accepted_seq: paired.acceptedSeq })
  })

  app.post<{ Params: PairedSessionParams }>('/:id/stop', {
    schema: { params: PairedSessionParams, response: { 202: PairedStopAck, ...ERROR_RESPONSES } },
    config: { auth: 'stream' }
  }, async (request, reply) => {
    const ack = clustered !== undefined ? await clustered.stop(request.params.id) : sessions.get(request.params.id).stop()
    return reply.code(202).send(ack)
  })
}
