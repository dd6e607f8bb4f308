import { Buffer } from 'node:buffer'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import { describeFormatProblem } from './format-support.ts'

// Streaming decoder for the wire's raw audio: little-endian, channels interleaved, any chunking.
// Each push returns one Float32Array per channel, samples in [-1, 1]. Bytes of an incomplete frame
// (half a sample, or some channels of a frame) are kept and completed by the next push.
//
// Runs on the event loop for every chunk of every stream, so it is written for speed:
// - one small monomorphic loop per sample kind, run once per channel with a stride, reading a
//   typed-array view straight over the bytes for 16/32-bit integers and floats (bytes at an odd
//   offset, which a WebSocket payload often is, are first copied to an aligned scratch: a
//   memcpy); large pushes go a block at a time, so that scratch stays small (BLOCK_SAMPLES).
//   s16 in 250 ms pushes costs 1-2 ns a sample (16 kHz mono, 48 kHz stereo); the previous
//   version, every kind and layout in one function with a per-sample channel split, 2-4.5;
// - no per-sample allocation, and the output arrays are allocated without zero-filling (every
//   sample is written), or, with `reuseOutput`, kept from push to push: for a caller that copies
//   them at once (the resampler and the simple runner do), no allocation at all per push. They
//   were the largest array buffers a fast stream allocated (4 bytes a sample per channel,
//   against 2 for the wire's s16), and every one counts towards V8's next full collection.

type SampleKind = 'u8' | 's16' | 's24' | 's32' | 'f32' | 'f64' | 'mulaw' | 'alaw'

// Typed-array views read native byte order; the wire is little-endian.
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

// Interleaved samples decoded per block: the aligned scratch holds at most this many (up to 64
// KiB, for f64).
const BLOCK_SAMPLES = 8192
// With `reuseOutput`, pushes up to this many frames use the kept arrays (128 KiB a channel at
// most); a larger push gets new ones, so one huge frame does not pin its size for the stream.
const MAX_REUSED_FRAMES = 32768

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

// A Float32Array of `length` samples whose contents start undefined: for arrays the caller
// fills completely at once. Buffer.allocUnsafeSlow gives an ArrayBuffer of its own (not a slice
// of Node's pool), without the zero-fill of new Float32Array.
export function uninitializedFloat32 (length: number): Float32Array<ArrayBuffer> {
  if (length === 0) return new Float32Array(0)
  return new Float32Array(Buffer.allocUnsafeSlow(length * 4).buffer as ArrayBuffer, 0, length)
}

export interface PcmDecoderOptions {
  /**
   * Reuse the output arrays: the arrays a push returns are valid only until the next push (which
   * overwrites them), for a caller that copies them at once. Default false: every push returns
   * new arrays the caller may keep.
   */
  reuseOutput?: boolean
}

export class PcmDecoder {
  readonly channels: number
  readonly bytesPerSample: number
  readonly bytesPerFrame: number
  readonly #kind: SampleKind
  readonly #reuseOutput: boolean
  // An incomplete frame carried between pushes; never longer than one frame.
  readonly #carry: Uint8Array
  #carryLength = 0
  #framesDecoded = 0
  #nonFiniteSamples = 0
  // Bytes copied to an aligned offset, grown on demand up to a block.
  #aligned = new Uint8Array(0)
  // With reuseOutput: the kept output arrays, one per channel.
  #outputs: Float32Array[] = []

