// The project's only door to piscina: a fixed-size pool of worker threads running one task at a
// time each. Facts about Piscina 5.3 this relies on, each observed by running Piscina 5.3 (they
// are behaviour, not documented promises: check them again when upgrading Piscina):
// - a task that throws rejects and its thread is reused;
// - a thread that crashes mid-task (process.exit, uncaught error) rejects that task and is
//   replaced;
// - a thread that crashes while idle emits 'error' on the pool, which kills the process unless
//   someone listens: we always listen and hand it to `onWorkerError`;
// - a worker file that fails to load makes later run() calls hang, so owners prove the file
//   loads at start-up (checkEveryThread, with a timeout; ModelPool and VadPool both do);
// - `pool.utilization` is wrong in 5.3: not exposed here;
// - a thread that exits (process.exit) while idle is replaced without any event;
// - aborting the AbortSignal given to run() rejects the task at once (AbortError, the reason as
//   its cause). A queued task just leaves Piscina's queue; a running one has its thread
//   terminated (Worker.terminate, which also ends a thread stuck in Atomics.wait or a busy loop)
//   and a replacement started, in the same call (dist/index.js, runTask's onAbort:
//   `this._removeWorker(taskInfo.workerInfo); this._ensureMinimumWorkers()`);
// - a new thread takes tasks only once the worker module's default export has settled: the
//   thread awaits it (dist/worker.js, getHandler: `handler = await (handler[name])`) before it
//   posts READY, and the pool marks a thread ready, emits 'workerCreate' and hands it tasks only
//   on READY (dist/index.js, _addNewWorker: `workerInfo.onReady(...)`). Exception: the threads
//   created by the constructor are marked ready at once ('workerCreate' in a microtask), and a
//   task sent to one of them waits inside the thread for the same default export;
// - 'workerDestroy' is emitted when a thread is removed (terminated, crashed or destroyed); for
//   a crashed thread its `id` is already -1 (its Worker has exited);
// - a replacement that dies before READY is not replaced, and from then on Piscina replaces no
//   crashed thread (`workerFailsDuringBootstrap` stays set); an aborted task's thread is still
//   replaced (that path calls _ensureMinimumWorkers directly). `readyThreads` shows the loss;
// - destroy() terminates every thread at once and rejects queued and running tasks;
// - close() is meant to wait (up to 30 s) for running tasks, but can return while a thread is
//   still running one: its onPoolFlushed counts a worker as done once per 'taskDone' listener it
//   registered (one plus one per worker), so with two threads busy, the first task to finish
//   resolves it and destroy() terminates the other thread mid-task. So close() here never uses
//   it: it waits for our own tasks (run() counts them) and then destroys.
// Not Piscina's, but why close() waits for threads still initialising: onnxruntime-node aborts
// the whole process (std::terminate on a Napi::Error) when a thread is terminated while it loads
// a model (seen with Silero, test/unit/vad-pool.test.ts).
import { Piscina } from 'piscina'
import { arrive, type ThreadCheck } from './thread-check.ts'

type RunOptions = NonNullable<Parameters<Piscina['run']>[1]>

export interface TaskPoolOptions {
  threads: number
  workerData?: unknown
  name?: string // a label for messages; not Piscina's `name` (the worker's export is always default)
  // A thread crashed while no task of ours was on it (or the pool failed to close in time).
  // Without a listener these errors are reported with process.emitWarning.
  onWorkerError?: (error: unknown) => void
  // A thread became ready to take tasks after the pool was built (a replacement that finished
  // its module's initialisation). Told in a microtask, once Piscina has filed it as ready.
  onThreadReady?: () => void
}

export interface TaskPoolCloseOptions {
  // Wait at most this long for running and queued tasks, then terminate the threads (their
  // tasks reject). Default 30 s, Piscina's own close timeout.
  graceMs?: number
}

const DEFAULT_CLOSE_GRACE_MS = 30_000

// close() waits at most this long for threads still initialising (see close): longer than any
// model load seen, short enough not to hold a shutdown up for long behind a load that hangs.
const INITIALISING_WAIT_MS = 10_000

export class TaskPool<Task, Result> {
  readonly threads: number
  readonly name: string
  readonly #pool: Piscina<Task, Result>
  readonly #onWorkerError: (error: unknown) => void
  // Thread ids Piscina reported ready and not yet removed (see readyThreads).
  readonly #readyIds = new Set<number>()
  #inFlight = 0
  #onIdle: (() => void) | undefined
  #closed = false

