// The model behind the server: `threads` worker threads, each holding one loaded, warm model
// and running one inference at a time.
// - Inferences wait here, not in Piscina, in one FIFO per asker (InferOptions.key, a session):
//   a free thread takes the next job of the asker served least recently, so a session that
//   floods the pool delays another session's inference by about one of its own, and an aborted
//   job that has not started simply leaves its queue.
// - A job that runs past model.timeout_seconds rejects with `inference_timeout`, and its thread
//   is terminated (by aborting the task's signal: Piscina terminates the thread of an aborted
//   running task) and replaced. The replacement loads and warms the model in its own
//   initialisation (model-worker.ts) and Piscina hands it no task before that, so jobs wait
//   here, the pool reports fewer usable threads, and `ready` is false while none is usable.
// - close() gives running jobs a short grace, then terminates whatever still runs.
import { existsSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { ModelConfig } from '../../schemas/config.ts'
import type { ModelOutput } from './model.ts'
// Types only: importing the worker module for real would load a model on this thread.
import type { ModelTask, ModelTaskResult, ModelWorkerData } from './model-worker.ts'
import { TaskPool } from './task-pool.ts'

export type InferenceErrorCode = 'inference_failed' | 'inference_timeout' | 'internal'

// 'inference_failed': the model threw; `message` is the model's own and safe to show a client.
// 'inference_timeout': the model did not answer within model.timeout_seconds; `message` says so
// and is safe to show (it names the setting, nothing else).
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
  // How long the threads may take to load and warm the model before start() gives up (default 60 s).
  startTimeoutMs?: number
  // A thread crashed outside an inference (while idle, or during start-up). Default: a warning.
  onWorkerError?: (error: unknown) => void
  // How long close() lets running inferences finish before it terminates their threads (default 2 s).
  closeGraceMs?: number
}

export interface InferOptions {
  /** Aborts the inference: a queued one leaves the queue, a running one's result is dropped. */
  signal?: AbortSignal
  /** Told how the inference went, once, when its promise settles. */
  onTiming?: (timing: InferenceTiming) => void
  /** Who asks (a session id): the pool serves askers fairly, round-robin. Absent: one shared anonymous asker. */
  key?: string
}

/** How one inference went, measured once, by the pool: told to the caller's `onTiming`. */
export interface InferenceTiming {
  queuedAt: number // performance.now() milliseconds when infer() was called
  startedAt: number | undefined // when it reached a thread; undefined if it never did (aborted in the queue)
  endedAt: number // when its promise settled
  outcome: 'ok' | 'inference_failed' | 'inference_timeout' | 'internal' | 'aborted'
}

// Jobs without a key; a symbol, so no session id can collide with it.
const ANONYMOUS = Symbol('anonymous')
type AskerKey = string | typeof ANONYMOUS

// One asker's jobs. Kept while it has jobs queued or running, so that an asker that keeps its
// queue short (one job at a time) still waits its turn; forgotten once it has none, so an asker
// coming back after a pause goes first, like a new one.
interface Asker {
  key: AskerKey
  jobs: Job[] // queued, oldest first
  running: number
  lastServed: number // the pool's dispatch count when one of its jobs last reached a thread; 0: never
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
  asker: Asker
}

const DEFAULT_START_TIMEOUT_MS = 60_000
const DEFAULT_CLOSE_GRACE_MS = 2_000
// setTimeout fires at once (with a warning) past 2^31 - 1 ms, about 24.8 days: a larger
// timeout_seconds means "no deadline to speak of", not "time out now".
const MAX_TIMER_MS = 2 ** 31 - 1

export class ModelPool {
  readonly threads: number
  readonly timeoutSeconds: number
  readonly #tasks: TaskPool<ModelTask, ModelTaskResult>
  readonly #askers = new Map<AskerKey, Asker>()
  readonly #closeGraceMs: number
  #queued = 0 // jobs in every asker's queue
  #running = 0 // jobs on a thread (including ones whose caller gave up on them)
  #dispatched = 0
  #started = false // between a successful start() and close()
  #closing: Promise<void> | undefined
  #crashes = 0
  #failures = 0
  #timeouts = 0
  readonly #onWorkerError: (error: unknown) => void

