import { createHash, type Hash } from 'node:crypto'
import type { EndEvent } from '../../schemas/events.ts'

// Proof of delivery: the audio bytes exactly as they were handed to the transport, counted and
// hashed in order. The server does the same with the bytes it takes and reports both in `end`
// (bytes_received, sha256). For a WAV file these are the data chunk's bytes on every transport
// (the header is never sent: the format travels in the start message, the query or the create
// body), so the two must be equal.
export class SentAudio {
  readonly #hash: Hash = createHash('sha256')
  #bytes = 0

  add (chunk: Uint8Array): void {
    this.#hash.update(chunk)
    this.#bytes += chunk.length
  }

  get bytes (): number { return this.#bytes }

  // Hex digest of everything added so far; more may be added after.
  sha256 (): string { return this.#hash.copy().digest('hex') }
}

export type Delivery =
  // The server's `end` has no sha256 (an older server): nothing to say.
  | { status: 'unverified' }
  // Every byte sent arrived, in order.
  | { status: 'complete', line: string }
  // The server stopped taking audio (shutdown) and took the start of what was sent, intact.
  | { status: 'partial', line: string, takenBytes: number }
  // What the server took is not what was sent.
  | { status: 'mismatch', line: string }

export interface DeliveryContext {
  // A `shutdown` event arrived: the server stopped taking audio on purpose, so it may have taken
  // only the start of what was sent (whatever was in flight then was not taken).
  shutdown: boolean
  // Hex SHA-256 of the first `bytes` bytes sent; null when the source no longer knows (stdin
  // keeps a bounded window), which reads as "not shown to be intact".
  sha256OfFirst: (bytes: number) => Promise<string | null>
}

export async function verifyDelivery (sent: { bytes: number, sha256: string }, end: EndEvent, context: DeliveryContext): Promise<Delivery> {
  // Fields an older server does not send are read as absent, whatever the type says.
  const reported = end as Partial<Pick<EndEvent, 'sha256' | 'bytes_received' | 'dropped'>>
  if (typeof reported.sha256 !== 'string') return { status: 'unverified' }
  const theirs = reported.sha256.toLowerCase()
  const taken = reported.bytes_received
  if (taken === sent.bytes && theirs === sent.sha256) return { status: 'complete', line: `sha256 matches: all ${taken} bytes arrived` }
  // The server took fewer bytes than were sent: were they at least the first ones, intact?
  const prefixIntact = typeof taken === 'number' && Number.isInteger(taken) && taken >= 0 && taken < sent.bytes &&
    await context.sha256OfFirst(taken) === theirs
  if (prefixIntact && context.shutdown) {
    return {
      status: 'partial',
      takenBytes: taken,
      line: `sha256 matches: the first ${taken} of the ${sent.bytes} bytes sent arrived (the server stopped taking audio when it began shutting down)`
    }
  }
  let line = `sha256 MISMATCH: sent ${sent.bytes} bytes (sha256 ${sent.sha256}), the server took ${taken ?? 'an unknown number of'} bytes (sha256 ${theirs})`
  if (prefixIntact) line += `; those are the first ${taken} bytes sent, intact: the last ${sent.bytes - taken} were not taken`
  const dropped = Object.entries(reported.dropped ?? {}).filter(([, bytes]) => bytes > 0)
  if (dropped.length > 0) line += ` (the server dropped ${dropped.map(([reason, bytes]) => `${bytes} bytes: ${reason}`).join(', ')})`
  return { status: 'mismatch', line }
}
