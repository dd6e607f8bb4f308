import { Type, type Static } from '@sinclair/typebox'
import { AudioFormat } from './audio-format.ts'
import { Mode } from './messages.ts'

// Paired sessions: POST /api/v1/sessions creates one; audio chunks are POSTed by `seq` to its
// audio URL, events are read from its events URL (SSE), a POST to its stop URL ends it.
// The create body is checked by the same code as the WebSocket start message
// (src/core/start-request.ts), so both refuse the same input with the same messages; these
// schemas describe the routes (OpenAPI) and serialise the answers.

export const PairedSessionCreate = Type.Object({
  request: Type.Optional(Type.Literal('start', { description: 'Optional, so a WebSocket start message can be sent as it is' })),
  mode: Mode,
  format: AudioFormat,
  interim_results: Type.Optional(Type.Boolean({ default: false })),
  trace_id: Type.Optional(Type.String({ description: 'W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>' }))
}, { $id: 'PairedSessionCreate', description: 'A start message plus the mode' })
export type PairedSessionCreate = Static<typeof PairedSessionCreate>

export const PairedSessionCreated = Type.Object({
  id: Type.String({ description: 'The session id: 128 random bits, base64url. It is the only credential: keep it private' }),
  events_url: Type.String({ description: 'Path of the SSE stream (resolve it against the URL that created the session)' }),
  audio_url: Type.String({ description: 'Path to POST audio chunks to, with ?seq=0, 1, 2...' }),
  stop_url: Type.String({ description: 'Path to POST to end the stream' }),
  expires_in: Type.Number({ description: 'Seconds without audio and without an events reader after which the session is finalised and freed' })
}, { $id: 'PairedSessionCreated' })
export type PairedSessionCreated = Static<typeof PairedSessionCreated>

export const PairedAudioQuery = Type.Object({
  seq: Type.Integer({ minimum: 0, description: 'Chunk number: 0 for the first chunk, then 1, 2...' })
}, { $id: 'PairedAudioQuery' })
export type PairedAudioQuery = Static<typeof PairedAudioQuery>

export const PairedEventsQuery = Type.Object({
  last_event_id: Type.Optional(Type.Integer({ minimum: 0, description: 'Resume after this event id, for clients that cannot set the Last-Event-ID header (the header wins)' }))
}, { $id: 'PairedEventsQuery' })
export type PairedEventsQuery = Static<typeof PairedEventsQuery>

export const PairedAudioAck = Type.Object({
  accepted_seq: Type.Integer({ minimum: -1, description: 'Highest seq such that it and every earlier chunk were applied; -1 before seq 0 arrived' }),
  buffered: Type.Optional(Type.Array(Type.Integer(), { description: 'Chunks held waiting for an earlier seq (absent when none)' })),
  duplicate: Type.Optional(Type.Boolean({ description: 'This seq had been received before; the chunk was ignored' }))
}, { $id: 'PairedAudioAck', description: '200 when the chunk was applied (or was a repeat), 202 when it is held for a gap' })
export type PairedAudioAck = Static<typeof PairedAudioAck>

export const PairedStopAck = Type.Object({
  accepted_seq: Type.Integer({ minimum: -1, description: 'The last chunk applied to the stream' }),
  discarded: Type.Optional(Type.Array(Type.Integer(), { description: 'Chunks that were held behind a gap and dropped by the stop' }))
}, { $id: 'PairedStopAck', description: 'The stop is taken: final results, then `end`, follow on the events stream' })
export type PairedStopAck = Static<typeof PairedStopAck>

export const PairedErrorResponse = Type.Object({
  code: Type.String({ description: 'Stable snake_case code (schemas/error-codes.ts): invalid_message, unsupported_format, not_found, conflict, frame_too_large...' }),
  message: Type.String({ description: 'What was wrong and what is accepted' }),
  field: Type.Optional(Type.String({ description: 'The field (or header, or query parameter) at fault' }))
}, { $id: 'PairedErrorResponse' })
export type PairedErrorResponse = Static<typeof PairedErrorResponse>
