import { Type, type Static } from '@sinclair/typebox'
import { AudioFormat, audioFormatWithLimit } from './audio-format.ts'

// Client -> server control messages. Field names and defaults follow the Rust original so its
// clients work unchanged; `trace_id` is a W3C traceparent string.

export const TRACEPARENT_PATTERN = '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'

/** The protocol's version: the Rust original's v0.2 messages plus additive events and fields. */
export const PROTOCOL_VERSION = '0.3'

// Per-stream VAD settings a start may ask for, within bounds the server sets (the cap of
// max_utterance_seconds is the server's own limits.max_utterance_seconds).
export const VAD_BOUNDS = {
  threshold: { minimum: 0.05, maximum: 0.95 },
  min_silence_ms: { minimum: 50, maximum: 10000 },
  speech_pad_ms: { minimum: 0, maximum: 1000 },
  max_utterance_seconds: { minimum: 1 }
} as const

export function vadSettingsSchema (maxUtteranceSeconds: number) {
  return Type.Object({
    threshold: Type.Optional(Type.Number({ ...VAD_BOUNDS.threshold, description: 'Speech probability that starts speech (server default vad.threshold)' })),
    min_silence_ms: Type.Optional(Type.Integer({ ...VAD_BOUNDS.min_silence_ms, description: 'Silence that ends an utterance (server default vad.min_silence_ms)' })),
    speech_pad_ms: Type.Optional(Type.Integer({ ...VAD_BOUNDS.speech_pad_ms, description: 'Audio kept before speech start and after its end (server default vad.speech_pad_ms)' })),
    max_utterance_seconds: Type.Optional(Type.Number({ ...VAD_BOUNDS.max_utterance_seconds, maximum: maxUtteranceSeconds, description: 'A longer utterance is cut at a pause (server default and cap limits.max_utterance_seconds)' }))
  }, { additionalProperties: false, description: 'This stream\'s VAD settings, within the server\'s bounds; the `started` event echoes those in force' })
}
export const VadSettings = vadSettingsSchema(3600)
export type VadSettings = Static<typeof VadSettings>

/** What every transport's start carries besides the format: the options of one stream. */
export const StreamOptionFields = {
  acks: Type.Optional(Type.Boolean({ default: false, description: 'Acknowledge audio as it is taken: `ack` events at most every ~100 ms' })),
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
  ...StreamOptionFields,
  vad: Type.Optional(VadSettings)
}, { additionalProperties: false })
export type StreamStart = Static<typeof StreamStart>

export const StartMessage = Type.Composite([
  Type.Object({ request: Type.Literal('start') }),
  StreamStart
], { $id: 'StartMessage', additionalProperties: false })
export type StartMessage = Static<typeof StartMessage>

/** StreamStart with the server's limits in it (limits.max_channels, limits.max_utterance_seconds). */
export function streamStartWithLimit (maxChannels: number, maxUtteranceSeconds: number): typeof StreamStart {
  return Type.Object({
    ...StreamStart.properties,
    format: audioFormatWithLimit(maxChannels),
    vad: Type.Optional(vadSettingsSchema(maxUtteranceSeconds))
  }, { additionalProperties: false })
}

export const KeepaliveMessage = Type.Object({
  request: Type.Literal('keepalive')
}, { $id: 'KeepaliveMessage', additionalProperties: false, description: 'Resets the stream\'s idle clock (limits.idle_timeout_seconds) without adding audio' })
export type KeepaliveMessage = Static<typeof KeepaliveMessage>

export const FinalizeMessage = Type.Object({
  request: Type.Literal('finalize')
}, { $id: 'FinalizeMessage', additionalProperties: false, description: 'Finalise the open utterance on every channel now (a `finalized` event follows its finals); the stream stays open' })
export type FinalizeMessage = Static<typeof FinalizeMessage>

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
