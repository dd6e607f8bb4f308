import {
  VAD_CONTEXT_SAMPLES,
  VAD_FRAME_SAMPLES,
  VAD_STATE_SIZE,
  type VadResult,
  type VadTask
} from './silero-vad.ts'

export type { VadResult, VadTask } from './silero-vad.ts'

/**
 * Runs one task in a worker (src/core/vad-worker.ts). The task's arrays are views of one SharedArrayBuffer
 * (posting it shares it: nothing is copied or transferred), and the worker writes its results
 * into the same buffer (VadTask.probabilities).
 */
export type VadTaskRunner = (task: VadTask) => Promise<VadResult>

// Task buffers are kept for reuse in sizes of powers of two, from this size (a live stream's
// request is 3 frames, 6 KiB: one buffer of the smallest size holds ten of them).
const MIN_TASK_BYTES = 64 * 1024

export interface VadBatcherOptions {
  /** Most streams in one worker task; more pending streams in one tick make several tasks. */
  maxBatch?: number
  /**
   * Most frames (all streams) in one worker task, unless one request alone has more. A task holds
   * its thread until its longest request is done, and a request that cannot wait (urgent) waits
   * for the task in flight: this bounds that wait when many streams send long requests at once
   * (fast clients), whatever the request size. Default: no bound.
   */
  maxTaskFrames?: number
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
  readonly #maxTaskFrames: number
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
  // Task buffers no task is using. Every task used to pack its frames into a new ArrayBuffer
  // transferred to the thread, and the results came back as three more: under load that is
  // hundreds of kilobytes of buffers a second, and V8 answers large ArrayBuffers with full
  // mark-compact collections of the main heap (one every ~150 ms for one 48 kHz stereo stream
  // sent as fast as possible: ~10 % of the main thread and as much again on V8's helper threads).
  // A buffer is taken for a task, shared with its thread, and put back once its results are read.
  readonly #spare: SharedArrayBuffer[] = []
  readonly #maxSpare: number

