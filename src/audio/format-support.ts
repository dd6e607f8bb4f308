import { SAMPLE_RATE_MAX, SAMPLE_RATE_MIN, type AudioFormat } from '../../schemas/audio-format.ts'

// Which declared formats the decoder can read. The wire schema only checks types and the rate
// range; the combinations (encoding x is_float x bit_depth) and the server's channel limit are
// checked here, before any audio is accepted, so a client learns what was wrong and what to send.

export interface FormatProblem {
  field: string
  message: string
}

const ENCODINGS = ['pcm', 'mulaw', 'alaw']
const INT_PCM_DEPTHS = [8, 16, 24, 32]
const FLOAT_DEPTHS = [32, 64]

// `String(value)` would print objects as [object Object]; JSON shows exactly what the client sent.
function shown (value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(JSON.stringify(value) ?? value)
}

export function describeFormatProblem (format: AudioFormat, maxChannels: number): FormatProblem | null {
  const encoding: unknown = format.encoding ?? 'pcm'
  if (typeof encoding !== 'string' || !ENCODINGS.includes(encoding)) {
    return {
      field: 'format.encoding',
      message: `format.encoding ${shown(encoding)} is not supported: accepted 'pcm' (default), 'mulaw' or 'alaw'`
    }
  }

  const channels: unknown = format.channels
  if (typeof channels !== 'number' || !Number.isInteger(channels) || channels < 1 || channels > maxChannels) {
    const accepted = maxChannels === 1 ? 'accepted 1' : `accepted an integer from 1 to ${maxChannels}`
    return { field: 'format.channels', message: `format.channels ${shown(channels)} is not supported: ${accepted}` }
  }

  const rate: unknown = format.sample_rate
  if (typeof rate !== 'number' || !Number.isInteger(rate) || rate < SAMPLE_RATE_MIN || rate > SAMPLE_RATE_MAX) {
    return {
      field: 'format.sample_rate',
      message: `format.sample_rate ${shown(rate)} is not supported: accepted an integer from ${SAMPLE_RATE_MIN} to ${SAMPLE_RATE_MAX} Hz`
    }
  }

  // is_float defaults to false on the wire (the schema's default may not have been applied yet).
  const isFloat: unknown = format.is_float ?? false
  if (typeof isFloat !== 'boolean') {
    return { field: 'format.is_float', message: `format.is_float ${shown(isFloat)} is not supported: accepted true or false` }
  }

  const depth: unknown = format.bit_depth
  if (encoding !== 'pcm') {
    if (isFloat) {
      return {
        field: 'format.is_float',
        message: `format.is_float true is not supported with encoding '${encoding}': accepted false (G.711 is 8-bit)`
      }
    }
    if (depth !== 8) {
      return {
        field: 'format.bit_depth',
        message: `format.bit_depth ${shown(depth)} is not supported with encoding '${encoding}': accepted 8`
      }
    }
    return null
  }

  if (isFloat) {
    if (typeof depth !== 'number' || !FLOAT_DEPTHS.includes(depth)) {
      return {
        field: 'format.bit_depth',
        message: `format.bit_depth ${shown(depth)} is not supported with is_float true: accepted 32 or 64`
      }
    }
    return null
  }
  if (typeof depth !== 'number' || !INT_PCM_DEPTHS.includes(depth)) {
    return {
      field: 'format.bit_depth',
      message: `format.bit_depth ${shown(depth)} is not supported for integer PCM: accepted 8 (unsigned), 16, 24 or 32 (signed); ` +
        'or 32 or 64 with is_float true'
    }
  }
  return null
}

// Bytes of one interleaved frame (one sample of every channel). G.711 is one byte per sample.
export function bytesPerFrame (format: AudioFormat): number {
  return format.channels * (format.bit_depth / 8)
}
