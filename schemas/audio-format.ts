import { Type, type Static } from '@sinclair/typebox'

// The wire's audio declaration, kept exactly as the Rust original's v0.2 `AudioFormat`
// (channels, sample_rate, bit_depth, is_float) with `encoding` added for telephony.
export const SAMPLE_RATE_MIN = 8000
export const SAMPLE_RATE_MAX = 192000
// The model's rate: every channel is resampled to this before VAD and inference.
export const MODEL_SAMPLE_RATE = 16000

export const Encoding = Type.Union([
  Type.Literal('pcm'),
  Type.Literal('mulaw'),
  Type.Literal('alaw')
], { $id: 'Encoding', description: 'Sample encoding: linear PCM (default), or 8-bit G.711 mu-law / A-law' })

export const AudioFormat = Type.Object({
  channels: Type.Integer({ minimum: 1, description: 'Interleaved channel count (server limit applies, default 8)' }),
  sample_rate: Type.Integer({ minimum: SAMPLE_RATE_MIN, maximum: SAMPLE_RATE_MAX, description: 'Samples per second per channel' }),
  bit_depth: Type.Integer({ description: 'Bits per sample: 8 (unsigned), 16, 24, 32 integer; 32 or 64 float; 8 for mulaw/alaw' }),
  is_float: Type.Boolean({ default: false, description: 'IEEE float samples (bit_depth 32 or 64)' }),
  encoding: Type.Optional(Encoding)
}, { $id: 'AudioFormat', additionalProperties: false })
export type AudioFormat = Static<typeof AudioFormat>
