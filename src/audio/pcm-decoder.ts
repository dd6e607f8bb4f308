import type { AudioFormat } from '../../schemas/audio-format.ts'
import { describeFormatProblem } from './format-support.ts'

// Streaming decoder for the wire's raw audio: little-endian, channels interleaved, any chunking.
// Each push returns one Float32Array per channel, samples in [-1, 1]. Bytes of an incomplete frame
// (half a sample, or some channels of a frame) are kept and completed by the next push.
// Runs on the event loop for every chunk of every stream: no per-sample allocation, one DataView
// per push, and typed-array views straight over the bytes where the platform and alignment allow.

type SampleKind = 'u8' | 's16' | 's24' | 's32' | 'f32' | 'f64' | 'mulaw' | 'alaw'

// Typed-array views read native byte order; the wire is little-endian.
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

// G.711 (ITU-T) expansion to 16-bit linear, then scaled like s16 (/ 32768). Built once.
// mu-law: bytes are stored inverted; 0xFF and 0x7F are the two zeros, full scale is +-32124.
const MULAW_TABLE = new Float32Array(256)
// A-law: even bits are inverted (xor 0x55); sign bit set means positive; full scale +-32256.
const ALAW_TABLE = new Float32Array(256)
for (let byte = 0; byte < 256; byte++) {
  const u = ~byte & 0xff
  const uExponent = (u >> 4) & 0x07
  const uMagnitude = ((((u & 0x0f) << 3) + 0x84) << uExponent) - 0x84
  MULAW_TABLE[byte] = ((u & 0x80) !== 0 ? -uMagnitude : uMagnitude) / 32768

  const a = byte ^ 0x55
  const aExponent = (a >> 4) & 0x07
  const aMantissa = a & 0x0f
  const aMagnitude = aExponent === 0 ? (aMantissa << 4) + 8 : ((aMantissa << 4) + 0x108) << (aExponent - 1)
  ALAW_TABLE[byte] = ((a & 0x80) !== 0 ? aMagnitude : -aMagnitude) / 32768
}

function sampleKind (format: AudioFormat): SampleKind {
  const encoding = format.encoding ?? 'pcm'
  if (encoding !== 'pcm') return encoding
  if (format.is_float) return format.bit_depth === 64 ? 'f64' : 'f32'
  switch (format.bit_depth) {
    case 8: return 'u8'
    case 16: return 's16'
    case 24: return 's24'
    default: return 's32'
  }
}

export class PcmDecoder {
  readonly channels: number
  readonly bytesPerSample: number
  readonly bytesPerFrame: number
  readonly #kind: SampleKind
  // An incomplete frame carried between pushes; never longer than one frame.
  readonly #carry: Uint8Array
  #carryLength = 0
  #framesDecoded = 0
  #nonFiniteSamples = 0

  constructor (format: AudioFormat) {
    // The channel limit is the server's business; the decoder only needs a well-formed format.
    const problem = describeFormatProblem(format, Number.MAX_SAFE_INTEGER)
    if (problem !== null) throw new RangeError(problem.message)
    this.#kind = sampleKind(format)
    this.channels = format.channels
    this.bytesPerSample = format.bit_depth / 8
    this.bytesPerFrame = this.channels * this.bytesPerSample
    this.#carry = new Uint8Array(this.bytesPerFrame)
  }

