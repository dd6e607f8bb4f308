import { randomBytes } from 'node:crypto'
import type { Session } from './session.ts'

export type Transport = 'websocket' | 'http' | 'paired'

export interface SessionEntry {
  id: string
  transport: Transport
  session: Session
  openedAt: number
}

// The sessions open right now, by transport: what health, metrics, shutdown and the tests'
// leak checks read. A session leaves it the moment it ends or is aborted.
export class SessionRegistry {
  readonly #entries = new Map<string, SessionEntry>()
  readonly #listeners = new Set<(entry: SessionEntry, change: 'opened' | 'closed') => void>()

  // 128 random bits, URL-safe: paired sessions use the id as their only credential.
  static newId (): string {
    return randomBytes(16).toString('base64url')
  }

  add (transport: Transport, session: Session, id = SessionRegistry.newId()): SessionEntry {
    const entry: SessionEntry = { id, transport, session, openedAt: Date.now() }
    this.#entries.set(id, entry)
    for (const listener of this.#listeners) listener(entry, 'opened')
    void session.closed.then(() => {
      this.#entries.delete(id)
      for (const listener of this.#listeners) listener(entry, 'closed')
    })
    return entry
  }

  get size (): number { return this.#entries.size }

  count (transport: Transport): number {
    let n = 0
    for (const entry of this.#entries.values()) if (entry.transport === transport) n++
    return n
  }

  entries (): IterableIterator<SessionEntry> { return this.#entries.values() }

  onChange (listener: (entry: SessionEntry, change: 'opened' | 'closed') => void): void {
    this.#listeners.add(listener)
  }
}