  constructor (run: VadTaskRunner, options: VadBatcherOptions = {}) {
    const maxBatch = options.maxBatch ?? 64
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError('maxBatch must be a positive integer')
    const maxTaskFrames = options.maxTaskFrames ?? Infinity
    if (!(maxTaskFrames >= 1)) throw new RangeError('maxTaskFrames must be at least 1')
    const maxInFlight = options.maxInFlight ?? Infinity
    if (!(maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1')
    const gatherMs = options.gatherMs ?? 0
    if (!(gatherMs >= 0) || !Number.isFinite(gatherMs)) throw new RangeError('gatherMs must be a finite number >= 0')
    this.#run = run
    this.#maxBatch = maxBatch
    this.#maxTaskFrames = maxTaskFrames
    this.#maxInFlight = maxInFlight
    this.#gatherMs = gatherMs
    this.#readyFrames = options.readyFrames ?? 24
    this.#aheadFrames = options.aheadFrames ?? 8
    // One per task in flight, and one being filled.
    this.#maxSpare = Number.isFinite(maxInFlight) ? maxInFlight + 1 : 4
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
    if (this.#pendingUrgent > 0 && this.#takeCount() < this.#pending.length) {
      this.#pending = [...this.#pending.filter((p) => p.urgent), ...this.#pending.filter((p) => !p.urgent)]
    }
    while (this.#pending.length > 0 && this.#inFlight < this.#maxInFlight) {
      const batch = this.#pending.splice(0, this.#takeCount())
      for (const p of batch) this.#count(p, -1)
      this.#lastDispatch = performance.now()
      this.#send(batch)
    }
  }

  // How many of the pending requests (from the front) the next task takes: at most maxBatch, and
  // at most maxTaskFrames frames unless the first request alone has more.
  #takeCount (): number {
    let count = 0
    let frames = 0
    while (count < this.#pending.length && count < this.#maxBatch) {
      const next = (this.#pending[count] as Pending).frames.length / VAD_FRAME_SAMPLES
      if (count > 0 && frames + next > this.#maxTaskFrames) break
      frames += next
      count++
    }
    return count
  }

  // A task settled: a thread is free for what waited meanwhile.
  #taskDone (): void {
    this.#inFlight--
    this.#schedule()
  }

  #send (batch: Pending[]): void {
    const b = batch.length
    const steps = batch.map((p) => p.frames.length / VAD_FRAME_SAMPLES)
    const totalSteps = steps.reduce((sum, n) => sum + n, 0)
    const totalFrames = totalSteps * VAD_FRAME_SAMPLES
    // One buffer for frames, contexts, states and the probabilities the thread writes back, so
    // one message moves the whole task and the callers' own arrays are never shared.
    const buffer = this.#takeBuffer((totalFrames + b * (VAD_CONTEXT_SAMPLES + VAD_STATE_SIZE) + totalSteps) * Float32Array.BYTES_PER_ELEMENT)
    let cursor = 0 // in floats
    const view = (length: number): Float32Array => {
      const array = new Float32Array(buffer, cursor * Float32Array.BYTES_PER_ELEMENT, length)
      cursor += length
      return array
    }
    const frames = view(totalFrames)
    const contexts = view(b * VAD_CONTEXT_SAMPLES)
    const states = view(b * VAD_STATE_SIZE)
    const probabilities = view(totalSteps)
    let offset = 0
    batch.forEach((p, i) => {
      frames.set(p.frames, offset)
      offset += p.frames.length
      contexts.set(p.context, i * VAD_CONTEXT_SAMPLES)
      states.set(p.state, i * VAD_STATE_SIZE)
    })

    let task: Promise<VadResult>
    this.#inFlight++
    try {
      task = this.#run({ steps, frames, contexts, states, probabilities })
    } catch (error) {
      task = Promise.reject(error)
    }
    task.finally(() => { this.#taskDone() }).catch(() => {})
    task.then(result => {
      let at = 0
      batch.forEach((p, i) => {
        const n = steps[i] as number
        // settle and slice copy: the buffer is reused once this returns.
        p.stream.settle(p.generation,
          result.contexts.subarray(i * VAD_CONTEXT_SAMPLES, (i + 1) * VAD_CONTEXT_SAMPLES),
          result.states.subarray(i * VAD_STATE_SIZE, (i + 1) * VAD_STATE_SIZE))
        p.resolve(result.probabilities.slice(at, at + n))
        at += n
      })
      this.#returnBuffer(buffer)
    }, (error: unknown) => {
      // Not reused: a thread that failed may not be done with it.
      for (const p of batch) p.reject(error)
    })
  }

  // A spare task buffer of at least `bytes`, or a new one.
  #takeBuffer (bytes: number): SharedArrayBuffer {
    const fits = this.#spare.findIndex((buffer) => buffer.byteLength >= bytes)
    if (fits >= 0) return this.#spare.splice(fits, 1)[0] as SharedArrayBuffer
    return new SharedArrayBuffer(Math.max(MIN_TASK_BYTES, 2 ** Math.ceil(Math.log2(bytes))))
  }

  #returnBuffer (buffer: SharedArrayBuffer): void {
    if (this.#spare.length < this.#maxSpare) {
      this.#spare.push(buffer)
    } else {
      // Full: keep the largest, so a big task does not allocate again next time.
      const smallest = this.#spare.reduce((min, spare, i) => spare.byteLength < (this.#spare[min] as SharedArrayBuffer).byteLength ? i : min, 0)
      if ((this.#spare[smallest] as SharedArrayBuffer).byteLength < buffer.byteLength) this.#spare[smallest] = buffer
    }
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
   * frames: k * 512 samples (k >= 1) of 16 kHz mono audio in [-1, 1], read when the request is
   * sent to a thread (it may be held for a shared run): the caller must leave them unchanged
   * until the promise settles, and may reuse the array after. Resolves with k speech
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

  /** @internal called by VadBatcher with the state after the frames it ran (copied: the arrays are reused). */
  settle (generation: number, context: Float32Array, state: Float32Array): void {
    if (generation !== this.#generation) return
    this.#context.set(context)
    this.#state.set(state)
  }
}
