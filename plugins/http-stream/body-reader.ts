import type { IncomingMessage } from 'node:http'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import { ApiError } from '../../schemas/error-codes.ts'
import { MAX_WAV_HEADER_BYTES, parseWavHeader } from '../../src/audio/wav-header.ts'

export function tooLarge (max: number, field: string): ApiError {
  return new ApiError('frame_too_large', `The upload is larger than the server's limit of ${max} bytes (limits.max_upload_bytes)`, { field })
}

export interface BodyConsumer {
  data: (chunk: Buffer) => void
  end: () => void
  fail: (error: ApiError) => void // the byte limit was passed
  aborted: () => void // the client reset or dropped the upload
}

// The request body as it arrives, counted against the upload limit. Before a consumer is
// attached (while the WAV header is awaited) bytes are held; then they are handed on as they
// come, with no buffering of our own.
export class BodyReader {
  readonly #max: number
  #held: Buffer[] = []
  #received = 0
  #ended = false
  #aborted = false
  #stopped = false
  #consumer: BodyConsumer | null = null
  #wake: (() => void) | null = null

  constructor (raw: IncomingMessage, max: number) {
    this.#max = max
    raw.on('data', this.#onData)
    raw.once('end', () => {
      this.#ended = true
      this.#wakeUp()
      if (!this.#stopped) this.#consumer?.end()
    })
    // 'aborted' is the HTTP/1.1 and HTTP/2 compat signal of a client reset mid-body; a request
    // that closes before its end was dropped too.
    const onAbort = (): void => {
      if (this.#ended || this.#aborted) return
      this.#aborted = true
      this.#wakeUp()
      if (!this.#stopped) this.#consumer?.aborted()
    }
    raw.once('aborted', onAbort)
    raw.once('close', onAbort)
    raw.on('error', onAbort)
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#stopped) return
    this.#received += chunk.length
    if (this.#received > this.#max) {
      this.#stopped = true
      if (this.#consumer !== null) this.#consumer.fail(tooLarge(this.#max, 'body'))
      else this.#wakeUp()
      return
    }
    if (this.#consumer !== null) this.#consumer.data(chunk)
    else {
      this.#held.push(chunk)
      this.#wakeUp()
    }
  }

  #wakeUp (): void {
    const wake = this.#wake
    this.#wake = null
    wake?.()
  }

  // Waits for the front of the body to hold a whole WAV header (or to prove it is not one).
  async readWavHeader (): Promise<{ format: AudioFormat, dataOffset: number, dataBytes: number | null }> {
    while (true) {
      if (this.#stopped) throw tooLarge(this.#max, 'body')
      if (this.#held.length > 1) this.#held = [Buffer.concat(this.#held)]
      const front = this.#held[0] ?? Buffer.alloc(0)
      const header = parseWavHeader(front)
      if (header.status === 'ok') return header
      if (header.status === 'invalid') throw new ApiError('unsupported_format', header.message, { field: 'body' })
      if (this.#ended) throw new ApiError('unsupported_format', `The body ended after ${front.length} bytes, inside the WAV header`, { field: 'body' })
      if (this.#aborted) throw new ApiError('invalid_message', 'The upload was aborted')
      if (front.length > MAX_WAV_HEADER_BYTES) throw new ApiError('unsupported_format', `No WAV data chunk within the first ${MAX_WAV_HEADER_BYTES} bytes`, { field: 'body' })
      await new Promise<void>((resolve) => { this.#wake = resolve })
    }
  }

  // Drops the first `bytes` held bytes (the WAV header).
  skip (bytes: number): void {
    const all = Buffer.concat(this.#held)
    this.#held = [all.subarray(bytes)]
  }

  // From now on every chunk goes to the consumer, starting with what was held.
  consume (consumer: BodyConsumer): void {
    const held = this.#held
    this.#held = []
    for (const chunk of held) if (chunk.length > 0) consumer.data(chunk)
    this.#consumer = consumer
    if (this.#stopped) consumer.fail(tooLarge(this.#max, 'body'))
    else if (this.#aborted) consumer.aborted()
    else if (this.#ended) consumer.end()
  }

  // No more bytes are wanted (the stream ended early or the client left).
  stop (): void {
    this.#stopped = true
  }
}
