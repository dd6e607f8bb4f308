import { VAD_FRAME_SAMPLES } from '../audio/silero-vad.ts'
import { VadBatcher, type VadResult, type VadStream, type VadTask } from '../audio/vad-batcher.ts'
import { TaskPool } from '../inference/task-pool.ts'

// At low load, VAD requests that can wait are held until this long after the previous dispatch
// (VadBatcher's gatherMs), so a few live streams share runs instead of sending ~10 one-stream
// tasks a second each (measured at 10 real-time streams on 2 cores, VAD thread CPU per audio
// second per stream: 12.3 ms sent at once, 6.9 ms held 32 ms, 4.0 ms held 64 ms). Frames a
// client waits on are never held (the runner marks them urgent), so the final latency does not
// move; an `active` event or an interim can start up to this much later.
const VAD_SHARED_RUN_MS = 64

export interface VadPoolOptions {
  threads: number
  /** A VAD thread crashed while idle (the pool replaces it). Default: a process warning. */
  onWorkerError?: (error: unknown) => void
}

/**
 * The Silero VAD behind every stream: worker threads (src/audio/vad-worker.ts) fed by one
 * cross-stream batcher, so concurrent streams share ONNX runs. The VAD counterpart of ModelPool.
 */
export class VadPool {
  readonly #tasks: TaskPool<VadTask, VadResult>
  readonly #batcher: VadBatcher
  #crashes = 0

  constructor (options: VadPoolOptions) {
    const report = options.onWorkerError ??
      ((error: unknown) => { process.emitWarning(`vad worker error: ${String(error)}`) })
    this.#tasks = new TaskPool<VadTask, VadResult>(new URL('../audio/vad-worker.ts', import.meta.url), {
      threads: options.threads,
      name: 'vad',
      onWorkerError: (error) => {
        this.#crashes++
        report(error)
      }
    })
    // One task per thread in flight: what arrives meanwhile joins the next, larger batch; at low
    // load what can wait is held for a shared run (VAD_SHARED_RUN_MS).
    this.#batcher = new VadBatcher(async (task) => await this.#tasks.run(task), {
      maxInFlight: options.threads,
      gatherMs: VAD_SHARED_RUN_MS
    })
  }

  /** A VAD stream for one channel of one session. */
  createStream (): VadStream {
    return this.#batcher.createStream()
  }

  /**
   * Proves a thread can load the model: a worker whose model fails to load rejects its tasks, so
   * one silent frame at start-up turns that into a start-up error instead of a broken first stream.
   */
  async check (): Promise<void> {
    await this.#batcher.createStream().process(new Float32Array(VAD_FRAME_SAMPLES))
  }

  /** VAD batches waiting for a VAD thread. */
  get queueSize (): number { return this.#tasks.queueSize }

  /**
   * VAD threads that crashed while idle; a crash during a VAD task reaches its stream as an
   * `internal` error event instead.
   */
  get crashes (): number { return this.#crashes }

  async close (): Promise<void> {
    await this.#tasks.close()
  }
}