  constructor (format: AudioFormat, options: PcmDecoderOptions = {}) {
    // The channel limit is the server's business; the decoder only needs a well-formed format.
    const problem = describeFormatProblem(format, Number.MAX_SAFE_INTEGER)
    if (problem !== null) throw new RangeError(problem.message)
    this.#kind = sampleKind(format)
    this.#reuseOutput = options.reuseOutput === true
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
    const out = this.#outputArrays(frames)
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

  #outputArrays (frames: number): Float32Array[] {
    const out: Float32Array[] = []
    if (this.#reuseOutput && frames <= MAX_REUSED_FRAMES) {
      for (let c = 0; c < this.channels; c++) {
        let kept = this.#outputs[c]
        if (kept === undefined || kept.length < frames) {
          kept = new Float32Array(Math.min(MAX_REUSED_FRAMES, Math.max(frames, 2 * (kept?.length ?? 0))))
          this.#outputs[c] = kept
        }
        // The constructor, not subarray(), which looks up a species constructor: slower.
        out.push(new Float32Array(kept.buffer, 0, frames))
      }
    } else {
      for (let c = 0; c < this.channels; c++) out.push(uninitializedFloat32(frames))
    }
    return out
  }

  // Decodes `frames` whole frames of `src` from byte `offset` into out[c][outIndex...], a block
  // at a time (the aligned scratch holds one), each channel by one strided loop.
  #decode (src: Uint8Array, offset: number, frames: number, out: Float32Array[], outIndex: number): void {
    const channels = this.channels
    const perBlock = Math.max(1, Math.floor(BLOCK_SAMPLES / channels))
    for (let done = 0; done < frames; done += perBlock) {
      const n = Math.min(perBlock, frames - done)
      this.#convert(src, offset + done * this.bytesPerFrame, n, out, outIndex + done)
    }
  }

  // `frames` frames of `src` from byte `offset` -> out[c][at...].
  #convert (src: Uint8Array, offset: number, frames: number, out: Float32Array[], at: number): void {
    const kind = this.#kind
    const channels = this.channels
    switch (kind) {
      case 'u8':
        for (let c = 0; c < channels; c++) convertU8(src, offset + c, channels, frames, out[c] as Float32Array, at)
        return
      case 'mulaw':
      case 'alaw': {
        const table = kind === 'mulaw' ? MULAW_TABLE : ALAW_TABLE
        for (let c = 0; c < channels; c++) convertTable(src, offset + c, channels, frames, out[c] as Float32Array, at, table)
        return
      }
      case 's24':
        for (let c = 0; c < channels; c++) convertS24(src, offset + 3 * c, 3 * channels, frames, out[c] as Float32Array, at)
        return
    }
    const size = this.bytesPerSample
    const count = frames * channels
    if (!LITTLE_ENDIAN_HOST) {
      for (let c = 0; c < channels; c++) this.#nonFiniteSamples += convertDataView(kind, src, offset + c * size, channels * size, frames, out[c] as Float32Array, at)
      return
    }
    let buffer: ArrayBufferLike = src.buffer
    let byteOffset = src.byteOffset + offset
    if (byteOffset % size !== 0) {
      // Typed-array views need an aligned offset: copy the block's bytes to one (a memcpy).
      const length = count * size
      if (this.#aligned.length < length) this.#aligned = new Uint8Array(Math.min(BLOCK_SAMPLES * size, Math.max(length, 2 * this.#aligned.length)))
      this.#aligned.set(src.subarray(offset, offset + length))
      buffer = this.#aligned.buffer
      byteOffset = 0
    }
    switch (kind) {
      case 's16': {
        const samples = new Int16Array(buffer, byteOffset, count)
        for (let c = 0; c < channels; c++) convertS16(samples, c, channels, frames, out[c] as Float32Array, at)
        return
      }
      case 's32': {
        const samples = new Int32Array(buffer, byteOffset, count)
        for (let c = 0; c < channels; c++) convertS32(samples, c, channels, frames, out[c] as Float32Array, at)
        return
      }
      case 'f32': {
        const samples = new Float32Array(buffer, byteOffset, count)
        for (let c = 0; c < channels; c++) this.#nonFiniteSamples += convertF32(samples, c, channels, frames, out[c] as Float32Array, at)
        return
      }
      case 'f64': {
        const samples = new Float64Array(buffer, byteOffset, count)
        for (let c = 0; c < channels; c++) this.#nonFiniteSamples += convertF64(samples, c, channels, frames, out[c] as Float32Array, at)
      }
    }
  }
}

