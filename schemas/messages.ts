import { Type, type Static } from '@sinclair/typebox'
import { AudioFormat, audioFormatWithLimit } from './audio-format.ts'

// Client -> server control messages. Field names and defaults follow the Rust original so its
// clients work unchanged; `trace_id` is a W3C traceparent string.

export const TRACEPARENT_PATTERN = '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'

/** What every transport's start carries besides the format: the options of one stream. */
export const StreamOptionFields = {
  interim_results: Type.Optional(Type.Boolean({ default: false, description: 'Send interim segments during speech (segmented mode)' })),
  // null too: the Rust original's client sends "trace_id": null when it has none.
  trace_id: Type.Optional(Type.Union([
    Type.String({ pattern: TRACEPARENT_PATTERN, description: 'a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>' }),
    Type.Null()
  ], { description: 'A W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>) the stream\'s trace joins, or null' }))
}

/** The start of a stream, whatever the transport: a format and the stream's options. */
export const StreamStart = Type.Object({
  format: AudioFormat,
  ...StreamOptionFields
}, { additionalProperties: false })
export type StreamStart = Static<typeof StreamStart>

export const StartMessage = Type.Composite([
  Type.Object({ request: Type.Literal('start') }),
  StreamStart
], { $id: 'StartMessage', additionalProperties: false })
export type StartMessage = Static<typeof StartMessage>

/** StreamStart with the server's channel limit in it (limits.max_channels). */
export function streamStartWithLimit (maxChannels: number): typeof StreamStart {
  return Type.Object({ ...StreamStart.properties, format: audioFormatWithLimit(maxChannels) }, { additionalProperties: false })
}

export const KeepaliveMessage = Type.Object({
  request: Type.Literal('keepalive')
}, { $id: 'KeepaliveMessage', additionalProperties: false, description: 'Resets the stream\'s idle clock (limits.idle_timeout_seconds) without adding audio' })
export type KeepaliveMessage = Static<typeof KeepaliveMessage>

export const StopMessage = Type.Object({
  request: Type.Literal('stop'),
  disconnect: Type.Optional(Type.Boolean({ default: false, description: 'Close the connection once `end` was sent' }))
}, { $id: 'StopMessage', additionalProperties: false })
export type StopMessage = Static<typeof StopMessage>

export const Mode = Type.Union([Type.Literal('segmented'), Type.Literal('simple')], { $id: 'Mode' })
export type Mode = Static<typeof Mode>

// The three ways into the session core; the one word for each across server, CLI, metrics and docs.
export const Transport = Type.Union([
  Type.Literal('websocket', { description: 'WebSocket: /api/v1/{segmented,simple}' }),
  Type.Literal('http', { description: 'HTTP streaming upload answered with Server-Sent Events: POST /api/v1/{segmented,simple}' }),
  Type.Literal('paired', { description: 'Paired session: POST /api/v1/sessions, audio chunks by seq, events by EventSource' })
], { $id: 'Transport' })
export type Transport = Static<typeof Transport>
