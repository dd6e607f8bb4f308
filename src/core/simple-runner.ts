import { MODEL_SAMPLE_RATE } from '../../schemas/audio-format.ts'
import { uninitializedFloat32 } from '../audio/pcm-decoder.ts'
import type { ChannelRunner, RunnerOptions } from './channel-runner.ts'
import { inferenceErrorEvent, segmentEvent } from './inference-result.ts'
import { OrderedEvents } from './ordered-events.ts'

// A finalize's point in the stream (samples pushed when it was called) and its promise.
interface FinalizePoint { sample: number, resolve: (drained: Promise<void>) => void }

// Queued audio is copied into blocks of this many samples (16 KiB), recycled once taken.
const BLOCK_SAMPLES = 4096
// A stream more than this far ahead of real time is being sent faster than it plays (see #wake).
const AHEAD_SECONDS = 1

// Audio waiting for the model, FIFO, in recycled fixed-size blocks. Copying what arrives (a
// memcpy) instead of keeping the caller's arrays lets the caller reuse its arrays (the decoder
// does, see Session) and keeps a fast stream from churning array buffers: every buffer allocated
// counts towards V8's next full collection, and under a stream sent as fast as possible those
// collections (concurrent marking of the whole heap) cost about as much CPU as the main thread's
// own work. The blocks are few, long-lived and reused; what is taken goes out in a new buffer
// that is transferred to a model thread at once.
class SampleQueue {
  #blocks: Float32Array[] = [] // the first from #head, the last up to #tail
  #head = 0
  #tail = BLOCK_SAMPLES
  #length = 0
  readonly #spare: Float32Array[] = []
  readonly #maxSpare: number

  // Keeps at most `maxSpare` emptied blocks for reuse.
  constructor (maxSpare: number) {
    this.#maxSpare = maxSpare
  }

  get length (): number { return this.#length }

  push (samples: Float32Array): void {
    for (let at = 0; at < samples.length;) {
      if (this.#tail === BLOCK_SAMPLES) {
        this.#blocks.push(this.#spare.pop() ?? new Float32Array(BLOCK_SAMPLES))
        this.#tail = 0
      }
      const count = Math.min(BLOCK_SAMPLES - this.#tail, samples.length - at)
      ;(this.#blocks[this.#blocks.length - 1] as Float32Array).set(count === samples.length ? samples : samples.subarray(at, at + count), this.#tail)
      this.#tail += count
      at += count
    }
    this.#length += samples.length
  }

  // The first `samples` samples, removed, in a new buffer of their own (not zero-filled first:
  // every sample is written).
  take (samples: number): Float32Array {
    const out = uninitializedFloat32(samples)
    for (let filled = 0; filled < samples;) {
      const block = this.#blocks[0] as Float32Array
      const end = this.#blocks.length === 1 ? this.#tail : BLOCK_SAMPLES
      const count = Math.min(end - this.#head, samples - filled)
      out.set(this.#head === 0 && count === BLOCK_SAMPLES ? block : block.subarray(this.#head, this.#head + count), filled)
      filled += count
      this.#head += count
      if (this.#head === end) this.#release()
    }
    this.#length -= samples
    return out
  }

  clear (): void {
    while (this.#blocks.length > 0) this.#release()
    this.#length = 0
  }

  // The first block is used up: back to the spares.
  #release (): void {
    const block = this.#blocks.shift() as Float32Array
    if (this.#spare.length < this.#maxSpare) this.#spare.push(block)
    this.#head = 0
    if (this.#blocks.length === 0) this.#tail = BLOCK_SAMPLES
  }
}

// Simple mode: every sample goes through the model, in order. While the per-channel limit of
// inferences is in flight, arriving audio queues and is merged into one inference (batching);
// results are released in audio order, so segments tile the stream without gaps.
export class SimpleRunner implements ChannelRunner {
  readonly #options: RunnerOptions
  readonly #events: OrderedEvents
  readonly #maxInFlight: number
  readonly #maxChunk: number
  readonly #queue: SampleQueue
  #dispatched = 0 // samples handed to the model so far: the next segment's start
  #inFlight = 0
  #inFlightSamples = 0
  #aborted = false
  #allSent: (() => void) | null = null
  #pushed = 0 // samples pushed so far
  #startedAt: number | undefined // performance.now() at the first push
  #coalescing: NodeJS.Immediate | null = null // the end-of-turn dispatch (see #wake)
  // Pending finalizes: the samples pushed when each was called, and its promise.
  #finalizing: FinalizePoint[] = []

  constructor (options: RunnerOptions) {
    this.#options = options
    this.#events = new OrderedEvents(options.emit)
    this.#maxInFlight = options.services.limits.simple_max_in_flight
    this.#maxChunk = Math.max(1, Math.round(options.services.limits.simple_max_chunk_seconds * MODEL_SAMPLE_RATE))
    // Flow control keeps the queue near limits.max_buffered_seconds: spares for that much, so a
    // stream sent faster than real time reuses its blocks; a live stream only ever needs one or two.
    this.#queue = new SampleQueue(Math.ceil(options.services.limits.max_buffered_seconds * MODEL_SAMPLE_RATE / BLOCK_SAMPLES) + 1)
  }

  // `samples` are copied: the caller may reuse the array.
  push (samples: Float32Array): void {
    if (this.#aborted || samples.length === 0) return
    this.#queue.push(samples)
    this.#pushed += samples.length
    this.#startedAt ??= performance.now()
    this.#wake()
  }

  // Samples pushed and not yet handed to the model.
  get #queued (): number {
    return this.#queue.length
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
    if (this.#coalescing !== null) clearImmediate(this.#coalescing)
    this.#coalescing = null
    this.#queue.clear()
    this.#events.close()
    for (const point of this.#finalizing.splice(0)) point.resolve(Promise.resolve())
    this.#allSent?.()
  }

  // New audio or a free slot. A stream sent in real time (live) is dispatched at once, as it
  // comes, as before. One sent faster than real time (a file, a backlog: more than AHEAD_SECONDS
  // of audio beyond the time since its first push) is dispatched at the end of this turn of the
  // event loop (setImmediate, well under a millisecond away), merged with whatever else arrives
  // or frees up in it: such a client delivers several frames per socket read, and with a fast
  // model a thread's round trip is shorter than the time to read the next ones, so dispatching as
  // things came ran an inference for every frame or two, each costing 0.1-0.3 ms of CPU (model
  // pool, transfer to the thread, the result's event): more than decoding a 250 ms frame.
  // finish() and finalize() dispatch at once.
  #wake (): void {
    const ahead = this.#pushed / MODEL_SAMPLE_RATE - (performance.now() - (this.#startedAt ?? 0)) / 1000
    if (ahead <= AHEAD_SECONDS) {
      this.#dispatch()
    } else {
      this.#coalescing ??= setImmediate(() => {
        this.#coalescing = null
        this.#dispatch()
      })
    }
  }

  #dispatch (): void {
    this.#settleFinalized()
    while (this.#inFlight < this.#maxInFlight && this.#queued > 0 && !this.#aborted) {
      // An inference never spans a finalize point.
      const point = this.#finalizing[0]?.sample ?? Infinity
      const audio = this.#queue.take(Math.min(this.#queued, this.#maxChunk, point - this.#dispatched))
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
        this.#wake()
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

  // Faults go to the log, except the aborts of a stream the client left (expected, not faults).
  #faultLog (): ((error: unknown) => void) | undefined {
    return this.#options.signal.aborted ? undefined : this.#options.onFault
  }
}
