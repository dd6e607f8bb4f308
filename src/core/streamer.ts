import type { ServerConfig } from '../../schemas/config.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import type { Mode } from '../../schemas/messages.ts'
import { VadBatcher, type VadTask, type VadResult } from '../audio/vad-batcher.ts'
import { ModelPool } from '../inference/model-pool.ts'
import { TaskPool } from '../inference/task-pool.ts'
import { Session } from './session.ts'
import { SessionRegistry, type SessionEntry, type Transport } from './session-registry.ts'
import type { SessionServices, StageObserver } from './services.ts'
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
  observer?: StageObserver
  onWorkerError?: (error: unknown) => void
}

// The session core as one object with start()/close(): the worker pools, the VAD batcher and
// the registry. Transports ask it for sessions; it never learns which transport asked.
export class Streamer {
  readonly config: ServerConfig
  readonly registry = new SessionRegistry()
  readonly #model: ModelPool
  readonly #vadPool: TaskPool<VadTask, VadResult>
  readonly #services: SessionServices
  #closing = false

  private constructor (config: ServerConfig, model: ModelPool, vadPool: TaskPool<VadTask, VadResult>, observer: StageObserver | undefined) {
    this.config = config
    this.#model = model
    this.#vadPool = vadPool
    const batcher = new VadBatcher((task, transfer) => vadPool.run(task, transfer))
    this.#services = {
      infer: (audio, signal) => model.infer(audio, signal),
      createVadStream: () => batcher.createStream(),
      vad: config.vad,
      limits: config.limits,
      observer
    }
  }

  // Starts the worker pools and waits until every model worker is warm.
  static async start (config: ServerConfig, options: StreamerOptions): Promise<Streamer> {
    const vadPool = new TaskPool<VadTask, VadResult>(new URL('../audio/vad-worker.ts', import.meta.url), {
      threads: config.vad.threads,
      name: 'vad',
      onWorkerError: options.onWorkerError
    })
    try {
      // A VAD worker whose model fails to load rejects its tasks: one silent frame at start-up
      // turns that into a start-up error instead of a broken first stream.
      await new VadBatcher((task, transfer) => vadPool.run(task, transfer)).createStream().process(new Float32Array(512))
      const model = await ModelPool.start(config.model, options.configDir, { onWorkerError: options.onWorkerError })
      return new Streamer(config, model, vadPool, options.observer)
    } catch (error) {
      await vadPool.close()
      throw error
    }
  }

  get ready (): boolean {
    return !this.#closing && this.#model.ready
  }

  get modelPool (): ModelPool { return this.#model }

  openSession (options: OpenSessionOptions): SessionEntry {
    const session = new Session({
      mode: options.mode,
      format: options.start.format,
      interimResults: options.start.interimResults,
      services: this.#services,
      emit: options.emit,
      onFault: options.onFault
    })
    return this.registry.add(options.transport, session, options.id)
  }

  // Shutdown: transports have been told to finish their streams; whatever is still open now is
  // aborted, then the pools stop.
  async close (): Promise<void> {
    this.#closing = true
    for (const entry of this.registry.entries()) entry.session.abort()
    await Promise.all([this.#model.close(), this.#vadPool.close()])
  }
}
