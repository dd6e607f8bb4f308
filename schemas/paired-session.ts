import { Type, type Static } from '@sinclair/typebox'

// Paired sessions: POST /api/v1/sessions creates one; audio chunks are POSTed by `seq` to its
// audio URL, events are read from its events URL (SSE), a POST to its stop URL ends it.
// The create body is the WebSocket start message plus `mode`, derived from the same schema with
// this server's limits (plugins/paired-session/index.ts), so both refuse the same input with the
// same messages. These schemas validate the routes, describe them (OpenAPI) and serialise answers.

export const PairedSessionCreated = Type.Object({
  id: Type.String({ description: 'The session id: 128 random bits, base64url. It is the only credential: keep it private' }),
  events_url: Type.String({ description: 'Path of the SSE stream (resolve it against the URL that created the session)' }),
  audio_url: Type.String({ description: 'Path to POST audio chunks to, with ?seq=0, 1, 2...' }),
  stop_url: Type.String({ description: 'Path to POST to end the stream' }),
  expires_in: Type.Number({ description: 'Seconds without audio and without an events reader after which the session is finalised and freed' })
}, { $id: 'PairedSessionCreated' })
export type PairedSessionCreated = Static<typeof PairedSessionCreated>

export const PairedSessionParams = Type.Object({
  id: Type.String({ description: 'The session id returned by createSession' })
}, { $id: 'PairedSessionParams' })
export type PairedSessionParams = Static<typeof PairedSessionParams>

export const PairedAudioQuery = Type.Object({
  seq: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Chunk number: 0 for the first chunk, then 1, 2...' })
}, { $id: 'PairedAudioQuery', additionalProperties: false })
export type PairedAudioQuery = Static<typeof PairedAudioQuery>

export const PairedEventsQuery = Type.Object({
  last_event_id: Type.Optional(Type.Integer({ minimum: 0, description: 'Resume after this event id, for clients that cannot set the Last-Event-ID header (the header wins)' }))
}, { $id: 'PairedEventsQuery', additionalProperties: false })
export type PairedEventsQuery = Static<typeof PairedEventsQuery>

export const PairedAudioAck = Type.Object({
  accepted_seq: Type.Integer({ minimum: -1, description: 'Highest seq such that it and every earlier chunk were applied; -1 before seq 0 arrived' }),
  bytes: Type.Integer({ minimum: 0, description: 'Audio bytes applied to the stream so far, in total (what end.bytes_received will count)' }),
  buffered: Type.Optional(Type.Array(Type.Integer(), { description: 'Chunks held waiting for an earlier seq (absent when none)' })),
  duplicate: Type.Optional(Type.Boolean({ description: 'This seq had been received before; the chunk was ignored' }))
}, { $id: 'PairedAudioAck', description: '200 when the chunk was applied (or was a repeat), 202 when it is held for a gap' })
export type PairedAudioAck = Static<typeof PairedAudioAck>

export const PairedStopAck = Type.Object({
  accepted_seq: Type.Integer({ minimum: -1, description: 'The last chunk applied to the stream' }),
  discarded: Type.Optional(Type.Array(Type.Integer(), { description: 'Chunks that were held behind a gap and dropped by the stop' }))
}, { $id: 'PairedStopAck', description: 'The stop is taken: final results, then `end`, follow on the events stream' })
export type PairedStopAck = Static<typeof PairedStopAck>

export const PairedFinalizeAck = Type.Object({
  accepted_seq: Type.Integer({ minimum: -1, description: 'The last chunk applied: the finalize covers the audio up to it' })
}, { $id: 'PairedFinalizeAck', description: 'The finalize is taken: the finals of the open utterances, then `finalized`, follow on the events stream; the session stays open' })
export type PairedFinalizeAck = Static<typeof PairedFinalizeAck>
