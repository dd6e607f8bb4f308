import {
  VAD_CONTEXT_SAMPLES,
  VAD_FRAME_SAMPLES,
  VAD_STATE_SIZE,
  type VadResult,
  type VadTask
} from './silero-vad.ts'

export type { VadResult, VadTask } from './silero-vad.ts'

/** Runs one task in a worker (vad-worker.ts); transferList holds the task's one buffer. */
export type VadTaskRunner = (task: VadTask, transferList: ArrayBuffer[]) => Promise<VadResult>

export interface VadBatcherOptions {
  /** Most streams in one worker task; more pending streams in one tick make several tasks. */
  maxBatch?: number
  /**
   * Tasks in flight at once (the VAD threads). While every thread is busy, requests wait here
   * and go out together when one frees up: under load the batches grow by themselves, and an
   * idle server sends each request at once.
   */
  maxInFlight?: number
}

interface Pending {
  stream: VadStream
  generation: number
  frames: Float32Array
  context: Float32Array
  state: Float32Array
  resolve: (probabilities: Float32Array) => void
  reject: (error: unknown) => void
}

/**
 * Collects the requests of all streams made in one event-loop turn and sends them to the worker
 * as one task: Silero runs a batch of B streams for about a third of the per-frame cost of B runs.
 * Nothing here blocks: the ONNX session only ever runs in a worker.
 */
export class VadBatcher {
  readonly #run: VadTaskRunner
  readonly #maxBatch: number
  readonly #maxInFlight: number
  #pending: Pending[] = []
  #scheduled = false
  #inFlight = 0

  constructor (run: VadTaskRunner, options: VadBatcherOptions = {}) {
    const maxBatch = options.maxBatch ?? 64
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError('maxBatch must be a positive integer')
    const maxInFlight = options.maxInFlight ?? Infinity
    if (!(maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1')
    this.#run = run
    this.#maxBatch = maxBatch
    this.#maxInFlight = maxInFlight
  }

  createStream (): VadStream {
    return new VadStream(this)
  }

  /** @internal used by VadStream */
  enqueue (request: Pending): void {
    this.#pending.push(request)
    if (!this.#scheduled) {
      this.#scheduled = true
      // setImmediate, not a microtask: it runs after the poll phase, so the audio of every socket
      // read in this turn of the loop lands in the same batch.
      setImmediate(() => this.#dispatch())
    }
  }

  #dispatch (): void {
    this.#scheduled = false
    while (this.#pending.length > 0 && this.#inFlight < this.#maxInFlight) {
      this.#send(this.#pending.splice(0, this.#maxBatch))
    }
  }

  // A task settled: a thread is free for what waited meanwhile (gathered until the end of this
  // turn of the loop, like any other dispatch).
  #taskDone (): void {
    this.#inFlight--
    if (this.#pending.length > 0 && !this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => { this.#dispatch() })
    }
  }

  #send (batch: Pending[]): void {
    const totalFrames = batch.reduce((sum, p) => sum + p.frames.length, 0)
    // One buffer for frames, contexts and states, so one transfer moves the whole task and the
    // callers' own arrays are never detached.
    const b = batch.length
    const buffer = new ArrayBuffer((totalFrames + b * (VAD_CONTEXT_SAMPLES + VAD_STATE_SIZE)) * Float32Array.BYTES_PER_ELEMENT)
    const frames = new Float32Array(buffer, 0, totalFrames)
    const contexts = new Float32Array(buffer, totalFrames * 4, b * VAD_CONTEXT_SAMPLES)
    const states = new Float32Array(buffer, (totalFrames + b * VAD_CONTEXT_SAMPLES) * 4, b * VAD_STATE_SIZE)
    const steps: number[] = []
    let offset = 0
    batch.forEach((p, i) => {
      frames.set(p.frames, offset)
      offset += p.frames.length
      contexts.set(p.context, i * VAD_CONTEXT_SAMPLES)
      states.set(p.state, i * VAD_STATE_SIZE)
      steps.push(p.frames.length / VAD_FRAME_SAMPLES)
    })

    let task: Promise<VadResult>
    this.#inFlight++
    try {
      task = this.#run({ steps, frames, contexts, states }, [buffer])
    } catch (error) {
      task = Promise.reject(error)
    }
    task.finally(() => { this.#taskDone() }).catch(() => {})
    task.then(result => {
      let at = 0
      batch.forEach((p, i) => {
        const n = steps[i] as number
        p.stream.settle(p.generation,
          result.contexts.subarray(i * VAD_CONTEXT_SAMPLES, (i + 1) * VAD_CONTEXT_SAMPLES),
          result.states.subarray(i * VAD_STATE_SIZE, (i + 1) * VAD_STATE_SIZE))
        // slice: each caller gets its own small array, not a view that pins the whole result.
        p.resolve(result.probabilities.slice(at, at + n))
        at += n
      })
    }, (error: unknown) => {
      for (const p of batch) p.reject(error)
    })
  }
}

/**
 * One audio stream's VAD: keeps Silero's context (the last 64 samples) and LSTM state between
 * calls. Calls must be sequential (await each before the next): frame t depends on frame t-1.
 */
export class VadStream {
  readonly #batcher: VadBatcher
  #context = new Float32Array(VAD_CONTEXT_SAMPLES)
  #state = new Float32Array(VAD_STATE_SIZE)
  // Bumped by reset(): a result of a call made before the reset must not restore the old state.
  #generation = 0
  #busy = false

  constructor (batcher: VadBatcher) {
    this.#batcher = batcher
  }

  /**
   * frames: k * 512 samples (k >= 1) of 16 kHz mono audio in [-1, 1]. Resolves with k speech
   * probabilities. If the worker fails the promise rejects and the stream's state is unchanged.
   */
  process (frames: Float32Array): Promise<Float32Array> {
    if (frames.length === 0 || frames.length % VAD_FRAME_SAMPLES !== 0) {
      return Promise.reject(new RangeError(`VAD needs a whole number of ${VAD_FRAME_SAMPLES}-sample frames, got ${frames.length} samples`))
    }
    if (this.#busy) {
      return Promise.reject(new Error('VadStream.process called before the previous call settled'))
    }
    this.#busy = true
    return new Promise<Float32Array>((resolve, reject) => {
      this.#batcher.enqueue({
        stream: this,
        generation: this.#generation,
        frames,
        context: this.#context,
        state: this.#state,
        resolve: probabilities => { this.#busy = false; resolve(probabilities) },
        reject: error => { this.#busy = false; reject(error) }
      })
    })
  }

  /** Forget the audio seen so far (a new utterance source; Silero's reset_states). */
  reset (): void {
    this.#generation++
    this.#context = new Float32Array(VAD_CONTEXT_SAMPLES)
    this.#state = new Float32Array(VAD_STATE_SIZE)
  }

  /** @internal called by VadBatcher with the state after the frames it ran. */
  settle (generation: number, context: Float32Array, state: Float32Array): void {
    if (generation !== this.#generation) return
    this.#context = context.slice()
    this.#state = state.slice()
  }
}
