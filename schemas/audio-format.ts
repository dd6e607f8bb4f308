import { Type, type Static } from '@sinclair/typebox'
import { ERROR_CODE_KEYWORD } from './validation.ts'

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
], { $id: 'Encoding', description: 'Sample encoding: linear PCM (default), or 8-bit G.711 mu-law / A-law', [ERROR_CODE_KEYWORD]: 'unsupported_format' })

// A violation of any format field is an `unsupported_format` error (see validation.ts).
const formatField = { [ERROR_CODE_KEYWORD]: 'unsupported_format' }

/** The format fields, one schema each: the start message's `format` and the HTTP upload's query use them. */
export const FormatFields = {
  channels: Type.Integer({ minimum: 1, description: 'Interleaved channel count (server limit applies: limits.max_channels, default 8)', ...formatField }),
  sample_rate: Type.Integer({ minimum: SAMPLE_RATE_MIN, maximum: SAMPLE_RATE_MAX, description: 'Samples per second per channel', ...formatField }),
  bit_depth: Type.Integer({ description: 'Bits per sample: 8 (unsigned), 16, 24, 32 integer; 32 or 64 float; 8 for mulaw/alaw', ...formatField }),
  is_float: Type.Boolean({ default: false, description: 'IEEE float samples (bit_depth 32 or 64)', ...formatField }),
  encoding: Encoding
}

export const AudioFormat = Type.Object({
  channels: FormatFields.channels,
  sample_rate: FormatFields.sample_rate,
  bit_depth: FormatFields.bit_depth,
  is_float: FormatFields.is_float,
  encoding: Type.Optional(FormatFields.encoding)
}, { $id: 'AudioFormat', additionalProperties: false, description: 'e.g. {"channels": 1, "sample_rate": 16000, "bit_depth": 16, "is_float": false}' })
export type AudioFormat = Static<typeof AudioFormat>

/** AudioFormat with the server's channel limit in the schema, so refusals and the spec state it. */
export function audioFormatWithLimit (maxChannels: number): typeof AudioFormat {
  return Type.Object({
    ...AudioFormat.properties,
    channels: Type.Integer({ ...FormatFields.channels, maximum: maxChannels })
  }, { additionalProperties: false, description: AudioFormat.description })
}
