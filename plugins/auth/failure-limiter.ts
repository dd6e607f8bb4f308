// Bad credentials, counted per client address in a sliding window: after `max` failures within
// `windowMs`, the address is refused (429 rate_limited) until the oldest of them leaves the
// window. Only failures are counted, so a client with a valid key is never slowed by its own
// traffic; a blocked address is refused before its credentials are checked, so guessing gains
// nothing while it waits.

// Addresses remembered at most: past it, the ones whose failures are oldest are forgotten, so a
// flood of addresses (an IPv6 prefix) costs bounded memory.
const MAX_ADDRESSES = 100_000

export interface FailureLimiterOptions {
  max: number
  windowMs: number
  now?: () => number
}

export class FailureLimiter {
  readonly #max: number
  readonly #windowMs: number
  readonly #now: () => number
  // Failure times per address, oldest first; an address leaves once its window is empty.
  readonly #failures = new Map<string, number[]>()

  constructor (options: FailureLimiterOptions) {
    this.#max = options.max
    this.#windowMs = options.windowMs
    this.#now = options.now ?? Date.now
  }

  /** Seconds until `address` may try again, or undefined if it is not blocked. */
  retryAfter (address: string): number | undefined {
    const times = this.#recent(address)
    if (times.length < this.#max) return undefined
    const oldest = times[times.length - this.#max] as number
    return Math.max(1, Math.ceil((oldest + this.#windowMs - this.#now()) / 1000))
  }

  /** `address` sent bad credentials. */
  fail (address: string): void {
    const times = this.#recent(address)
    times.push(this.#now())
    // Only the last `max` matter for the verdict.
    if (times.length > this.#max) times.splice(0, times.length - this.#max)
    // Re-inserted, so the map's order is the order of the latest failure.
    this.#failures.delete(address)
    this.#failures.set(address, times)
    if (this.#failures.size > MAX_ADDRESSES) this.#sweep()
  }

  get addresses (): number { return this.#failures.size }

  #recent (address: string): number[] {
    const times = this.#failures.get(address)
    if (times === undefined) return []
    const since = this.#now() - this.#windowMs
    let drop = 0
    while (drop < times.length && (times[drop] as number) <= since) drop++
    if (drop > 0) times.splice(0, drop)
    if (times.length === 0) this.#failures.delete(address)
    return times
  }

  #sweep (): void {
    for (const address of [...this.#failures.keys()]) this.#recent(address)
    // Still too many: forget those whose last failure is oldest (the map's first entries).
    for (const address of this.#failures.keys()) {
      if (this.#failures.size <= MAX_ADDRESSES) break
      this.#failures.delete(address)
    }
  }
}