  constructor (filename: URL, options: TaskPoolOptions) {
    this.threads = options.threads
    this.name = options.name ?? filename.pathname.split('/').pop() ?? 'task-pool'
    this.#pool = new Piscina<Task, Result>({
      filename: filename.href,
      // Fixed size: threads hold loaded models, so none is reaped when idle or added on demand.
      minThreads: options.threads,
      maxThreads: options.threads,
      idleTimeout: Infinity,
      // Piscina's default ('sync') parks an idle thread in Atomics.wait, which freezes its event
      // loop: a module's async loading, timers and callbacks would only move while a task runs,
      // and a fault in them would surface inside some later, unrelated task. With atomics off an
      // idle thread's loop keeps running; each task costs one port message (microseconds).
      atomics: 'disabled',
      // Piscina's own wait/run histograms: unused (the metrics keep their own), and a cost on
      // every task, of which the VAD sends thousands a second under load.
      recordTiming: false,
      workerData: options.workerData
    })
    const onWorkerError = options.onWorkerError ??
      ((error: unknown) => { process.emitWarning(`${this.name} worker error: ${String(error)}`) })
    this.#onWorkerError = onWorkerError
    this.#pool.on('error', onWorkerError)
    const onThreadReady = options.onThreadReady
    this.#pool.on('workerCreate', (worker: { id: number }) => {
      this.#readyIds.add(worker.id)
      // Piscina emits this before it moves the thread to its ready set: a task run from inside
      // the event would wait in Piscina's queue instead of going straight to the new thread.
      if (onThreadReady !== undefined) queueMicrotask(onThreadReady)
    })
    this.#pool.on('workerDestroy', (worker: { id: number }) => { this.#readyIds.delete(worker.id) })
  }

  // transferList: buffers moved, not copied, to the worker (the caller loses them). An abort
  // drops a queued task; a running one is stopped by terminating its thread, which is replaced.
  run (task: Task, transferList?: ArrayBuffer[], signal?: AbortSignal): Promise<Result> {
    // After destroy() Piscina would start fresh threads for a new task.
    if (this.#closed) return Promise.reject(new Error(`${this.name} pool is closed`))
    // Piscina derives its TransferList type from MessagePort.postMessage, which newer
    // @types/node overloads; an array of ArrayBuffers is what it passes on at run time.
    const list = transferList as unknown as RunOptions['transferList']
    this.#inFlight++
    return this.#pool.run(task, { transferList: list, signal }).finally(() => {
      this.#inFlight--
      if (this.#inFlight === 0) this.#onIdle?.()
    })
  }

  // Sends one check to every thread at once and resolves with the answers of the threads that
  // answered it (the worker calls arriveAndWait from thread-check.ts once its module has loaded,
  // which holds each check until all threads have one). A thread that crashed on its check is
  // reported to onWorkerError and counted in its place, so the others are not held to the
  // timeout; Piscina replaces it, and the replacement loads in its own initialisation. Rejects
  // with `messages.allCrashed` (and the first crash's message) if every thread crashed, and with
  // `messages.timeout` after timeoutMs (a worker that never loads would otherwise hang start-up);
  // the caller should then destroy the pool.
  async checkEveryThread (task: (check: ThreadCheck) => Task, timeoutMs: number, messages: { timeout: string, allCrashed: string }): Promise<Result[]> {
    const check: ThreadCheck = { barrier: new SharedArrayBuffer(4), threads: this.threads, timeoutMs }
    const crashes: unknown[] = []
    const checks = Promise.all(Array.from({ length: this.threads }, async (): Promise<Result[]> => {
      try {
        return [await this.run(task(check))]
      } catch (crash) {
        arrive(check.barrier)
        crashes.push(crash)
        return []
      }
    }))
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(messages.timeout)) }, timeoutMs)
    })
    let answers: Result[][]
    try {
      answers = await Promise.race([checks, timeout])
    } finally {
      clearTimeout(timer)
    }
    for (const crash of crashes) this.#onWorkerError(crash)
    if (crashes.length === this.threads) {
      const first = crashes[0]
      throw new Error(`${messages.allCrashed} (${first instanceof Error ? first.message : String(first)})`, { cause: first })
    }
    return answers.flat()
  }

  // Tasks waiting for a free thread.
  get queueSize (): number {
    return this.#pool.queueSize
  }

  // Threads that finished initialising and can take a task (busy or not): not counting one
  // being replaced (terminated, crashed) whose successor is still initialising. Before the
  // constructor's own threads have initialised this already counts them (see above).
  get readyThreads (): number {
    // A crashed thread is reported with id -1, so the set is checked against the threads
    // Piscina still holds (a removed thread is no longer among them).
    const live = new Set(this.#pool.threads.map((worker) => worker.threadId))
    for (const id of this.#readyIds) if (!live.has(id)) this.#readyIds.delete(id)
    return this.#readyIds.size
  }

  // Threads Piscina holds that have not finished initialising: replacements still loading their
  // module (a constructor's own threads count as ready at once, see readyThreads).
  get #initialisingThreads (): number {
    let initialising = 0
    for (const worker of this.#pool.threads) if (!this.#readyIds.has(worker.threadId)) initialising++
    return initialising
  }

  // Resolves once no thread is initialising, or after limitMs.
  async #untilInitialised (limitMs: number): Promise<void> {
    if (this.#initialisingThreads === 0) return
    const { promise, resolve } = Promise.withResolvers<void>()
    // Piscina emits 'workerDestroy' before it drops the thread from its list: look a microtask on.
    const recheck = (): void => { queueMicrotask(() => { if (this.#initialisingThreads === 0) resolve() }) }
    this.#pool.on('workerCreate', recheck)
    this.#pool.on('workerDestroy', recheck)
    const timer = setTimeout(resolve, limitMs)
    await promise
    clearTimeout(timer)
    this.#pool.off('workerCreate', recheck)
    this.#pool.off('workerDestroy', recheck)
  }

  // Lets running and queued tasks finish, then ends the threads. They get graceMs (default
  // 30 s); a thread still busy then (a model blocked for ever) is terminated and its task
  // rejects, so close always ends. A replacement thread still loading its module is waited for
  // first (up to 10 s): onnxruntime-node aborts the whole process (std::terminate on a
  // Napi::Error) when a thread is terminated while it loads a model.
  async close (options: TaskPoolCloseOptions = {}): Promise<void> {
    this.#closed = true
    await this.#untilInitialised(INITIALISING_WAIT_MS)
    if (this.#inFlight > 0) {
      const { promise, resolve } = Promise.withResolvers<void>()
      this.#onIdle = resolve
      const timer = setTimeout(resolve, options.graceMs ?? DEFAULT_CLOSE_GRACE_MS)
      await promise
      clearTimeout(timer)
    }
    await this.#pool.destroy()
  }

  // Ends the threads now; queued and running tasks reject.
  async destroy (): Promise<void> {
    this.#closed = true
    await this.#pool.destroy()
  }
}
