// The model behind the server: `threads` worker threads, each holding one loaded model and
// running one inference at a time. Inferences wait in a FIFO here, not in Piscina, so that an
// aborted request that has not started yet simply leaves the queue (Piscina would terminate the
// thread of a running task on abort, and its replacement would have to load and warm up again).
import { existsSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { ModelConfig } from '../../schemas/config.ts'
import type { ModelOutput } from './model.ts'
// Types only: importing the worker module for real would load a model on this thread.
import type { ModelTask, ModelTaskResult, ModelWorkerData } from './model-worker.ts'
import { TaskPool } from './task-pool.ts'

export type InferenceErrorCode = 'inference_failed' | 'internal'

// 'inference_failed': the model threw; `message` is the model's own and safe to show a client.
// 'internal': anything else (a crashed thread, a closed pool); `message` is always
// 'Internal server error' and the real reason is only in `cause`, for logs.
export class InferenceError extends Error {
  readonly code: InferenceErrorCode

  constructor (code: InferenceErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'InferenceError'
    this.code = code
  }

  static internal (cause: unknown): InferenceError {
    return new InferenceError('internal', 'Internal server error', { cause })
  }
}

export interface ModelPoolOptions {
  // How long the first thread may take to load the model before start() gives up (default 60 s).
  startTimeoutMs?: number
  // A thread crashed outside an inference (while idle, or during warm-up). Default: a warning.
  onWorkerError?: (error: unknown) => void
}

/** How one inference went, measured once, by the pool: told to the caller's `onTiming`. */
export interface InferenceTiming {
  queuedAt: number // performance.now() milliseconds when infer() was called
  startedAt: number | undefined // when it reached a thread; undefined if it never did (aborted in the queue)
  endedAt: number // when its promise settled
  outcome: 'ok' | 'inference_failed' | 'internal' | 'aborted'
}

interface Job {
  audio: Float32Array<ArrayBuffer>
  resolve: (output: ModelOutput) => void
  reject: (error: unknown) => void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  settled: boolean
  queuedAt: number // performance.now() when infer() was called
  startedAt: number | undefined
  onTiming: ((timing: InferenceTiming) => void) | undefined
}

const DEFAULT_START_TIMEOUT_MS = 60_000

export class ModelPool {
  readonly threads: number
  readonly #tasks: TaskPool<ModelTask, ModelTaskResult>
  readonly #queue: Job[] = []
  #running = 0
  #ready = false
  #closing: Promise<void> | undefined
  #crashes = 0
  #failures = 0
  readonly #onWorkerError: (error: unknown) => void

  private constructor (config: ModelConfig, moduleUrl: string, options: ModelPoolOptions) {
    this.threads = config.threads
    const report = options.onWorkerError ??
      ((error: unknown) => { process.emitWarning(`model worker crashed: ${String(error)}`) })
    this.#onWorkerError = (error) => {
      this.#crashes++
      report(error)
    }
    const workerData: ModelWorkerData = { module: moduleUrl, options: config.options }
    this.#tasks = new TaskPool<ModelTask, ModelTaskResult>(new URL('./model-worker.ts', import.meta.url), {
      threads: config.threads,
      workerData,
      name: 'model',
      onWorkerError: this.#onWorkerError
    })
  }

  // Resolves once every thread has loaded the model and run one warm-up inference, so the
  // first real request does not pay the model's first-call cost. A module that cannot be found
  // or loaded, or a createModel that throws (bad options), rejects with a message saying so.
  static async start (config: ModelConfig, configDir: string, options: ModelPoolOptions = {}): Promise<ModelPool> {
    const moduleUrl = resolveModule(config.module, configDir)
    const pool = new ModelPool(config, moduleUrl, options)
    try {
      await pool.#warmUp(options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS, config.module)
    } catch (error) {
      await pool.#tasks.destroy()
      throw error
    }
    pool.#ready = true
    return pool
  }

  async #warmUp (timeoutMs: number, module: string): Promise<void> {
    // One thread first, with a deadline: a worker that never loads would otherwise hang here.
    try {
      await withTimeout(this.#tasks.run({ kind: 'ping' }), timeoutMs,
        `model "${module}" did not load within ${timeoutMs} ms`)
    } catch (error) {
      throw new Error(`model failed to start: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
    // Then one warm-up per thread, all at once; the barrier keeps each thread holding its
    // warm-up until all have one, so no thread can take two and leave another cold.
    const barrier = new SharedArrayBuffer(4)
    const arrived = new Int32Array(barrier)
    const results = await Promise.all(Array.from({ length: this.threads }, async () => {
      try {
        return await this.#tasks.run({ kind: 'warmup', barrier, threads: this.threads, timeoutMs })
      } catch (error) {
        // The thread crashed while warming up (Piscina replaces it; the replacement starts
        // cold). Arrive in its place so the other threads are not held to the timeout.
        Atomics.add(arrived, 0, 1)
        Atomics.notify(arrived, 0)
        this.#onWorkerError(error)
        return undefined
      }
    }))
    for (const result of results) {
      if (result?.kind === 'warm' && result.loadError !== undefined) {
        throw new Error(`model failed to start: ${result.loadError}`)
      }
    }
  }

  // Runs one inference on 16 kHz mono audio. The audio's buffer is transferred to the worker,
  // not copied: the caller gives it up (it is detached when the inference reaches a thread).
  // Rejects with InferenceError; on abort, with signal.reason: a queued inference leaves the
  // queue, a running one finishes on its thread and its result is dropped (a blocking model
  // cannot be interrupted short of killing its thread). `onTiming` is told how it went, once.
  infer (audio: Float32Array, signal?: AbortSignal, onTiming?: (timing: InferenceTiming) => void): Promise<ModelOutput> {
    if (!this.#ready) return Promise.reject(InferenceError.internal(new Error('model pool is not running')))
    if (signal?.aborted === true) return Promise.reject(signal.reason)
    const { promise, resolve, reject } = Promise.withResolvers<ModelOutput>()
    const job: Job = { audio: ownWholeBuffer(audio), resolve, reject, signal, onAbort: undefined, settled: false, queuedAt: performance.now(), startedAt: undefined, onTiming }
    if (signal !== undefined) {
      job.onAbort = () => {
        const queued = this.#queue.indexOf(job)
        if (queued !== -1) this.#queue.splice(queued, 1)
        this.#settle(job, 'aborted', () => { job.reject(signal.reason) })
      }
      signal.addEventListener('abort', job.onAbort, { once: true })
    }
    this.#queue.push(job)
    this.#pump()
    return promise
  }

  #pump (): void {
    while (this.#running < this.threads && this.#queue.length > 0) {
      const job = this.#queue.shift() as Job
      this.#running++
      job.startedAt = performance.now()
      this.#tasks.run({ kind: 'infer', audio: job.audio }, [job.audio.buffer]).then((result) => {
        if (result.kind === 'output') {
          this.#settle(job, 'ok', () => { job.resolve(result.output) })
        } else if (result.kind === 'failure') {
          this.#failures++
          this.#settle(job, 'inference_failed', () => { job.reject(new InferenceError('inference_failed', result.message)) })
        } else {
          this.#settle(job, 'internal', () => { job.reject(InferenceError.internal(new Error(`unexpected worker result ${result.kind}`))) })
        }
      }, (error: unknown) => {
        // The thread crashed (Piscina replaces it) or its model failed to load.
        if (this.#ready) this.#crashes++
        this.#settle(job, 'internal', () => { job.reject(InferenceError.internal(error)) })
      }).finally(() => {
        this.#running--
        this.#pump()
      })
    }
  }

  #settle (job: Job, outcome: InferenceTiming['outcome'], settle: () => void): void {
    if (job.settled) return
    job.settled = true
    if (job.onAbort !== undefined) job.signal?.removeEventListener('abort', job.onAbort)
    job.onTiming?.({ queuedAt: job.queuedAt, startedAt: job.startedAt, endedAt: performance.now(), outcome })
    settle()
  }

  // Between a successful start() and close().
  get ready (): boolean {
    return this.#ready
  }

  // Inferences waiting for a thread.
  get queueSize (): number {
    return this.#queue.length + this.#tasks.queueSize
  }

  // Threads lost to a crash: during an inference (its caller got an 'internal' error), while
  // idle (an uncaught error), or while warming up. An idle thread that calls process.exit is
  // replaced by Piscina without any event, so it is not counted.
  get crashes (): number {
    return this.#crashes
  }

  // Inferences the model itself failed ('inference_failed').
  get failures (): number {
    return this.#failures
  }

  // Queued inferences reject ('internal'); running ones finish; then the threads end.
  close (): Promise<void> {
    this.#closing ??= (async () => {
      this.#ready = false
      for (const job of this.#queue.splice(0)) {
        this.#settle(job, 'internal', () => { job.reject(InferenceError.internal(new Error('model pool closed'))) })
      }
      await this.#tasks.close()
    })()
    return this.#closing
  }
}

// 'dummy' is the built-in dummy model; anything else is a path (relative to the config file's
// directory, or absolute) or a file: URL of a module exporting createModel.
function resolveModule (module: string, configDir: string): string {
  if (module === 'dummy') return new URL('./dummy-model.ts', import.meta.url).href
  const path = module.startsWith('file:') ? fileURLToPath(module) : resolve(configDir, module)
  if (!existsSync(path)) {
    const hint = module.startsWith('file:') || isAbsolute(module) ? '' : ' (a relative path is resolved against the config file\'s directory, or the working directory without one)'
    throw new Error(`model.module "${module}": no such file ${path}${hint}`)
  }
  return pathToFileURL(path).href
}

// Transferring a Float32Array's buffer moves the whole buffer. When `audio` is a view into a
// larger buffer (byteOffset != 0, or shorter than its buffer), that would detach the caller's
// other data too, so such a view is copied first. A SharedArrayBuffer cannot be transferred
// (and the caller could write to it during inference): copied as well.
function ownWholeBuffer (audio: Float32Array): Float32Array<ArrayBuffer> {
  const buffer = audio.buffer
  if (buffer instanceof ArrayBuffer && audio.byteOffset === 0 && audio.byteLength === buffer.byteLength) {
    return audio as Float32Array<ArrayBuffer>
  }
  return audio.slice()
}

async function withTimeout<T> (promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(message)) }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
