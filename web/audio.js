// Audio for the page: the microphone through an AudioWorklet, files (WAV read here, other
// formats decoded by the browser), and the levels the waveform draws. Only standard Web APIs.

/**
 * The stream's audio format, as the start message declares it (docs/protocol.md, Formats).
 * @typedef {{ channels: number, sample_rate: number, bit_depth: number, is_float: boolean, encoding: 'pcm' | 'mulaw' | 'alaw' }} AudioFormat
 */

/** Bytes per frame: one sample of every channel. @param {AudioFormat} format */
export const frameBytes = (format) => format.channels * format.bit_depth / 8

/**
 * An audio file ready to stream: its samples exactly as they will be sent.
 * @typedef {{ format: AudioFormat, data: Uint8Array, how: string }} AudioFile
 */

const WAVE_FORMAT_PCM = 1
const WAVE_FORMAT_IEEE_FLOAT = 3
const WAVE_FORMAT_ALAW = 6
const WAVE_FORMAT_MULAW = 7
const WAVE_FORMAT_EXTENSIBLE = 0xfffe

/** What the page sends as it is, without decoding: the server reads all of it. */
export const WAV_FORMATS = 'WAV: PCM 8, 16, 24 or 32-bit, float 32 or 64-bit, mu-law, A-law (any rate from 8 to 192 kHz, up to 8 channels)'

/**
 * Reads a WAV file's header: the samples are sent as they are, in the file's own format.
 * Returns null for a file that is not RIFF/WAVE; throws for a WAV file in a format the
 * server does not take.
 * @param {Uint8Array} bytes
 * @returns {{ format: AudioFormat, data: Uint8Array } | null}
 */
export function parseWav (bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const tag = (/** @type {number} */ at) => String.fromCharCode(...bytes.subarray(at, at + 4))
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') return null
  /** @type {AudioFormat | null} */
  let format = null
  let at = 12
  while (at + 8 <= bytes.length) {
    const id = tag(at)
    const size = view.getUint32(at + 4, true)
    if (id === 'fmt ') format = parseFmt(new DataView(bytes.buffer, bytes.byteOffset + at + 8, Math.min(size, bytes.length - at - 8)))
    if (id === 'data') {
      if (format === null) throw new Error('The WAV file has its data before its fmt chunk')
      // 0 and 0xFFFFFFFF are what streaming writers put when the length was not known.
      const end = size === 0 || size === 0xffffffff ? bytes.length : Math.min(bytes.length, at + 8 + size)
      return { format, data: bytes.subarray(at + 8, end) }
    }
    at += 8 + size + (size % 2)
  }
  throw new Error('The WAV file has no data chunk')
}

/** @param {DataView} fmt @returns {AudioFormat} */
function parseFmt (fmt) {
  if (fmt.byteLength < 16) throw new Error('The WAV fmt chunk is too short')
  let code = fmt.getUint16(0, true)
  const channels = fmt.getUint16(2, true)
  const rate = fmt.getUint32(4, true)
  const bits = fmt.getUint16(14, true)
  // WAVE_FORMAT_EXTENSIBLE: the real format code is the first two bytes of the sub-format GUID.
  if (code === WAVE_FORMAT_EXTENSIBLE && fmt.byteLength >= 26) code = fmt.getUint16(24, true)
  /** @type {AudioFormat} */
  const format = { channels, sample_rate: rate, bit_depth: bits, is_float: code === WAVE_FORMAT_IEEE_FLOAT, encoding: 'pcm' }
  if (code === WAVE_FORMAT_ALAW) format.encoding = 'alaw'
  if (code === WAVE_FORMAT_MULAW) format.encoding = 'mulaw'
  const ok = code === WAVE_FORMAT_PCM
    ? [8, 16, 24, 32].includes(bits)
    : code === WAVE_FORMAT_IEEE_FLOAT ? [32, 64].includes(bits) : (code === WAVE_FORMAT_ALAW || code === WAVE_FORMAT_MULAW) && bits === 8
  if (!ok) throw new Error(`This WAV file's format (format code ${code}, ${bits}-bit) is not one the server takes. ${WAV_FORMATS}`)
  if (channels < 1 || channels > 8) throw new Error(`The WAV file has ${channels} channels: the server takes 1 to 8`)
  if (rate < 8000 || rate > 192000) throw new Error(`The WAV file's rate is ${rate} Hz: the server takes 8000 to 192000 Hz`)
  return format
}

