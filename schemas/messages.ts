import { Type, type Static } from '@sinclair/typebox'
import { AudioFormat } from './audio-format.ts'

// Client -> server control messages. Field names and defaults follow the Rust original so its
// clients work unchanged; `trace_id` is a W3C traceparent string.
export const StartMessage = Type.Object({
  request: Type.Literal('start'),
  format: AudioFormat,
  interim_results: Type.Optional(Type.Boolean({ default: false })),
  trace_id: Type.Optional(Type.String({ description: 'W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>' }))
}, { $id: 'StartMessage' })
export type StartMessage = Static<typeof StartMessage>

export const StopMessage = Type.Object({
  request: Type.Literal('stop'),
  disconnect: Type.Optional(Type.Boolean({ default: false }))
}, { $id: 'StopMessage' })
export type StopMessage = Static<typeof StopMessage>

export const ClientMessage = Type.Union([StartMessage, StopMessage], { $id: 'ClientMessage' })
export type ClientMessage = Static<typeof ClientMessage>

export const Mode = Type.Union([Type.Literal('segmented'), Type.Literal('simple')], { $id: 'Mode' })
export type Mode = Static<typeof Mode>
