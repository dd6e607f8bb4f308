import { MODEL_SAMPLE_RATE } from '../../schemas/audio-format.ts'
import type { ServerConfig } from '../../schemas/config.ts'
import { ApiError } from '../../schemas/error-codes.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import type { Mode } from '../../schemas/messages.ts'
import { VadBatcher, type VadTask, type VadResult } from '../audio/vad-batcher.ts'
import { InferenceError, ModelPool } from '../inference/model-pool.ts'
import { TaskPool } from '../inference/task-pool.ts'
import { Session } from './session.ts'
import { SessionRegistry, type SessionEntry, type Transport } from './session-registry.ts'
import type { InferFn, InferenceOutcome, SessionObserver, SessionServices, StreamerObserver } from './services.ts'
import type { StartRequest } from './start-request.ts'

export interface OpenSessionOptions {
  transport: Transport
  mode: Mode
  start: StartRequest
  emit: (event: StreamEvent) => void
  onFault?: (error: unknown) => void
  id?: string
}

export interface StreamerOptions {
  configDir: string
  // Told about every session (stage timings, inferences, events, end): metrics, traces, logs.
  observer?: StreamerObserver
  onWorkerError?: (error: unknown) => void
  // Resolve start() at once and warm the workers in the background: `ready` turns true and
  // `warm` resolves once they are warm (`warm` rejects if they cannot start). A server can then
  // listen, and answer readiness probes with 503, during a model's long warm-up.
  background?: boolean
}

// Counters and queue depths of the worker pools, for metrics.
export interface StreamerStats {
  modelQueued: number // inferences waiting for a model thread
  vadQueued: number // VAD batches waiting for a VAD thread
  modelCrashes: number // see ModelPool.crashes
  // VAD threads that crashed while idle; a crash during a VAD task reaches its stream as an
  // `internal` error event instead.
  vadCrashes: number
  inferenceFailures: number // the model threw ('inference_failed')
}

// The session core as one object with start()/close(): the worker pools, the VAD batcher and
// the registry. Transports ask it for sessions; it never learns which transport asked.
export class Streamer {
  readonly config: ServerConfig
  readonly registry = new SessionRegistry()
  // Settles when start-up ends: resolved once every worker is warm, rejected if one cannot start.
  readonly warm: Promise<void>
  readonly #vadPool: TaskPool<VadTask, VadResult>
  readonly #services: SessionServices
  readonly #observer: StreamerObserver | undefined
  #model: ModelPool | undefined
  #vadCrashes = 0
  #closing = false