  private constructor (config: ModelConfig, moduleUrl: string, options: ModelPoolOptions) {
    this.threads = config.threads
    this.timeoutSeconds = config.timeout_seconds
    this.#closeGraceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS
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
      onWorkerError: this.#onWorkerError,
      // A replacement thread is loaded and warm: it can take the next queued job.
      onThreadReady: () => { this.#pump() }
    })
  }

  // Resolves once every thread has loaded the model and run its warm-up inference, so the
  // first real request does not pay the model's first-call cost. A module that cannot be found
  // or loaded, or a createModel that throws (bad options), rejects with a message saying so.
  static async start (config: ModelConfig, configDir: string, options: ModelPoolOptions = {}): Promise<ModelPool> {
    const moduleUrl = resolveModule(config.module, configDir)
    const pool = new ModelPool(config, moduleUrl, options)
    try {
      await pool.#checkThreads(options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS, config.module)
    } catch (error) {
      await pool.#tasks.destroy()
      throw error
    }
    pool.#started = true
    return pool
  }

  // One check per thread, all at once, with a deadline (TaskPool.checkEveryThread). Each check
  // answers once its thread has loaded and warmed the model. A model that crashes on 1 s of
  // silence can never have a warm thread, so every thread crashing fails start-up.
  async #checkThreads (timeoutMs: number, module: string): Promise<void> {
    let answers: ModelTaskResult[]
    try {
      answers = await this.#tasks.checkEveryThread((check) => ({ kind: 'check', ...check }), timeoutMs, {
        timeout: `model "${module}" did not load within ${timeoutMs} ms`,
        allCrashed: 'every model thread crashed while loading or warming up the model'
      })
    } catch (error) {
      throw new Error(`model failed to start: ${messageOf(error)}`, { cause: error })
    }
    for (const answer of answers) {
      if (answer.kind === 'warm' && answer.loadError !== undefined) {
        throw new Error(`model failed to start: ${answer.loadError}`)
      }
    }
  }

  // Runs one inference on 16 kHz mono audio. The audio's buffer is transferred to the worker,
  // not copied: the caller gives it up (it is detached when the inference reaches a thread).
  // Rejects with InferenceError; on abort, with signal.reason: a queued inference leaves the
  // queue, a running one's result is dropped (it goes on on its thread, which is terminated if
  // it outlives the deadline). `onTiming` is told how it went, once.
  infer (audio: Float32Array, options: InferOptions = {}): Promise<ModelOutput> {
    const { signal, onTiming } = options
    if (!this.#started) return Promise.reject(InferenceError.internal(new Error('model pool is not running')))
    if (signal?.aborted === true) return Promise.reject(signal.reason)
    const { promise, resolve, reject } = Promise.withResolvers<ModelOutput>()
    const key = options.key ?? ANONYMOUS
    let asker = this.#askers.get(key)
    if (asker === undefined) {
      asker = { key, jobs: [], running: 0, lastServed: 0 }
      this.#askers.set(key, asker)
    }
    const job: Job = { audio: ownWholeBuffer(audio), resolve, reject, signal, onAbort: undefined, settled: false, queuedAt: performance.now(), startedAt: undefined, onTiming, asker }
    if (signal !== undefined) {
      job.onAbort = () => {
        this.#unqueue(job)
        this.#settle(job, 'aborted', () => { job.reject(signal.reason) })
      }
      signal.addEventListener('abort', job.onAbort, { once: true })
    }
    asker.jobs.push(job)
    this.#queued++
    this.#pump()
    return promise
  }

  // Removes a job that has not reached a thread from its asker's queue.
  #unqueue (job: Job): void {
    const at = job.asker.jobs.indexOf(job)
    if (at === -1) return
    job.asker.jobs.splice(at, 1)
    this.#queued--
    this.#forgetIfIdle(job.asker)
  }

  #forgetIfIdle (asker: Asker): void {
    if (asker.jobs.length === 0 && asker.running === 0) this.#askers.delete(asker.key)
  }

  // Hands queued jobs to threads while a usable one is free: a thread being replaced is not
  // usable (Piscina would hold the job in its own queue, where its deadline would already run).
  #pump (): void {
    while (this.#started && this.#queued > 0 && this.#running < this.#tasks.readyThreads) {
      const asker = this.#nextAsker()
      const job = asker.jobs.shift() as Job
      this.#queued--
      asker.lastServed = ++this.#dispatched
      asker.running++
      this.#running++
      this.#run(job)
    }
  }

  // The asker with queued jobs that was served least recently (never served: first); among
  // equals, the one that asked first (a Map iterates in insertion order). A linear scan: there
  // are at most as many askers as open sessions.
  #nextAsker (): Asker {
    let next: Asker | undefined
    for (const asker of this.#askers.values()) {
      if (asker.jobs.length > 0 && (next === undefined || asker.lastServed < next.lastServed)) next = asker
    }
    return next as Asker
  }

  #run (job: Job): void {
    job.startedAt = performance.now()
    const deadline = new AbortController()
    let timedOut = false
    // Runs even when the caller has given up on the job: a thread stuck for ever must be
    // replaced whoever waits for it.
    const timer = setTimeout(() => {
      timedOut = true
      this.#timeouts++
      // Piscina rejects the task and terminates and replaces its thread within this call, so
      // by the time the caller hears of the timeout the pool already counts one thread fewer.
      deadline.abort(new Error(`inference ran past model.timeout_seconds (${this.timeoutSeconds} s)`))
      this.#settle(job, 'inference_timeout', () => {
        job.reject(new InferenceError('inference_timeout', `The model did not answer within ${this.timeoutSeconds} s (model.timeout_seconds)`))
      })
    }, Math.min(this.timeoutSeconds * 1000, MAX_TIMER_MS))
    this.#tasks.run({ kind: 'infer', audio: job.audio }, [job.audio.buffer], deadline.signal).then((result) => {
      if (result.kind === 'output') {
        this.#settle(job, 'ok', () => { job.resolve(result.output) })
      } else if (result.kind === 'failure') {
        this.#failures++
        this.#settle(job, 'inference_failed', () => { job.reject(new InferenceError('inference_failed', result.message)) })
      } else {
        this.#settle(job, 'internal', () => { job.reject(InferenceError.internal(new Error(`unexpected worker result ${result.kind}`))) })
      }
    }, (error: unknown) => {
      // Our own abort at the deadline: the job is settled already, and it was no crash.
      if (timedOut) return
      // The thread crashed (Piscina replaces it), or close() terminated it.
      if (this.#closing === undefined) this.#crashes++
      this.#settle(job, 'internal', () => { job.reject(InferenceError.internal(error)) })
    }).finally(() => {
      clearTimeout(timer)
      this.#running--
      job.asker.running--
      this.#forgetIfIdle(job.asker)
      this.#pump()
    })
  }

  #settle (job: Job, outcome: InferenceTiming['outcome'], settle: () => void): void {
    if (job.settled) return
    job.settled = true
    if (job.onAbort !== undefined) job.signal?.removeEventListener('abort', job.onAbort)
    job.onTiming?.({ queuedAt: job.queuedAt, startedAt: job.startedAt, endedAt: performance.now(), outcome })
    settle()
  }

  // Started, not closing, and at least one thread usable: false while every thread is stuck
  // (being replaced after a deadline or a crash, and not warm yet), true again once one is.
  get ready (): boolean {
    return this.usableThreads > 0
  }

  // Threads that are loaded, warm and not being replaced (busy or not); 0 outside start..close.
  get usableThreads (): number {
    return this.#started ? this.#tasks.readyThreads : 0
  }

  // Inferences waiting for a thread, over all askers.
  get queueSize (): number {
    return this.#queued + this.#tasks.queueSize
  }

  // Inferences waiting for a thread for one asker (a session id; absent: the anonymous one).
  queuedFor (key?: string): number {
    return this.#askers.get(key ?? ANONYMOUS)?.jobs.length ?? 0
  }

  // Threads lost to a crash: during an inference (its caller got an 'internal' error), while
  // idle (an uncaught error), or while starting. An idle thread that calls process.exit is
  // replaced by Piscina without any event, and a replacement that crashes while it initialises
  // has no task and raises no event either: neither is counted. A deadline is not a crash.
  get crashes (): number {
    return this.#crashes
  }

  // Inferences the model itself failed ('inference_failed').
  get failures (): number {
    return this.#failures
  }

  // Inferences that ran past model.timeout_seconds, each costing its thread (terminated and
  // replaced), whether or not their caller still waited for them.
  get timeouts (): number {
    return this.#timeouts
  }

  // Queued inferences reject ('internal'); running ones get closeGraceMs to finish, then their
  // threads are terminated (a model blocked for ever cannot hold shutdown up) and they reject
  // as 'internal'; then the threads end.
  close (): Promise<void> {
    this.#closing ??= (async () => {
      this.#started = false
      for (const asker of [...this.#askers.values()]) {
        for (const job of asker.jobs.splice(0)) {
          this.#queued--
          this.#settle(job, 'internal', () => { job.reject(InferenceError.internal(new Error('model pool closed'))) })
        }
        this.#forgetIfIdle(asker)
      }
      await this.#tasks.close({ graceMs: this.#closeGraceMs })
    })()
    return this.#closing
  }
}

function messageOf (error: unknown): string {
  return error instanceof Error ? error.message : String(error)
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
