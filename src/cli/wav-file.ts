import { createHash } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import { MAX_WAV_HEADER_BYTES, parseWavHeader } from '../audio/wav-header.ts'
import type { AudioSource } from './audio-source.ts'
import { CliError, EXIT_USAGE } from './cli-error.ts'

// A WAV file opened for streaming: the header says the format, and the data chunk is sent
// as it is (the server decodes u8, s16, s24, s32, f32, f64, mu-law and A-law itself, so no
// sample is converted here). Only the data chunk is read, a chunk at a time, so a long
// recording is never held in memory.
export interface WavFile extends AudioSource {
  path: string
  dataBytes: number // whole frames only
  frames: number
  totalSeconds: number // a file's length is known
  // Hex SHA-256 of the first `bytes` bytes of the data chunk (at most dataBytes), read again
  // from the file: what the audio sent hashes to when the server took only the start of it.
  sha256Of: (bytes: number) => Promise<string>
}

export async function openWav (path: string): Promise<WavFile> {
  let file: FileHandle
  try {
    file = await open(path, 'r')
  } catch (error) {
    throw new CliError(`Cannot read ${path}: ${(error as Error).message}`, EXIT_USAGE)
  }
  try {
    return await readHeader(path, file)
  } catch (error) {
    await file.close()
    throw error
  }
}

async function readHeader (path: string, file: FileHandle): Promise<WavFile> {
  const { size } = await file.stat()
  const front = new Uint8Array(Math.min(size, MAX_WAV_HEADER_BYTES + 8))
  await file.read(front, 0, front.length, 0)
  const header = parseWavHeader(front)
  if (header.status === 'need-more') throw new CliError(`${path} is not a complete WAV file: it ends inside its header (${size} bytes)`, EXIT_USAGE)
  if (header.status === 'invalid') throw new CliError(`${path}: ${header.message}`, EXIT_USAGE)
  const { format, dataOffset } = header
  // Bytes per sample rounded up: a 12-bit or 20-bit WAV is sent anyway and the server says
  // what it accepts (the CLI never second-guesses the server's limits).
  const bytesPerFrame = format.channels * Math.ceil(format.bit_depth / 8)
  if (bytesPerFrame === 0) throw new CliError(`${path}: the WAV header declares ${format.channels} channels of ${format.bit_depth} bits`, EXIT_USAGE)
  // An unknown length (written to a pipe) or a length past the end (a cut recording) means
  // "to the end of the file"; a trailing part frame is not sent (the server would report it).
  const available = size - dataOffset
  const declared = header.dataBytes ?? available
  const dataBytes = Math.max(0, Math.min(declared, available))
  const frames = Math.floor(dataBytes / bytesPerFrame)
  const wholeBytes = frames * bytesPerFrame

  async function * chunks (chunkFrames: number): AsyncGenerator<Uint8Array> {
    const chunkBytes = Math.max(1, chunkFrames) * bytesPerFrame
    for (let at = 0; at < wholeBytes; at += chunkBytes) {
      // A fresh buffer per chunk: transports may still hold the previous one in a send queue.
      const chunk = new Uint8Array(Math.min(chunkBytes, wholeBytes - at))
      const { bytesRead } = await file.read(chunk, 0, chunk.length, dataOffset + at)
      if (bytesRead === 0) return
      yield bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead)
    }
  }

  async function sha256Of (bytes: number): Promise<string> {
    const hash = createHash('sha256')
    const end = Math.max(0, Math.min(bytes, wholeBytes))
    const buffer = new Uint8Array(Math.min(end, 1 << 20))
    for (let at = 0; at < end;) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, end - at), dataOffset + at)
      if (bytesRead === 0) break
      hash.update(buffer.subarray(0, bytesRead))
      at += bytesRead
    }
    return hash.digest('hex')
  }

  return {
    name: path,
    path,
    format,
    bytesPerFrame,
    dataBytes: wholeBytes,
    frames,
    duration: frames / format.sample_rate,
    totalSeconds: frames / format.sample_rate,
    chunks,
    sha256Of,
    close: () => file.close()
  }
}

// "16000 Hz, 2 ch, s16" and the like, for the summary.
export function describeFormat (format: AudioFormat): string {
  const encoding = format.encoding ?? 'pcm'
  const sample = encoding !== 'pcm'
    ? encoding
    : format.is_float ? `f${format.bit_depth}` : format.bit_depth === 8 ? 'u8' : `s${format.bit_depth}`
  return `${format.sample_rate} Hz, ${format.channels} ch, ${sample}`
}