const S16_SCALE = 1 / 32768
const S24_SCALE = 1 / 8388608
const S32_SCALE = 1 / 2147483648

// Each converts one channel: `frames` samples read from `first` every `stride` (samples, or
// bytes for the byte-wise kinds), written to dst[at...].

// One loop per sample kind and array type, on purpose: a loop that sees one typed-array class
// stays monomorphic (the f32 and f64 loops below look alike but are not merged for that reason).
function convertU8 (src: Uint8Array, first: number, stride: number, frames: number, dst: Float32Array, at: number): void {
  for (let f = 0, i = first; f < frames; f++, i += stride) dst[at + f] = ((src[i] as number) - 128) / 128
}

function convertTable (src: Uint8Array, first: number, stride: number, frames: number, dst: Float32Array, at: number, table: Float32Array): void {
  for (let f = 0, i = first; f < frames; f++, i += stride) dst[at + f] = table[src[i] as number] as number
}

function convertS24 (src: Uint8Array, first: number, stride: number, frames: number, dst: Float32Array, at: number): void {
  for (let f = 0, p = first; f < frames; f++, p += stride) {
    // Assemble 24 bits little-endian, then sign-extend through the top of a 32-bit int.
    const raw = (src[p] as number) | ((src[p + 1] as number) << 8) | ((src[p + 2] as number) << 16)
    dst[at + f] = ((raw << 8) >> 8) * S24_SCALE
  }
}

function convertS16 (src: Int16Array, first: number, stride: number, frames: number, dst: Float32Array, at: number): void {
  for (let f = 0, i = first; f < frames; f++, i += stride) dst[at + f] = (src[i] as number) * S16_SCALE
}

function convertS32 (src: Int32Array, first: number, stride: number, frames: number, dst: Float32Array, at: number): void {
  for (let f = 0, i = first; f < frames; f++, i += stride) dst[at + f] = (src[i] as number) * S32_SCALE
}

// The float kinds return how many samples were not finite.
function convertF32 (src: Float32Array, first: number, stride: number, frames: number, dst: Float32Array, at: number): number {
  let bad = 0
  for (let f = 0, i = first; f < frames; f++, i += stride) {
    const v = src[i] as number
    // NaN fails both comparisons and +-Inf one: those are counted, and become 0.
    if (v >= -1 && v <= 1) {
      dst[at + f] = v
    } else {
      if (!Number.isFinite(v)) bad++
      dst[at + f] = sanitize(v)
    }
  }
  return bad
}

function convertF64 (src: Float64Array, first: number, stride: number, frames: number, dst: Float32Array, at: number): number {
  let bad = 0
  for (let f = 0, i = first; f < frames; f++, i += stride) {
    const v = src[i] as number
    if (v >= -1 && v <= 1) {
      dst[at + f] = v
    } else {
      if (!Number.isFinite(v)) bad++
      dst[at + f] = sanitize(v)
    }
  }
  return bad
}

// A big-endian host: multi-byte samples read one by one, little-endian, through a DataView
// (`first` and `stride` in bytes).
function convertDataView (kind: SampleKind, src: Uint8Array, first: number, stride: number, frames: number, dst: Float32Array, at: number): number {
  const view = new DataView(src.buffer, src.byteOffset)
  let bad = 0
  for (let f = 0, p = first; f < frames; f++, p += stride) {
    let v: number
    switch (kind) {
      case 's16': v = view.getInt16(p, true) * S16_SCALE; break
      case 's32': v = view.getInt32(p, true) * S32_SCALE; break
      case 'f32': v = view.getFloat32(p, true); break
      default: v = view.getFloat64(p, true)
    }
    if (!Number.isFinite(v)) bad++
    dst[at + f] = sanitize(v)
  }
  return bad
}

// NaN/Inf would poison every later VAD state and model input: they become silence. Finite
// floats outside [-1, 1] (clipped sources, float mixers) are clamped to full scale.
function sanitize (v: number): number {
  if (!Number.isFinite(v)) return 0
  return v > 1 ? 1 : v < -1 ? -1 : v
}
