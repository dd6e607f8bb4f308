import type { EndEvent, StreamEvent } from '../../../schemas/events.ts'
import { refusalOf, type CliError } from '../cli-error.ts'
import type { StreamRequest } from './transport.ts'

// How a transport lets go of its connection once the stream is decided.
export interface StreamRelease {
  afterFail: (error: CliError) => void
  afterEnd: () => void
}

// One stream's result, shared by the transports. It is decided once: by the first failure, by a
// refusal event or by the `end` event, and whatever comes after is ignored. A failure may settle
// it while the upload still runs; `result` is awaited when the upload is done.
export class StreamOutcome {
  readonly result: Promise<EndEvent>
  readonly #resolve: (end: EndEvent) => void
  readonly #reject: (error: CliError) => void
  readonly #request: Pick<StreamRequest, 'onEvent'>
  readonly #release: StreamRelease
  #settled = false
  #shutdown = false

  constructor (request: Pick<StreamRequest, 'onEvent'>, release: StreamRelease) {
    const { promise, resolve, reject } = Promise.withResolvers<EndEvent>()
    // Settled while the upload may still run; awaited at the end (no unhandled rejection).
    promise.catch(() => {})
    this.result = promise
    this.#resolve = resolve
    this.#reject = reject
    this.#request = request
    this.#release = release
  }

  get settled (): boolean {
    return this.#settled
  }

  // A `shutdown` event arrived: the server takes no more audio, and its results and `end` follow.
  get shutdown (): boolean {
    return this.#shutdown
  }

  fail (error: CliError): void {
    if (this.#settled) return
    this.#settled = true
    this.#reject(error)
    this.#release.afterFail(error)
  }

  // A server event: handed to the caller, then a refusal fails the stream and `end` resolves it.
  receive (event: StreamEvent): void {
    if (this.#settled) return
    if (event.type === 'shutdown') this.#shutdown = true
    this.#request.onEvent(event)
    const refusal = refusalOf(event)
    if (refusal !== null) this.fail(refusal)
    else if (event.type === 'end') {
      this.#settled = true
      this.#resolve(event)
      this.#release.afterEnd()
    }
  }
}
