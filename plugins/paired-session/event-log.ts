import type { StreamEvent } from '../../schemas/events.ts'

export interface LoggedEvent {
  id: number // 1, 2, 3... in emission order; what SSE sends as `id:`
  event: StreamEvent
}

export interface Replay {
  events: LoggedEvent[]
  // Ids the client asked for that fell out of the buffer: [first, last] inclusive, or null.
  lost: [number, number] | null
}

// The events of one session with ids, keeping the last `capacity` for Last-Event-ID replay
// (a ring buffer: a long session costs a bounded amount of memory).
export class EventLog {
  readonly #capacity: number
  readonly #ring: Array<LoggedEvent | undefined>
  #lastId = 0

  constructor (capacity: number) {
    this.#capacity = capacity
    this.#ring = new Array<LoggedEvent | undefined>(capacity)
  }

  get lastId (): number { return this.#lastId }
  // The oldest id still held; lastId + 1 when nothing was logged yet.
  get firstKeptId (): number { return Math.max(1, this.#lastId - this.#capacity + 1) }

  append (event: StreamEvent): LoggedEvent {
    const logged = { id: ++this.#lastId, event }
    this.#ring[logged.id % this.#capacity] = logged
    return logged
  }

  // Everything after `afterId` (0: from the start) that is still held.
  since (afterId: number): Replay {
    const first = this.firstKeptId
    const from = Math.max(afterId + 1, first)
    const events: LoggedEvent[] = []
    for (let id = from; id <= this.#lastId; id++) events.push(this.#ring[id % this.#capacity] as LoggedEvent)
    return { events, lost: afterId + 1 < first ? [afterId + 1, first - 1] : null }
  }
}
