// The project's only door to piscina: a fixed-size pool of worker threads running one task at a
// time each. Facts about Piscina 5.3 this relies on, each observed by running Piscina 5.3 (they
// are behaviour, not documented promises: check them again when upgrading Piscina):
// - a task that throws rejects and its thread is reused;
// - a thread that crashes mid-task (process.exit, uncaught error) rejects that task and is
//   replaced;
// - a thread that crashes while idle emits 'error' on the pool, which kills the process unless
//   someone listens: we always listen and hand it to `onWorkerError`;
// - a worker file that fails to load makes later run() calls hang, so owners should prove the
//   file loads at start-up (ModelPool pings with a timeout);
// - `pool.utilization` is wrong in 5.3: not exposed here;
// - a thread that exits (process.exit) while idle is replaced without any event.
import { Piscina } from 'piscina'

type RunOptions = NonNullable<Parameters<Piscina['run']>[1]>

export interface TaskPoolOptions {
  threads: number
  workerData?: unknown
  name?: string // a label for messages; not Piscina's `name` (the worker's export is always default)
  // A thread crashed while no task of ours was on it (or the pool failed to close in time).
  // Without a listener these errors are reported with process.emitWarning.
  onWorkerError?: (error: unknown) => void
}

export class TaskPool<Task, Result> {
  readonly threads: number
  readonly name: string
  readonly #pool: Piscina<Task, Result>

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
      workerData: options.workerData
    })
    const onWorkerError = options.onWorkerError ??
      ((error: unknown) => { process.emitWarning(`${this.name} worker error: ${String(error)}`) })
    this.#pool.on('error', onWorkerError)
  }

  // transferList: buffers moved, not copied, to the worker (the caller loses them). An abort
  // drops a queued task; a running one is stopped by terminating its thread, which is replaced.
  run (task: Task, transferList?: ArrayBuffer[], signal?: AbortSignal): Promise<Result> {
    // Piscina derives its TransferList type from MessagePort.postMessage, which newer
    // @types/node overloads; an array of ArrayBuffers is what it passes on at run time.
    const list = transferList as unknown as RunOptions['transferList']
    return this.#pool.run(task, { transferList: list, signal })
  }

  // Tasks waiting for a free thread.
  get queueSize (): number {
    return this.#pool.queueSize
  }

  // Lets running tasks finish (Piscina gives up after 30 s), then ends the threads.
  async close (): Promise<void> {
    await this.#pool.close()
  }

  // Ends the threads now; queued and running tasks reject.
  async destroy (): Promise<void> {
    await this.#pool.destroy()
  }
}