/**
 * A chosen or dropped file, as the bytes to send. WAV is sent as it is (its sha256 can be checked
 * against the file's data chunk); anything else the browser can decode (MP3, Ogg, FLAC, ...) is
 * decoded at 48 kHz and sent as 32-bit float, interleaved.
 * @param {File} file
 * @returns {Promise<AudioFile>}
 */
export async function readAudioFile (file) {
  const bytes = new Uint8Array(await file.arrayBuffer())
  const wav = parseWav(bytes)
  if (wav !== null) return { ...wav, how: `WAV, sent as it is (${describeFormat(wav.format)})` }
  const context = new OfflineAudioContext({ numberOfChannels: 1, length: 1, sampleRate: 48000 })
  let decoded
  try {
    decoded = await context.decodeAudioData(bytes.buffer.slice(0))
  } catch {
    throw new Error(`${file.name} is neither a WAV file the page reads nor audio this browser can decode. ${WAV_FORMATS}; other formats are decoded by the browser`)
  }
  const channels = Math.min(decoded.numberOfChannels, 8)
  const out = new DataView(new ArrayBuffer(decoded.length * channels * 4))
  for (let c = 0; c < channels; c++) {
    const samples = decoded.getChannelData(c)
    for (let i = 0; i < samples.length; i++) out.setFloat32((i * channels + c) * 4, samples[i] ?? 0, true)
  }
  /** @type {AudioFormat} */
  const format = { channels, sample_rate: decoded.sampleRate, bit_depth: 32, is_float: true, encoding: 'pcm' }
  return { format, data: new Uint8Array(out.buffer), how: `decoded by the browser, sent as ${describeFormat(format)}` }
}

/** @param {AudioFormat} format */
export function describeFormat (format) {
  const kind = format.encoding !== 'pcm' ? format.encoding : format.is_float ? `float ${format.bit_depth}-bit` : `${format.bit_depth}-bit`
  return `${format.sample_rate} Hz, ${kind}, ${format.channels === 1 ? 'mono' : `${format.channels} channels`}`
}

