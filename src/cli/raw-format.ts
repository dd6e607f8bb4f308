import type { AudioFormat } from '../../schemas/audio-format.ts'

// Raw PCM on stdin has no header, so its format comes from flags. The sample format is one
// word, as sox and ffmpeg name them (s16le...), and maps onto the server's own format fields
// (bit_depth, is_float, encoding): the same formats a WAV file may hold. Little-endian only,
// as the server takes.
export const SAMPLE_FORMATS: Readonly<Record<string, Pick<AudioFormat, 'bit_depth' | 'is_float' | 'encoding'>>> = {
  u8: { bit_depth: 8, is_float: false },
  s16le: { bit_depth: 16, is_float: false },
  s24le: { bit_depth: 24, is_float: false },
  s32le: { bit_depth: 32, is_float: false },
  f32le: { bit_depth: 32, is_float: true },
  f64le: { bit_depth: 64, is_float: true },
  mulaw: { bit_depth: 8, is_float: false, encoding: 'mulaw' },
  alaw: { bit_depth: 8, is_float: false, encoding: 'alaw' }
}

// All three are needed for raw PCM, and none is taken with a WAV (its header says).
export const RAW_FORMAT_FLAGS = ['--sample-rate', '--channels', '--sample-format'] as const

export function rawFormat (sampleRate: number, channels: number, sampleFormat: string): AudioFormat | null {
  const sample = Object.hasOwn(SAMPLE_FORMATS, sampleFormat) ? SAMPLE_FORMATS[sampleFormat] : undefined
  if (sample === undefined) return null
  const { encoding, ...pcm } = sample
  return { sample_rate: sampleRate, channels, ...pcm, ...(encoding === undefined ? {} : { encoding }) }
}
