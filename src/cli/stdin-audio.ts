import { createHash, type Hash } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import { MAX_WAV_HEADER_BYTES, parseWavHeader } from '../audio/wav-header.ts'
import type { AudioSource } from './audio-source.ts'
import { CliError, EXIT_USAGE } from './cli-error.ts'
import { RAW_FORMAT_FLAGS } from './raw-format.ts'

// Audio from a pipe (`sox -d ... | streamer-client -`): a WAV stream if it starts with
// RIFF....WAVE (its header gives the format, and may declare an unknown length, as sox writes
// to a pipe), otherwise raw PCM described by the raw-format flags. Read as it arrives, never
// held whole: a live source may run for hours. A pipe cannot be read twice, so the hash of the
// start of what was sent (needed only when the server took less than that) is kept for a
// bounded window of the most recent audio.

// The most recent audio kept to hash a prefix of what was sent. The server takes all but what
// was in flight when it stopped (a few chunks), far less than this.
const PREFIX_WINDOW_BYTES = 8 * 1024 * 1024

export async function openStdin (input: Readable & { isTTY?: boolean }, rawFormat: AudioFormat | null): Promise<AudioSource> {
  if (input.isTTY === true) {
    throw new CliError('`-` reads the audio from stdin, which is a terminal: pipe audio into it, e.g. `sox -d -t wav - | streamer-client -`', EXIT_USAGE)
  }
  const reader = new PipeReader(input)
  await reader.fill(12)
  if (reader.buffered === 0) throw new CliError('stdin is empty: no audio to send', EXIT_USAGE)
  const front = reader.peek(12)
  const isWav = ascii(front.subarray(0, 4)) === 'RIFF' && ascii(front.subarray(8, 12)) === 'WAVE'
  let format: AudioFormat
  let limit: number | null = null // bytes of audio the WAV header declares; null: to the end
  if (isWav) {
    if (rawFormat !== null) {
      throw new CliError(`stdin is a WAV stream, whose header gives its format: drop ${RAW_FORMAT_FLAGS.join(', ')} (they describe raw PCM only)`, EXIT_USAGE)
    }
    const header = await readWavHeader(reader)
    format = header.format
    limit = header.dataBytes
  } else {
    if (rawFormat === null) {
      throw new CliError(`stdin is not a WAV stream (no RIFF/WAVE header): for raw PCM give its format with ${RAW_FORMAT_FLAGS.map((flag) => `${flag} ...`).join(' ')}, e.g. --sample-rate 16000 --channels 1 --sample-format s16le`, EXIT_USAGE)
    }
    format = rawFormat
  }
  const bytesPerFrame = format.channels * Math.ceil(format.bit_depth / 8)
  if (bytesPerFrame === 0) throw new CliError(`stdin: the WAV header declares ${format.channels} channels of ${format.bit_depth} bits`, EXIT_USAGE)

  let read = 0 // whole-frame bytes handed out so far
  let ended = false
  const window = new PrefixHashes()

  async function * chunks (chunkFrames: number): AsyncGenerator<Uint8Array> {
    const chunkBytes = Math.max(1, chunkFrames) * bytesPerFrame
    while (true) {
      const left = limit === null ? chunkBytes : Math.min(chunkBytes, limit - read)
      if (left <= 0) break
      const got = await reader.fill(left)
      // At the end of the pipe a last short chunk goes out in whole frames; a trailing part
      // frame is not sent (as for a file).
      const whole = Math.min(left, got - got % bytesPerFrame)
      if (whole === 0) break
      const chunk = reader.take(whole)
      read += whole
      window.add(chunk)
      yield chunk
      if (whole < left) break
    }
    ended = true
  }

  return {
    name: 'stdin',
    format,
    bytesPerFrame,
    get dataBytes () { return read },
    get duration () { return read / bytesPerFrame / format.sample_rate },
    get totalSeconds () { return ended ? read / bytesPerFrame / format.sample_rate : null },
    chunks,
    sha256Of: async (bytes) => window.sha256Of(bytes),
    close: async () => {
      // Whatever still writes into the pipe (sox -d) gets EPIPE and stops; nothing here holds
      // the process open.
      input.destroy()
    }
  }
}

