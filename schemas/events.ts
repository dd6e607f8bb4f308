import { Type, type Static } from '@sinclair/typebox'
import { ErrorCodeSchema } from './error-codes.ts'

// Server -> client events. Every event has `type` and `channel` (null when about the whole
// stream). Times are seconds of the stream's own audio, not wall time.
const Channel = Type.Integer({ minimum: 0, description: 'Zero-based channel index' })
const Seconds = Type.Number({ minimum: 0, description: 'Seconds from the start of the stream, in audio time' })

export const SegmentEvent = Type.Object({
  type: Type.Literal('segment'),
  channel: Channel,
  start_time: Seconds,
  end_time: Seconds,
  is_final: Type.Optional(Type.Boolean({ description: 'Segmented mode only: false for interim results' })),
  count: Type.Optional(Type.Integer({ description: 'Dummy model output: 16 kHz samples the model saw' }))
}, { $id: 'SegmentEvent', additionalProperties: true, description: 'A model result; the model output fields are flattened in' })
export type SegmentEvent = Static<typeof SegmentEvent> & Record<string, unknown>

export const DataEvent = Type.Object({
  type: Type.Literal('data'),
  channel: Type.Union([Channel, Type.Null()])
}, { $id: 'DataEvent', additionalProperties: true, description: 'A model result with no time bounds' })
export type DataEvent = Static<typeof DataEvent> & Record<string, unknown>

export const ActiveEvent = Type.Object({
  type: Type.Literal('active'),
  channel: Channel,
  time: Seconds
}, { $id: 'ActiveEvent', description: 'Speech started (segmented mode)' })
export type ActiveEvent = Static<typeof ActiveEvent>

export const InactiveEvent = Type.Object({
  type: Type.Literal('inactive'),
  channel: Channel,
  time: Seconds
}, { $id: 'InactiveEvent', description: 'Speech ended (segmented mode)' })
export type InactiveEvent = Static<typeof InactiveEvent>

export const ErrorEvent = Type.Object({
  type: Type.Literal('error'),
  channel: Type.Union([Channel, Type.Null()]),
  code: ErrorCodeSchema,
  message: Type.String(),
  start_time: Type.Optional(Seconds),
  end_time: Type.Optional(Seconds),
  is_final: Type.Optional(Type.Boolean())
}, { $id: 'ErrorEvent', description: 'A failed inference (the stream goes on) or a refused request (the stream ends)' })
export type ErrorEvent = Static<typeof ErrorEvent>

export const EndEvent = Type.Object({
  type: Type.Literal('end'),
  channel: Type.Null(),
  seconds_received: Type.Array(Type.Number(), { description: 'Seconds of audio received, per channel' }),
  samples_received: Type.Array(Type.Integer(), { description: 'Samples received at the input rate, per channel' }),
  segments: Type.Array(Type.Integer(), { description: 'Final segments sent, per channel' }),
  interim_segments: Type.Array(Type.Integer(), { description: 'Interim segments sent, per channel' }),
  interim_segments_dropped: Type.Array(Type.Integer(), { description: 'Interim segments not sent because the client left too many events unread (limits.max_outbound_bytes), per channel; 0 in a healthy run' }),
  bytes_received: Type.Integer({ minimum: 0, description: 'Audio bytes the server took, in total' }),
  sha256: Type.String({ description: 'Hex SHA-256 of exactly the audio bytes the server took, in order: compare with what you sent' }),
  dropped: Type.Object({
    truncated_audio: Type.Integer({ minimum: 0, description: 'Bytes taken at the end that were not a whole frame (see the truncated_audio error)' }),
    max_duration: Type.Integer({ minimum: 0, description: 'Bytes sent past limits.max_stream_seconds, not taken' })
  }, { description: 'Audio bytes that did not reach the model, by reason; 0 in a healthy run' }),
  errors: Type.Integer({ description: 'Error events sent during the stream' })
}, { $id: 'EndEvent', description: 'Every result of the stream was sent' })
export type EndEvent = Static<typeof EndEvent>

export const StartedEvent = Type.Object({
  type: Type.Literal('started'),
  channel: Type.Null(),
  session_id: Type.String({ description: 'This stream\'s id (in the server\'s logs and traces; a paired session\'s id)' }),
  protocol_version: Type.String({ description: 'The protocol version the server speaks' }),
  mode: Type.Union([Type.Literal('segmented'), Type.Literal('simple')]),
  format: Type.Object({
    channels: Type.Integer(),
    sample_rate: Type.Integer(),
    bit_depth: Type.Integer(),
    is_float: Type.Boolean(),
    encoding: Type.Union([Type.Literal('pcm'), Type.Literal('mulaw'), Type.Literal('alaw')])
  }, { description: 'The format in force, defaults filled in' }),
  interim_results: Type.Boolean(),
  acks: Type.Boolean(),
  vad: Type.Object({
    threshold: Type.Number(),
    min_silence_ms: Type.Integer(),
    speech_pad_ms: Type.Integer(),
    max_utterance_seconds: Type.Number()
  }, { description: 'The VAD settings in force for this stream (segmented mode)' }),
  limits: Type.Object({
    idle_timeout_seconds: Type.Number(),
    max_stream_seconds: Type.Number(),
    max_buffered_seconds: Type.Number()
  }, { description: 'The limits that apply to this stream' })
}, { $id: 'StartedEvent', description: 'The start was accepted: always the stream\'s first event, with the settings in force' })
export type StartedEvent = Static<typeof StartedEvent>

export const AckEvent = Type.Object({
  type: Type.Literal('ack'),
  channel: Type.Null(),
  bytes: Type.Integer({ minimum: 0, description: 'Audio bytes taken so far, in total: the client may discard its copy up to here' }),
  seconds: Type.Array(Type.Number(), { description: 'Seconds of audio decoded so far, per channel' })
}, { $id: 'AckEvent', description: 'Audio taken (with "acks": true): at most every ~100 ms, monotonic, the last one before `end` carries the total' })
export type AckEvent = Static<typeof AckEvent>

export const FinalizedEvent = Type.Object({
  type: Type.Literal('finalized'),
  channel: Type.Null(),
  seconds: Type.Array(Type.Number(), { description: 'Per channel, the audio time up to which everything was finalised' })
}, { $id: 'FinalizedEvent', description: 'Answers {"request":"finalize"}: every open utterance up to here was finalised and its final sent before this event (also when there was nothing to finalise); the stream goes on' })
export type FinalizedEvent = Static<typeof FinalizedEvent>

export const ShutdownEvent = Type.Object({
  type: Type.Literal('shutdown'),
  channel: Type.Null(),
  deadline_seconds: Type.Number({ minimum: 0, description: 'Seconds until the server closes whatever is still open' })
}, { $id: 'ShutdownEvent', description: 'The server is restarting: no more audio is taken on this stream; its results and `end` follow, then the connection closes (WebSocket 1012). Start a new stream, on another instance, to go on' })
export type ShutdownEvent = Static<typeof ShutdownEvent>

export const StreamEvent = Type.Union([StartedEvent, SegmentEvent, DataEvent, ActiveEvent, InactiveEvent, AckEvent, FinalizedEvent, ErrorEvent, ShutdownEvent, EndEvent], { $id: 'StreamEvent' })
export type StreamEvent = StartedEvent | SegmentEvent | DataEvent | ActiveEvent | InactiveEvent | AckEvent | FinalizedEvent | ErrorEvent | ShutdownEvent | EndEvent
