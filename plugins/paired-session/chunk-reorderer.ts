import { ApiError } from '../../schemas/error-codes.ts'

export type OfferOutcome =
  | { status: 'applied', ready: Uint8Array[] } // `ready`: the chunk and any held ones it unblocked, in seq order
  | { status: 'held' } // waiting for an earlier seq
  | { status: 'duplicate' } // already applied or already held: a retry, ignored

// Puts chunks back in `seq` order. A chunk past a gap is held until the gap fills, but only
// within `window` chunks of the highest contiguous seq and `maxBytes` of held audio: a client
// that lost a chunk for good must not make the server hoard its audio.
export class ChunkReorderer {
  readonly #window: number
  readonly #maxBytes: number
  readonly #held = new Map<number, Uint8Array>()
  #heldBytes = 0
  #accepted = -1 // highest seq such that every seq <= it was applied; -1 before the first

  constructor (options: { window: number, maxBytes: number }) {
    this.#window = options.window
    this.#maxBytes = options.maxBytes
  }

  get acceptedSeq (): number { return this.#accepted }
  get heldBytes (): number { return this.#heldBytes }
  get heldSeqs (): number[] { return [...this.#held.keys()].sort((a, b) => a - b) }

  // Throws ApiError 409 when the chunk is too far ahead or would overflow the held bytes.
  offer (seq: number, bytes: Uint8Array): OfferOutcome {
    if (seq <= this.#accepted || this.#held.has(seq)) return { status: 'duplicate' }
    if (seq === this.#accepted + 1) {
      const ready = [bytes]
      this.#accepted = seq
      let next = this.#held.get(this.#accepted + 1)
      while (next !== undefined) {
        this.#held.delete(this.#accepted + 1)
        this.#heldBytes -= next.length
        ready.push(next)
        this.#accepted++
        next = this.#held.get(this.#accepted + 1)
      }
      return { status: 'applied', ready }
    }
    const missing = this.#accepted + 1
    const limit = this.#accepted + this.#window
    if (seq > limit) {
      throw new ApiError('conflict', `seq ${seq} is too far ahead: chunks up to seq ${this.#accepted} are applied and at most ${this.#window} chunks past that are held (seq ${missing} to ${limit}); send seq ${missing} first`, { field: 'seq' })
    }
    if (this.#heldBytes + bytes.length > this.#maxBytes) {
      throw new ApiError('conflict', `Holding seq ${seq} would keep more than ${this.#maxBytes} bytes waiting for seq ${missing}; send seq ${missing} first`, { field: 'seq' })
    }
    this.#held.set(seq, bytes)
    this.#heldBytes += bytes.length
    return { status: 'held' }
  }

  // Drops whatever waits behind a gap (the stream is ending); returns the seqs dropped.
  discardHeld (): number[] {
    const seqs = this.heldSeqs
    this.#held.clear()
    this.#heldBytes = 0
    return seqs
  }
}