async function readWavHeader (reader: PipeReader): Promise<{ format: AudioFormat, dataBytes: number | null }> {
  // The header is read a piece at a time until the data chunk starts; it is never sent.
  for (let want = 44; ; want = Math.min(want * 2, MAX_WAV_HEADER_BYTES + 8)) {
    const got = await reader.fill(want)
    const header = parseWavHeader(reader.peek(got))
    if (header.status === 'ok') {
      reader.take(header.dataOffset)
      return { format: header.format, dataBytes: header.dataBytes }
    }
    if (header.status === 'invalid') throw new CliError(`stdin: ${header.message}`, EXIT_USAGE)
    if (got < want || want === MAX_WAV_HEADER_BYTES + 8) throw new CliError(`stdin is not a complete WAV stream: it ends inside its header (${got} bytes)`, EXIT_USAGE)
  }
}

const ascii = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1')

// Bytes from a stream on demand: fill(n) waits until n are buffered (or the stream ended).
class PipeReader {
  readonly #iterator: AsyncIterator<Buffer>
  #pieces: Buffer[] = []
  #buffered = 0
  #done = false

  constructor (input: Readable) {
    this.#iterator = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  }

  get buffered (): number { return this.#buffered }

  // Resolves with the bytes buffered: n, or fewer at the end of the stream.
  async fill (n: number): Promise<number> {
    while (this.#buffered < n && !this.#done) {
      let next: IteratorResult<Buffer>
      try {
        next = await this.#iterator.next()
      } catch (error) {
        throw new CliError(`Cannot read stdin: ${(error as Error).message}`, EXIT_USAGE)
      }
      if (next.done === true) {
        this.#done = true
      } else if (next.value.length > 0) {
        this.#pieces.push(next.value)
        this.#buffered += next.value.length
      }
    }
    return Math.min(n, this.#buffered)
  }

  peek (n: number): Uint8Array {
    this.#pieces = [Buffer.concat(this.#pieces)]
    return (this.#pieces[0] as Buffer).subarray(0, Math.min(n, this.#buffered))
  }

  // A fresh copy: transports may still hold the chunk in a send queue.
  take (n: number): Uint8Array {
    const all = Buffer.concat(this.#pieces)
    const chunk = new Uint8Array(all.subarray(0, n))
    const rest = all.subarray(n)
    this.#pieces = rest.length > 0 ? [rest] : []
    this.#buffered = rest.length
    return chunk
  }
}

// The hash state of everything before a window of recent chunks, and the window itself: the
// SHA-256 of any prefix ending inside the window can still be computed.
class PrefixHashes {
  readonly #before: Hash = createHash('sha256')
  #beforeBytes = 0
  readonly #window: Uint8Array[] = []
  #windowBytes = 0

  add (chunk: Uint8Array): void {
    this.#window.push(chunk)
    this.#windowBytes += chunk.length
    while (this.#windowBytes - (this.#window[0]?.length ?? 0) >= PREFIX_WINDOW_BYTES) {
      const oldest = this.#window.shift() as Uint8Array
      this.#before.update(oldest)
      this.#beforeBytes += oldest.length
      this.#windowBytes -= oldest.length
    }
  }

  sha256Of (bytes: number): string | null {
    if (bytes < this.#beforeBytes) return null
    const hash = this.#before.copy()
    let left = Math.min(bytes, this.#beforeBytes + this.#windowBytes) - this.#beforeBytes
    for (const chunk of this.#window) {
      if (left <= 0) break
      hash.update(chunk.subarray(0, Math.min(left, chunk.length)))
      left -= chunk.length
    }
    return hash.digest('hex')
  }
}
