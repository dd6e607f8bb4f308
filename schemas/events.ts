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
  errors: Type.Integer({ description: 'Error events sent during the stream' })
}, { $id: 'EndEvent', description: 'Every result of the stream was sent' })
export type EndEvent = Static<typeof EndEvent>

export const StreamEvent = Type.Union([SegmentEvent, DataEvent, ActiveEvent, InactiveEvent, ErrorEvent, EndEvent], { $id: 'StreamEvent' })
export type StreamEvent = SegmentEvent | DataEvent | ActiveEvent | InactiveEvent | ErrorEvent | EndEvent
