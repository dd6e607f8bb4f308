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
      gatherMs: VAD_SHARED_RUN_MS,
      readyFrames: VAD_READY_FRAMES,
      maxTaskFrames: VAD_TASK_FRAMES
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
