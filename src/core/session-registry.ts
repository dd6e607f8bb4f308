import { randomBytes } from 'node:crypto'
import type { Transport } from '../../schemas/messages.ts'
import type { Stream } from './stream.ts'

// The sessions open right now, by transport: what health, metrics, shutdown and the tests'
// leak checks read. A session leaves it the moment it ends or is aborted.
export class SessionRegistry {
  readonly #entries = new Map<string, Stream>()
  readonly #listeners = new Set<(entry: Stream, change: 'opened' | 'closed') => void>()

  // 128 random bits, URL-safe: paired sessions use the id as their only credential.
  static newId (): string {
    return randomBytes(16).toString('base64url')
  }

  add (entry: Stream): void {
    this.#entries.set(entry.id, entry)
    for (const listener of this.#listeners) listener(entry, 'opened')
    void entry.closed.then(() => {
      this.#entries.delete(entry.id)
      for (const listener of this.#listeners) listener(entry, 'closed')
    })
  }

  get size (): number { return this.#entries.size }

  count (transport: Transport): number {
    let n = 0
    for (const entry of this.#entries.values()) if (entry.transport === transport) n++
    return n
  }

  /** Open sessions of one client address. */
  countFor (client: string): number {
    let n = 0
    for (const entry of this.#entries.values()) if (entry.client === client) n++
    return n
  }

  entries (): IterableIterator<Stream> { return this.#entries.values() }

  onChange (listener: (entry: Stream, change: 'opened' | 'closed') => void): void {
    this.#listeners.add(listener)
  }
}
