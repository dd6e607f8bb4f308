import { VadBatcher, type VadStream } from '../audio/vad-batcher.ts'
import type { VadWorkerResult, VadWorkerTask } from './vad-worker.ts'
import { TaskPool } from '../inference/task-pool.ts'

// At low load, VAD requests that can wait are held until this long after the previous dispatch
// (VadBatcher's gatherMs), so a few live streams share runs instead of sending ~10 one-stream
// tasks a second each (measured at 10 real-time streams on 2 cores, VAD thread CPU per audio
// second per stream: 12.3 ms sent at once, 6.9 ms held 32 ms, 4.0 ms held 64 ms). Frames a
// client waits on are never held (the runner marks them urgent), so the final latency does not
// move; an `active` event or an interim can start up to this much later.
const VAD_SHARED_RUN_MS = 64
// Frames pending (all streams) that go at once, held or not: a run worth having by itself. Each
// task wakes the VAD thread and, with its result, the main thread; on this VM a wake from idle
// costs ~250 us of CPU (bench/capacity/wake-cost.ts), so bigger, fewer tasks pay off below
// saturation. Measured at 100 real-time streams, 2 x 20 s each, CPU per audio second per stream
// (VAD thread / main thread): 24 frames 2.66-2.69 / 2.34-2.47 ms, 64 frames 2.09-2.20 /
// 1.98-2.28 ms, 128 frames 2.03-2.09 / 2.17-2.18 ms; the speech-start (`active`) p50 moved from
// 67 to 76 ms and the final latency not at all (urgent frames are never held). At 300 streams
// 128 was no worse (VAD thread 1.46-1.61 ms against 1.62-1.73).
const VAD_READY_FRAMES = 128
// Most frames in one task (all streams): 64 streams' requests of 32 frames, the longest task a
// saturated server had when streams' requests were at most 32 frames. Requests are now up to 64
// (segmented-runner.ts), and this keeps the wait of an urgent request behind the task in flight
// where it was (a batch-64 step is ~3.5 ms here, so ~110 ms at worst, under a flood).
const VAD_TASK_FRAMES = 64 * 32
// How long the VAD threads may take to load the model before start-up gives up.
const DEFAULT_START_TIMEOUT_MS = 60_000

export interface VadPoolOptions {
  threads: number
  /** A VAD thread crashed while idle (the pool replaces it). Default: a process warning. */
  onWorkerError?: (error: unknown) => void
  /** How long the threads may take to load the model before check() fails (default 60 s). */
  startTimeoutMs?: number
}

/**
 * The Silero VAD behind every stream: worker threads (src/core/vad-worker.ts) fed by one
 * cross-stream batcher, so concurrent streams share ONNX runs. The VAD counterpart of ModelPool.
 */
export class VadPool {
  readonly #tasks: TaskPool<VadWorkerTask, VadWorkerResult>
  readonly #batcher: VadBatcher
  // Settles once every thread has loaded the model (or one failed to): started at once, so
  // close() can wait for it even when nobody called check().
  readonly #loaded: Promise<void>
  #crashes = 0

  constructor (options: VadPoolOptions) {
    const report = options.onWorkerError ??
      ((error: unknown) => { process.emitWarning(`vad worker error: ${String(error)}`) })
    this.#tasks = new TaskPool<VadWorkerTask, VadWorkerResult>(new URL('./vad-worker.ts', import.meta.url), {
      threads: options.threads,
      name: 'vad',
      onWorkerError: (error) => {
        this.#crashes++
        report(error)
      }
    })
    // One task per thread in flight: what arrives meanwhile joins the next, larger batch; at low
    // load what can wait is held for a shared run (VAD_SHARED_RUN_MS).
    this.#batcher = new VadBatcher(async (task) => {
      const result = await this.#tasks.run(task)
      if ('loaded' in result) throw new Error('a VAD thread answered a batch as a check')
      return result
    }, {
      maxInFlight: options.threads,
      gatherMs: VAD_SHARED_RUN_MS,
      readyFrames: VAD_READY_FRAMES,
      maxTaskFrames: VAD_TASK_FRAMES
    })
    this.#loaded = this.#checkThreads(options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS)
    // check() reports a failure; this keeps it from also counting as an unhandled rejection.
    this.#loaded.catch(() => {})
  }

  async #checkThreads (timeoutMs: number): Promise<void> {
    const answers = await this.#tasks.checkEveryThread((check) => check, timeoutMs, {
      timeout: `VAD failed to start: the VAD threads did not load the Silero model within ${timeoutMs} ms`,
      allCrashed: 'VAD failed to start: every VAD thread crashed while loading the Silero model'
    })
    for (const answer of answers) {
      if ('loaded' in answer && answer.loadError !== undefined) throw new Error(`VAD failed to start: ${answer.loadError}`)
    }
  }

  /** A VAD stream for one channel of one session. */
  createStream (): VadStream {
    return this.#batcher.createStream()
  }

  /**
   * Resolves once every VAD thread has loaded the model; rejects, saying why, if one could not
   * (a start-up error instead of a broken first stream) or none did within the start timeout.
   */
  async check (): Promise<void> {
    await this.#loaded
  }

  /** VAD batches waiting for a VAD thread. */
  get queueSize (): number { return this.#tasks.queueSize }

  /**
   * VAD threads that crashed while idle; a crash during a VAD task reaches its stream as an
   * `internal` error event instead.
   */
  get crashes (): number { return this.#crashes }

  // Waits for the threads' model loads first: a thread terminated while onnxruntime loads the
  // model aborts the whole process. After a failed or timed-out start the threads are destroyed.
  async close (): Promise<void> {
    const started = await this.#loaded.then(() => true, () => false)
    await (started ? this.#tasks.close() : this.#tasks.destroy())
  }
}
