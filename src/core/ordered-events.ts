import type { StreamEvent } from '../../schemas/events.ts'

// Results of one channel finish out of order (inference jitter, several in flight) but must
// reach the client in audio order, an utterance's interims before its final. Each event is
// enqueued when its work begins, as a value or a promise, and released strictly in that order.
export class OrderedEvents {
  #tail: Promise<void> = Promise.resolve()
  #closed = false
  readonly #emit: (event: StreamEvent) => void

  constructor (emit: (event: StreamEvent) => void) {
    this.#emit = emit
  }

  enqueue (event: StreamEvent | Promise<StreamEvent | null> | null): void {
    const pending = Promise.resolve(event)
    this.#tail = this.#tail.then(async () => {
      const ready = await pending
      if (ready !== null && !this.#closed) this.#emit(ready)
    })
  }

  // Resolves once everything enqueued so far has been emitted (or dropped after close).
  drained (): Promise<void> {
    return this.#tail
  }

  // After close nothing more is emitted: the client went away.
  close (): void {
    this.#closed = true
  }
}
