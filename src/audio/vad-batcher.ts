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
  /**
   * At low load, requests that can wait are held until this long after the previous dispatch,
   * so the streams of a lightly loaded server share runs instead of each paying a worker round
   * trip and an unbatched Silero run (on a 2-core VM, 10 streams: ~104 tasks a second of one
   * stream each without it). 0 (the default) sends each request at once.
   */
  gatherMs?: number
  /**
   * Pending frames (all streams) that are worth a run by themselves: with this many waiting,
   * nothing is held (a busy server).
   */
  readyFrames?: number
  /**
   * A request of this many frames or more is never held: its stream is ahead of real time (a
   * fast client, or one catching up) and waits on throughput, not on company. A live stream's
   * requests are 3 frames (segmented-runner.ts).
   */
  aheadFrames?: number
}

/** How a request may be scheduled. */
export interface VadProcessOptions {
  /**
   * The caller is waiting on these frames (the end of speech, a finalize, the end of the
   * stream): they go in the next run, never held for others to join.
   */
  urgent?: boolean
}

interface Pending {
  stream: VadStream
  generation: number
  urgent: boolean
  frames: Float32Array
  context: Float32Array
  state: Float32Array
  resolve: (probabilities: Float32Array) => void
  reject: (error: unknown) => void
}

/**
 * Collects the requests of all streams made in one event-loop turn (and, with gatherMs, since the
 * last dispatch) and sends them to the worker as one task: Silero runs a batch of B streams for
 * about a third of the per-frame cost of B runs.
 * Nothing here blocks: the ONNX session only ever runs in a worker.
 */
export class VadBatcher {
  readonly #run: VadTaskRunner
  readonly #maxBatch: number
  readonly #maxInFlight: number
  readonly #gatherMs: number
  readonly #readyFrames: number
  readonly #aheadFrames: number
  #pending: Pending[] = []
  #pendingFrames = 0
  #pendingUrgent = 0
  #pendingAhead = 0 // requests of aheadFrames or more
  // A dispatch is due: at the end of this turn of the loop (setImmediate) or, while requests are
  // held, when the gathering ends (setTimeout).
  #immediate: NodeJS.Immediate | null = null
  #timer: NodeJS.Timeout | null = null
  #inFlight = 0
  #lastDispatch = -Infinity

  constructor (run: VadTaskRunner, options: VadBatcherOptions = {}) {
    const maxBatch = options.maxBatch ?? 64
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError('maxBatch must be a positive integer')
    const maxInFlight = options.maxInFlight ?? Infinity
    if (!(maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1')
    const gatherMs = options.gatherMs ?? 0
    if (!(gatherMs >= 0) || !Number.isFinite(gatherMs)) throw new RangeError('gatherMs must be a finite number >= 0')
    this.#run = run
    this.#maxBatch = maxBatch
    this.#maxInFlight = maxInFlight
    this.#gatherMs = gatherMs
    this.#readyFrames = options.readyFrames ?? 24
    this.#aheadFrames = options.aheadFrames ?? 8
  }

  createStream (): VadStream {
    return new VadStream(this)
  }

  /** @internal used by VadStream */
  enqueue (request: Pending): void {
    this.#pending.push(request)
    this.#count(request, 1)
    this.#schedule()
  }

  // Keeps the pending totals #schedule decides on (kept, not recounted: it runs on every request);
  // `sign` is 1 as a request joins the pending ones and -1 as it leaves them in a batch.
  #count (request: Pending, sign: 1 | -1): void {
    const frames = request.frames.length / VAD_FRAME_SAMPLES
    this.#pendingFrames += sign * frames
    if (request.urgent) this.#pendingUrgent += sign
    if (frames >= this.#aheadFrames) this.#pendingAhead += sign
  }

  // Plans the next dispatch, if a thread is free for it: at the end of this turn of the loop
  // (setImmediate, not a microtask: it runs after the poll phase, so the audio of every socket
  // read in this turn lands in the same batch), or once the gathering since the last dispatch
  // is over. A task settling calls this again: what waited meanwhile goes out then.
  #schedule (): void {
    if (this.#immediate !== null || this.#pending.length === 0 || this.#inFlight >= this.#maxInFlight) return
    const wait = this.#pendingUrgent > 0 || this.#pendingAhead > 0 || this.#pendingFrames >= this.#readyFrames
      ? 0
      : this.#lastDispatch + this.#gatherMs - performance.now()
    if (wait <= 0) {
      if (this.#timer !== null) clearTimeout(this.#timer)
      this.#timer = null
      this.#immediate = setImmediate(() => { this.#dispatch() })
    } else {
      // Held: a later request that is urgent (or fills a run) brings the dispatch forward.
      this.#timer ??= setTimeout(() => {
        this.#timer = null
        this.#dispatch()
      }, wait)
    }
  }

  #dispatch (): void {
    this.#immediate = null
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    // More pending than one task takes (a busy server): the urgent go first, so a client's final
    // does not wait behind other streams' frames that nobody waits on. Each stream has at most one
    // request pending (VadStream.process is sequential), so no stream's frames change order.
    if (this.#pendingUrgent > 0 && this.#pending.length > this.#maxBatch) {
      this.#pending = [...this.#pending.filter((p) => p.urgent), ...this.#pending.filter((p) => !p.urgent)]
    }
    while (this.#pending.length > 0 && this.#inFlight < this.#maxInFlight) {
      const batch = this.#pending.splice(0, this.#maxBatch)
      for (const p of batch) this.#count(p, -1)
      this.#lastDispatch = performance.now()
      this.#send(batch)
    }
  }

  // A task settled: a thread is free for what waited meanwhile.
  #taskDone (): void {
    this.#inFlight--
    this.#schedule()
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
  process (frames: Float32Array, options: VadProcessOptions = {}): Promise<Float32Array> {
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
        urgent: options.urgent === true,
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