/** G.711 mu-law byte to a linear sample, -1..1. @param {number} byte */
function mulaw (byte) {
  const u = ~byte & 0xff
  const magnitude = ((((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4)) - 0x84
  return (u & 0x80 ? -magnitude : magnitude) / 32768
}

/** G.711 A-law byte to a linear sample, -1..1. @param {number} byte */
function alaw (byte) {
  const a = byte ^ 0x55
  const exponent = (a & 0x70) >> 4
  const mantissa = a & 0x0f
  const magnitude = exponent === 0 ? (mantissa << 4) + 8 : ((mantissa << 4) + 0x108) << (exponent - 1)
  return (a & 0x80 ? magnitude : -magnitude) / 32768
}

/**
 * One sample as -1..1, for the levels only (what is sent is never converted).
 * @param {AudioFormat} format
 * @returns {(view: DataView, at: number) => number}
 */
function sampleReader (format) {
  if (format.encoding === 'mulaw') return (view, at) => mulaw(view.getUint8(at))
  if (format.encoding === 'alaw') return (view, at) => alaw(view.getUint8(at))
  if (format.is_float) return format.bit_depth === 64 ? (view, at) => view.getFloat64(at, true) : (view, at) => view.getFloat32(at, true)
  switch (format.bit_depth) {
    case 8: return (view, at) => (view.getUint8(at) - 128) / 128
    case 16: return (view, at) => view.getInt16(at, true) / 32768
    case 24: return (view, at) => ((view.getUint8(at + 2) << 24 >> 8) | (view.getUint8(at + 1) << 8) | view.getUint8(at)) / 8388608
    default: return (view, at) => view.getInt32(at, true) / 2147483648
  }
}

/**
 * Peak level (0..1, all channels) of each `columnSeconds` of a chunk, for the waveform. A chunk
 * that does not end on a column boundary leaves a partial column, which the next chunk's first
 * column continues (the caller passes `carry` back in).
 * @param {Uint8Array} chunk
 * @param {AudioFormat} format
 * @param {number} columnSeconds
 * @param {{ frames: number, peak: number, partial: Uint8Array }} carry
 * @returns {number[]}
 */
export function columnPeaks (chunk, format, columnSeconds, carry) {
  const frame = frameBytes(format)
  const sampleBytes = format.bit_depth / 8
  const bytes = carry.partial.length > 0 ? concat([carry.partial, chunk]) : chunk
  const whole = bytes.length - (bytes.length % frame)
  carry.partial = bytes.slice(whole)
  const view = new DataView(bytes.buffer, bytes.byteOffset, whole)
  const read = sampleReader(format)
  const perColumn = Math.max(1, Math.round(format.sample_rate * columnSeconds))
  const peaks = []
  for (let at = 0; at < whole; at += frame) {
    for (let s = 0; s < frame; s += sampleBytes) {
      const v = Math.abs(read(view, at + s))
      if (v > carry.peak && Number.isFinite(v)) carry.peak = Math.min(1, v)
    }
    if (++carry.frames === perColumn) {
      peaks.push(carry.peak)
      carry.frames = 0
      carry.peak = 0
    }
  }
  return peaks
}

/** @param {Uint8Array[]} parts */
export function concat (parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

/**
 * The microphone, captured by an AudioWorklet at the context's native rate and delivered as
 * 16-bit PCM chunks of 100 ms from the first sample on (nothing is dropped while the page
 * connects: the caller queues the chunks).
 * @param {(chunk: Uint8Array) => void} onChunk
 * @returns {Promise<{ format: AudioFormat, stop: () => Promise<void>, label: string }>}
 */
export async function startMicrophone (onChunk) {
  if (!window.isSecureContext) throw new Error('The microphone needs a secure context: open the page on localhost or over https')
  // The device's own rate: no resampling in the browser (the server resamples).
  const context = new AudioContext()
  try {
    await context.audioWorklet.addModule(new URL('./capture-worklet.js', import.meta.url))
    // Raw audio: echo cancellation, noise suppression and gain control change what the VAD hears.
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } })
    if (context.state === 'suspended') await context.resume()
    const source = context.createMediaStreamSource(stream)
    const node = new AudioWorkletNode(context, 'capture', {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      channelCount: 1,
      channelCountMode: 'explicit',
      channelInterpretation: 'speakers',
      processorOptions: { batchFrames: Math.round(context.sampleRate / 10) }
    })
    /** @type {(() => void) | null} */
    let flushed = null
    node.port.onmessage = (message) => {
      if (message.data === 'flushed') flushed?.()
      else if (message.data instanceof ArrayBuffer) onChunk(new Uint8Array(message.data))
    }
    source.connect(node)
    // Its output is silence; connected so that every browser keeps pulling the node.
    node.connect(context.destination)
    const track = stream.getAudioTracks()[0]
    return {
      format: { channels: 1, sample_rate: context.sampleRate, bit_depth: 16, is_float: false, encoding: 'pcm' },
      label: track?.label ?? 'microphone',
      stop: async () => {
        // The last partial batch first, then the device is released.
        await Promise.race([new Promise((resolve) => { flushed = () => resolve(undefined); node.port.postMessage('flush') }), new Promise((resolve) => setTimeout(resolve, 500))])
        source.disconnect()
        node.disconnect()
        for (const t of stream.getTracks()) t.stop()
        await context.close()
      }
    }
  } catch (error) {
    await context.close()
    throw error
  }
}