  get pendingBytes (): number { return this.#carryLength }
  get framesDecoded (): number { return this.#framesDecoded }
  get nonFiniteSamples (): number { return this.#nonFiniteSamples }

  push (bytes: Uint8Array): Float32Array[] {
    const frameBytes = this.bytesPerFrame
    const frames = Math.floor((this.#carryLength + bytes.length) / frameBytes)
    const out: Float32Array[] = []
    for (let c = 0; c < this.channels; c++) out.push(new Float32Array(frames))
    if (frames === 0) {
      this.#carry.set(bytes, this.#carryLength)
      this.#carryLength += bytes.length
      return out
    }

    let offset = 0
    let outIndex = 0
    if (this.#carryLength > 0) {
      // Complete the carried frame from the head of this chunk and decode it on its own,
      // so the rest of the chunk is read in place rather than copied behind the carry.
      offset = frameBytes - this.#carryLength
      this.#carry.set(bytes.subarray(0, offset), this.#carryLength)
      this.#decode(this.#carry, 0, 1, out, 0)
      outIndex = 1
    }
    const whole = frames - outIndex
    this.#decode(bytes, offset, whole, out, outIndex)
    const restStart = offset + whole * frameBytes
    this.#carryLength = bytes.length - restStart
    this.#carry.set(bytes.subarray(restStart))
    this.#framesDecoded += frames
    return out
  }

  // Decodes `frames` whole frames of `src` from byte `offset` into out[c][outIndex...].
  #decode (src: Uint8Array, offset: number, frames: number, out: Float32Array[], outIndex: number): void {
    if (frames === 0) return
    const channels = this.channels
    const count = frames * channels
    const start = src.byteOffset + offset
    const view = new DataView(src.buffer, start, frames * this.bytesPerFrame)
    const kind = this.#kind
    // Mono is the common case; it writes one array and skips the channel loop.
    const mono = channels === 1 ? out[0] as Float32Array : undefined

    switch (kind) {
      case 'u8':
      case 'mulaw':
      case 'alaw': {
        const bytes = src.subarray(offset, offset + count)
        if (kind === 'u8') {
          for (let i = 0; i < count; i++) write(out, mono, channels, outIndex, i, ((bytes[i] as number) - 128) / 128)
        } else {
          const table = kind === 'mulaw' ? MULAW_TABLE : ALAW_TABLE
          for (let i = 0; i < count; i++) write(out, mono, channels, outIndex, i, table[bytes[i] as number] as number)
        }
        return
      }
      case 's16': {
        const scale = 1 / 32768
        if (LITTLE_ENDIAN_HOST && start % 2 === 0) {
          const samples = new Int16Array(src.buffer, start, count)
          for (let i = 0; i < count; i++) write(out, mono, channels, outIndex, i, (samples[i] as number) * scale)
        } else {
          for (let i = 0; i < count; i++) write(out, mono, channels, outIndex, i, view.getInt16(i * 2, true) * scale)
        }
        return
      }
      case 's24': {
        const scale = 1 / 8388608
        for (let i = 0; i < count; i++) {
          const p = i * 3
          // Assemble 24 bits little-endian, then sign-extend through the top of a 32-bit int.
          const raw = view.getUint8(p) | (view.getUint8(p + 1) << 8) | (view.getUint8(p + 2) << 16)
          write(out, mono, channels, outIndex, i, ((raw << 8) >> 8) * scale)
        }
        return
      }
      case 's32': {
        const scale = 1 / 2147483648
        for (let i = 0; i < count; i++) write(out, mono, channels, outIndex, i, view.getInt32(i * 4, true) * scale)
        return
      }
      case 'f32': {
        let bad = 0
        if (LITTLE_ENDIAN_HOST && start % 4 === 0) {
          const samples = new Float32Array(src.buffer, start, count)
          for (let i = 0; i < count; i++) {
            const v = samples[i] as number
            if (!Number.isFinite(v)) bad++
            write(out, mono, channels, outIndex, i, sanitize(v))
          }
        } else {
          for (let i = 0; i < count; i++) {
            const v = view.getFloat32(i * 4, true)
            if (!Number.isFinite(v)) bad++
            write(out, mono, channels, outIndex, i, sanitize(v))
          }
        }
        this.#nonFiniteSamples += bad
        return
      }
      case 'f64': {
        let bad = 0
        for (let i = 0; i < count; i++) {
          const v = view.getFloat64(i * 8, true)
          if (!Number.isFinite(v)) bad++
          write(out, mono, channels, outIndex, i, sanitize(v))
        }
        this.#nonFiniteSamples += bad
      }
    }
  }
}

// Sample i of the interleaved run goes to channel i % channels, frame outIndex + i / channels.
function write (out: Float32Array[], mono: Float32Array | undefined, channels: number, outIndex: number, i: number, value: number): void {
  if (mono !== undefined) {
    mono[outIndex + i] = value
  } else {
    const frame = (i / channels) | 0
    ;(out[i - frame * channels] as Float32Array)[outIndex + frame] = value
  }
}

// NaN/Inf would poison every later VAD state and model input: they become silence. Finite
// floats outside [-1, 1] (clipped sources, float mixers) are clamped to full scale.
function sanitize (v: number): number {
  if (!Number.isFinite(v)) return 0
  return v > 1 ? 1 : v < -1 ? -1 : v
}
