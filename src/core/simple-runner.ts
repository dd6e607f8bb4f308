import { MODEL_SAMPLE_RATE } from '../../schemas/audio-format.ts'
import type { ChannelRunner, RunnerOptions } from './channel-runner.ts'
import { inferenceErrorEvent, segmentEvent } from './inference-result.ts'
import { OrderedEvents } from './ordered-events.ts'

// A finalize's point in the stream (samples pushed when it was called) and its promise.
interface FinalizePoint { sample: number, resolve: (drained: Promise<void>) => void }

// Simple mode: every sample goes through the model, in order. While the per-channel limit of
// inferences is in flight, arriving audio queues and is merged into one inference (batching);
// results are released in audio order, so segments tile the stream without gaps.
export class SimpleRunner implements ChannelRunner {
  readonly #options: RunnerOptions
  readonly #events: OrderedEvents
  readonly #maxInFlight: number
  readonly #maxChunk: number
  #queue: Float32Array[] = []
  #queued = 0
  #dispatched = 0 // samples handed to the model so far: the next segment's start
  #inFlight = 0
  #inFlightSamples = 0
  #aborted = false
  #allSent: (() => void) | null = null
  // Pending finalizes: the samples pushed when each was called, and its promise.
  #finalizing: FinalizePoint[] = []

  constructor (options: RunnerOptions) {
    this.#options = options
    this.#events = new OrderedEvents(options.emit)
    this.#maxInFlight = options.services.limits.simple_max_in_flight
    this.#maxChunk = Math.max(1, Math.round(options.services.limits.simple_max_chunk_seconds * MODEL_SAMPLE_RATE))
  }

  push (samples: Float32Array): void {
    if (this.#aborted || samples.length === 0) return
    this.#queue.push(samples)
    this.#queued += samples.length
    this.#dispatch()
  }

  async finish (): Promise<void> {
    if (this.#queued > 0 && !this.#aborted) {
      await new Promise<void>((resolve) => {
        this.#allSent = resolve
        this.#dispatch()
      })
    }
    await this.#events.drained()
  }

  // Everything pushed so far goes to the model as soon as the in-flight limit allows (the limit
  // still holds: it protects the model pool), never merged with audio pushed after this call,
  // so the results this waits for are exactly those for the audio before it.
  finalize (): Promise<void> {
    if (this.#aborted) return Promise.resolve()
    const { promise, resolve } = Promise.withResolvers<void>()
    this.#finalizing.push({ sample: this.#dispatched + this.#queued, resolve })
    this.#dispatch()
    return promise
  }

  get heldSamples (): number {
    return this.#queued + this.#inFlightSamples
  }

  abort (): void {
    this.#aborted = true
    this.#queue = []
    this.#queued = 0
    this.#events.close()
    for (const point of this.#finalizing.splice(0)) point.resolve(Promise.resolve())
    this.#allSent?.()
  }

  #dispatch (): void {
    this.#settleFinalized()
    while (this.#inFlight < this.#maxInFlight && this.#queued > 0 && !this.#aborted) {
      // An inference never spans a finalize point.
      const point = this.#finalizing[0]?.sample ?? Infinity
      const audio = this.#take(Math.min(this.#queued, this.#maxChunk, point - this.#dispatched))
      const span = { channel: this.#options.channel, startSample: this.#dispatched, endSample: this.#dispatched + audio.length }
      this.#dispatched = span.endSample
      this.#inFlight++
      this.#inFlightSamples += audio.length
      const samples = audio.length
      const result = this.#options.services.infer(audio, { signal: this.#options.signal }).then(
        (output) => segmentEvent(span, output),
        (error: unknown) => inferenceErrorEvent(span, error, this.#faultLog())
      ).finally(() => {
        this.#inFlight--
        this.#inFlightSamples -= samples
        this.#dispatch()
      })
      this.#events.enqueue(result)
      this.#settleFinalized()
    }
    if (this.#queued === 0) this.#allSent?.()
  }

  // A finalize whose audio has all been handed to the model resolves once its results are out.
  #settleFinalized (): void {
    while (this.#finalizing.length > 0 && (this.#finalizing[0] as FinalizePoint).sample <= this.#dispatched) {
      this.#finalizing.shift()?.resolve(this.#events.drained())
    }
  }

  // Merges queued chunks into one buffer the worker can own.
  #take (samples: number): Float32Array {
    const out = new Float32Array(samples)
    let filled = 0
    while (filled < samples) {
      const head = this.#queue[0] as Float32Array
      const need = samples - filled
      if (head.length <= need) {
        out.set(head, filled)
        filled += head.length
        this.#queue.shift()
      } else {
        out.set(head.subarray(0, need), filled)
        this.#queue[0] = head.subarray(need)
        filled += need
      }
    }
    this.#queued -= samples
    return out
  }

  // Faults go to the log, except the aborts of a stream the client left (expected, not faults).
  #faultLog (): ((error: unknown) => void) | undefined {
    return this.#options.signal.aborted ? undefined : this.#options.onFault
  }
}