  private constructor (config: ServerConfig, options: StreamerOptions) {
    this.config = config
    this.#observer = options.observer
    const report = options.onWorkerError ??
      ((error: unknown) => { process.emitWarning(`vad worker error: ${String(error)}`) })
    this.#vadPool = new TaskPool<VadTask, VadResult>(new URL('../audio/vad-worker.ts', import.meta.url), {
      threads: config.vad.threads,
      name: 'vad',
      onWorkerError: (error) => {
        this.#vadCrashes++
        report(error)
      }
    })
    const batcher = new VadBatcher((task, transfer) => this.#vadPool.run(task, transfer))
    this.#services = {
      infer: (audio, signal) => this.#model === undefined
        ? Promise.reject(InferenceError.internal(new Error('model pool is not running')))
        : this.#model.infer(audio, signal),
      createVadStream: () => batcher.createStream(),
      vad: config.vad,
      limits: config.limits
    }
    this.warm = this.#warmUp(options)
  }

  // Starts the worker pools and (unless `background`) waits until every model worker is warm.
  static async start (config: ServerConfig, options: StreamerOptions): Promise<Streamer> {
    const streamer = new Streamer(config, options)
    if (options.background === true) {
      // Whoever asked for a background start watches `warm`; this only keeps a failed warm-up
      // from also counting as an unhandled rejection.
      streamer.warm.catch(() => {})
    } else {
      await streamer.warm
    }
    return streamer
  }

  async #warmUp (options: StreamerOptions): Promise<void> {
    try {
      // A VAD worker whose model fails to load rejects its tasks: one silent frame at start-up
      // turns that into a start-up error instead of a broken first stream.
      await new VadBatcher((task, transfer) => this.#vadPool.run(task, transfer)).createStream().process(new Float32Array(512))
      const model = await ModelPool.start(this.config.model, options.configDir, {
        onWorkerError: options.onWorkerError,
        onTaskTiming: options.observer?.modelTask?.bind(options.observer)
      })
      if (this.#closing) {
        await model.close()
        throw new Error('the streamer was closed while its workers were warming up')
      }
      this.#model = model
    } catch (error) {
      await this.#vadPool.close()
      throw error
    }
  }

  // Warm and not shutting down: what readiness probes report.
  get ready (): boolean {
    return !this.#closing && this.#model?.ready === true
  }

  // Undefined until the workers are warm.
  get modelPool (): ModelPool | undefined { return this.#model }

  stats (): StreamerStats {
    return {
      modelQueued: this.#model?.queueSize ?? 0,
      vadQueued: this.#vadPool.queueSize,
      modelCrashes: this.#model?.crashes ?? 0,
      vadCrashes: this.#vadCrashes,
      inferenceFailures: this.#model?.failures ?? 0
    }
  }

  // Whether a new session may open now: throws ApiError 'not_ready' (503) while the workers warm
  // up or the server shuts down, 'too_many_sessions' (503) at the configured limit. Transports
  // call it before they commit to a response; openSession calls it again.
  admit (): void {
    if (!this.ready) throw new ApiError('not_ready', 'The server is starting or shutting down; retry shortly', { statusCode: 503 })
    const limit = this.config.limits.max_sessions
    if (this.registry.size >= limit) {
      throw new ApiError('too_many_sessions', `The server is at its limit of ${limit} open sessions (limits.max_sessions); retry shortly`, { statusCode: 503 })
    }
  }

  openSession (options: OpenSessionOptions): SessionEntry {
    this.admit()
    const id = options.id ?? SessionRegistry.newId()
    const observer = this.#observer?.openSession({
      id,
      transport: options.transport,
      mode: options.mode,
      format: options.start.format,
      traceparent: options.start.traceId
    })
    const emit = options.emit
    const session = new Session({
      mode: options.mode,
      format: options.start.format,
      interimResults: options.start.interimResults,
      services: observer === undefined ? this.#services : this.#observed(observer),
      // Every event of every transport passes here: the observer counts and traces it centrally.
      emit: observer === undefined ? emit : (event) => { observer.event(event); emit(event) },
      onFault: options.onFault
    })
    const entry = this.registry.add(options.transport, session, id)
    if (observer !== undefined) void session.closed.then((state) => { observer.closed(state === 'ended' ? 'ended' : 'aborted') })
    return entry
  }

  // The session's services with its own observer, and its inferences timed for that observer.
  #observed (observer: SessionObserver): SessionServices {
    const infer = this.#services.infer
    const observed: InferFn = (audio, signal) => {
      // Read before the call: the audio's buffer is transferred to a worker thread.
      const seconds = audio.length / MODEL_SAMPLE_RATE
      const startedAt = performance.now()
      return infer(audio, signal).then((output) => {
        observer.inference?.(seconds, startedAt, performance.now(), 'ok')
        return output
      }, (error: unknown) => {
        observer.inference?.(seconds, startedAt, performance.now(), outcomeOf(error, signal))
        throw error
      })
    }
    return { ...this.#services, observer, infer: observer.inference === undefined ? infer : observed }
  }

  // Shutdown: transports have been told to finish their streams; whatever is still open now is
  // aborted, then the pools stop (after a warm-up still under way has finished).
  async close (): Promise<void> {
    this.#closing = true
    for (const entry of this.registry.entries()) entry.session.abort()
    const warmed = await this.warm.then(() => true, () => false)
    if (warmed) await Promise.all([this.#model?.close(), this.#vadPool.close()])
  }
}

function outcomeOf (error: unknown, signal: AbortSignal | undefined): InferenceOutcome {
  if (signal?.aborted === true) return 'aborted'
  return error instanceof InferenceError ? error.code : 'internal'
}
