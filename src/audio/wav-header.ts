import type { AudioFormat } from '../../schemas/audio-format.ts'

// WAV (RIFF/WAVE) header parsing for audio that arrives as a stream: the header is read from the
// front of the bytes, and the data chunk may declare an unknown length (0 or 0xFFFFFFFF, as
// streaming writers such as sox or ffmpeg emit when writing to a pipe).
export type WavHeaderResult =
  | { status: 'ok', format: AudioFormat, dataOffset: number, dataBytes: number | null }
  | { status: 'need-more' }
  | { status: 'invalid', message: string }

const WAVE_FORMAT_PCM = 0x0001
const WAVE_FORMAT_IEEE_FLOAT = 0x0003
const WAVE_FORMAT_ALAW = 0x0006
const WAVE_FORMAT_MULAW = 0x0007
const WAVE_FORMAT_EXTENSIBLE = 0xfffe
// A header larger than this is not a header we will wait for (LIST/INFO chunks are small).
export const MAX_WAV_HEADER_BYTES = 64 * 1024

const tag = (view: DataView, at: number): string =>
  String.fromCharCode(view.getUint8(at), view.getUint8(at + 1), view.getUint8(at + 2), view.getUint8(at + 3))

export function parseWavHeader (bytes: Uint8Array): WavHeaderResult {
  if (bytes.length < 12) return { status: 'need-more' }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (tag(view, 0) !== 'RIFF' || tag(view, 8) !== 'WAVE') {
    return { status: 'invalid', message: 'The body is not a WAV file: it must start with a RIFF/WAVE header' }
  }
  let at = 12
  let format: AudioFormat | null = null
  while (true) {
    if (at + 8 > bytes.length) return bytes.length > MAX_WAV_HEADER_BYTES ? tooLong() : { status: 'need-more' }
    const id = tag(view, at)
    const size = view.getUint32(at + 4, true)
    if (id === 'data') {
      if (format === null) return { status: 'invalid', message: 'The WAV data chunk comes before its fmt chunk' }
      const unknown = size === 0 || size === 0xffffffff
      return { status: 'ok', format, dataOffset: at + 8, dataBytes: unknown ? null : size }
    }
    // Chunks are padded to an even size.
    const next = at + 8 + size + (size % 2)
    if (id === 'fmt ') {
      if (at + 8 + size > bytes.length) return bytes.length > MAX_WAV_HEADER_BYTES ? tooLong() : { status: 'need-more' }
      const parsed = parseFmt(new DataView(bytes.buffer, bytes.byteOffset + at + 8, size))
      if (typeof parsed === 'string') return { status: 'invalid', message: parsed }
      format = parsed
    }
    if (next > MAX_WAV_HEADER_BYTES) return tooLong()
    at = next
  }
}

function tooLong (): WavHeaderResult {
  return { status: 'invalid', message: `No WAV data chunk within the first ${MAX_WAV_HEADER_BYTES} bytes` }
}

function parseFmt (fmt: DataView): AudioFormat | string {
  if (fmt.byteLength < 16) return 'The WAV fmt chunk is too short'
  let code = fmt.getUint16(0, true)
  const channels = fmt.getUint16(2, true)
  const sampleRate = fmt.getUint32(4, true)
  const bits = fmt.getUint16(14, true)
  if (code === WAVE_FORMAT_EXTENSIBLE) {
    // The sub-format GUID's first two bytes carry the real format code.
    if (fmt.byteLength < 26) return 'The WAV fmt chunk (WAVE_FORMAT_EXTENSIBLE) is too short'
    code = fmt.getUint16(24, true)
  }
  switch (code) {
    case WAVE_FORMAT_PCM: return { channels, sample_rate: sampleRate, bit_depth: bits, is_float: false }
    case WAVE_FORMAT_IEEE_FLOAT: return { channels, sample_rate: sampleRate, bit_depth: bits, is_float: true }
    case WAVE_FORMAT_MULAW: return { channels, sample_rate: sampleRate, bit_depth: 8, is_float: false, encoding: 'mulaw' }
    case WAVE_FORMAT_ALAW: return { channels, sample_rate: sampleRate, bit_depth: 8, is_float: false, encoding: 'alaw' }
    default:
      return `WAV format code 0x${code.toString(16)} is not supported: accepted PCM integer (1), IEEE float (3), A-law (6), mu-law (7), or WAVE_FORMAT_EXTENSIBLE of those`
  }
}
