import { MODEL_SAMPLE_RATE } from '../../schemas/audio-format.ts'
import type { ServerConfig } from '../../schemas/config.ts'
import { ApiError } from '../../schemas/error-codes.ts'
import { PROTOCOL_VERSION, type Mode, type Transport } from '../../schemas/messages.ts'
import { InferenceError, ModelPool } from '../inference/model-pool.ts'
import { Session } from './session.ts'
import { SessionRegistry } from './session-registry.ts'
import { StartParser } from './start-request.ts'
import { Stream, type StreamSink } from './stream.ts'
import { VadPool } from './vad-pool.ts'
import type { InferFn, SessionObserver, SessionServices, StreamerObserver } from './services.ts'
import type { StartRequest } from './start-request.ts'

export interface OpenStreamOptions {
  transport: Transport
  mode: Mode
  start: StartRequest
  sink: StreamSink
  id?: string
  /** The client's address: limits.max_sessions_per_ip counts by it. */
  client?: string
  /**
   * The API key the stream was opened with (directly or through one of its tokens), as a
   * non-secret id, never the key itself: limits.max_sessions_per_key and
   * auth.sessions_per_minute_per_key count by it.
   */
  key?: string
}

// auth.sessions_per_minute_per_key counts the sessions of the last minute.
const KEY_RATE_WINDOW_MS = 60_000

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
  inferenceTimeouts: number // past model.timeout_seconds: the thread was replaced
  modelThreadsUsable: number // warm and not stuck: readiness is false at 0
}

// The session core as one object with start()/close(): the worker pools, the VAD batcher and
// the registry. Transports ask it for sessions; it never learns which transport asked.
export class Streamer {
  readonly config: ServerConfig
  readonly registry = new SessionRegistry()
  /** Checks every transport's start against the schemas and this server's limits. */
  readonly startParser: StartParser
  // Settles when start-up ends: resolved once every worker is warm, rejected if one cannot start.
  readonly warm: Promise<void>
  readonly #vad: VadPool
  readonly #services: SessionServices
  readonly #observer: StreamerObserver | undefined
  #model: ModelPool | undefined
  #closing = false
  // When each key's sessions of the last minute opened (oldest first). Keys are the configured
  // ones, so this holds at most sessions_per_minute_per_key times entries per key.
  readonly #opened = new Map<string, number[]>()

  private constructor (config: ServerConfig, options: StreamerOptions) {
    this.config = config
    this.startParser = new StartParser(config.limits.max_channels, config.limits.max_utterance_seconds)
    this.#observer = options.observer
    this.#vad = new VadPool({ threads: config.vad.threads, onWorkerError: options.onWorkerError })
    this.#services = {
      infer: (audio, options) => this.#model === undefined
        ? Promise.reject(InferenceError.internal(new Error('model pool is not running')))
        : this.#model.infer(audio, options),
      createVadStream: () => this.#vad.createStream(),
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
      await this.#vad.check()
      const model = await ModelPool.start(this.config.model, options.configDir, {
        onWorkerError: options.onWorkerError
      })
      if (this.#closing) {
        await model.close()
        throw new Error('the streamer was closed while its workers were warming up')
      }
      this.#model = model
    } catch (error) {
      await this.#vad.close()
      throw error
    }
  }

  // Warm and not shutting down: what readiness probes report.
  get ready (): boolean {
    return !this.#closing && this.#model?.ready === true
  }

  stats (): StreamerStats {
    return {
      modelQueued: this.#model?.queueSize ?? 0,
      vadQueued: this.#vad.queueSize,
      modelCrashes: this.#model?.crashes ?? 0,
      vadCrashes: this.#vad.crashes,
      inferenceFailures: this.#model?.failures ?? 0,
      inferenceTimeouts: this.#model?.timeouts ?? 0,
      modelThreadsUsable: this.#model?.usableThreads ?? 0
    }
  }

  /**
   * Whether a new stream may open now: throws ApiError `shutting_down` once shutdown began,
   * `not_ready` while the workers warm up (or all are stuck), `too_many_sessions` at
   * limits.max_sessions or, for `client`, limits.max_sessions_per_ip (all 503); for `key`,
   * `too_many_sessions` at limits.max_sessions_per_key and `rate_limited` (429) past
   * auth.sessions_per_minute_per_key.
   * Transports call it before they commit to a response; openStream calls it again.
   */
  admit (client?: string, key?: string): void {
    if (this.#closing) throw new ApiError('shutting_down', 'The server is shutting down and takes no new streams; connect again (to another instance) shortly')
    if (!this.ready) {
      throw new ApiError('not_ready', this.#model === undefined
        ? 'The server is starting and its workers are not warm yet; retry shortly'
        : 'Every model thread is stuck past model.timeout_seconds or being replaced; retry shortly')
    }
    const limit = this.config.limits.max_sessions
    if (this.registry.size >= limit) {
      throw new ApiError('too_many_sessions', `The server is at its limit of ${limit} open sessions (limits.max_sessions); retry shortly`)
    }
    const perClient = this.config.limits.max_sessions_per_ip
    if (perClient > 0 && client !== undefined && this.registry.countFor(client) >= perClient) {
      throw new ApiError('too_many_sessions', `This client address has ${perClient} open sessions, the limit per address (limits.max_sessions_per_ip); end one first`)
    }
    if (key !== undefined) this.#admitKey(key)
  }

  // One key must not take every slot, nor open sessions as fast as it can.
  #admitKey (key: string): void {
    const perKey = this.config.limits.max_sessions_per_key
    if (perKey > 0) {
      let open = 0
      for (const stream of this.registry.entries()) if (stream.key === key) open++
      if (open >= perKey) throw new ApiError('too_many_sessions', `This API key has ${perKey} open sessions, the limit per key (limits.max_sessions_per_key); end one first`)
    }
    const perMinute = this.config.auth.sessions_per_minute_per_key
    const recent = this.#recentOpens(key)
    if (recent.length >= perMinute) {
      const retryAfter = Math.max(1, Math.ceil(((recent[0] as number) + KEY_RATE_WINDOW_MS - Date.now()) / 1000))
      throw new ApiError('rate_limited', `This API key opened ${perMinute} sessions in the last minute (auth.sessions_per_minute_per_key); retry in ${retryAfter} s`, { retryAfter })
    }
  }

  // The key's session openings of the last minute, older ones forgotten.
  #recentOpens (key: string): number[] {
    const times = this.#opened.get(key)
    if (times === undefined) return []
    const since = Date.now() - KEY_RATE_WINDOW_MS
    let drop = 0
    while (drop < times.length && (times[drop] as number) <= since) drop++
    if (drop > 0) times.splice(0, drop)
    if (times.length === 0) this.#opened.delete(key)
    return times
  }

  /**
   * Opens a stream for a transport: the core owns its lifecycle from here (logging, faults, the
   * error at shutdown); the transport only moves bytes in and events out through `sink`.
   */
  openStream (options: OpenStreamOptions): Stream {
    this.admit(options.client, options.key)
    if (options.key !== undefined) {
      const times = this.#opened.get(options.key) ?? []
      times.push(Date.now())
      this.#opened.set(options.key, times)
    }
    const id = options.id ?? SessionRegistry.newId()
    const observer = this.#observer?.openSession({
      id,
      transport: options.transport,
      mode: options.mode,
      format: options.start.format,
      traceparent: options.start.traceId
    })
    const send = options.sink.send
    // The session needs the stream (flow control, unread events), the stream the session: the
    // session's callbacks find the stream here once it exists.
    const ref: { stream?: Stream } = {}
    // The stream's own VAD settings (within the bounds its start was checked against).
    const { max_utterance_seconds: maxUtteranceSeconds = this.config.limits.max_utterance_seconds, ...vad } = options.start.vad ?? {}
    const services = this.#sessionServices(id, observer)
    const session = new Session({
      mode: options.mode,
      format: options.start.format,
      interimResults: options.start.interimResults,
      services: {
        ...services,
        vad: { ...services.vad, ...vad },
        limits: { ...services.limits, max_utterance_seconds: maxUtteranceSeconds }
      },
      // Every event of every transport passes here: the observer counts and traces it centrally.
      emit: observer === undefined ? send : (event) => { observer.event(event); send(event) },
      onFault: (error) => { observer?.fault?.(error) },
      outboundFull: () => ref.stream?.outboundFull() === true,
      onOverflow: () => {
        ref.stream?.fail(new ApiError('slow_consumer', `More than ${this.config.limits.max_outbound_bytes} bytes of events were left unread (limits.max_outbound_bytes) and a final result could not be delivered: read events as they come`))
      },
      underPressure: () => ref.stream?.underPressure() === true
    })
    const stream = new Stream({ id, transport: options.transport, session, sink: options.sink, limits: this.config.limits, client: options.client, key: options.key, acks: options.start.acks })
    ref.stream = stream
    this.registry.add(stream)
    if (observer !== undefined) void session.closed.then((state) => { observer.closed(state === 'ended' ? 'ended' : 'aborted') })
    const format = options.start.format
    const limits = this.config.limits
    session.notify({
      type: 'started',
      channel: null,
      session_id: id,
      protocol_version: PROTOCOL_VERSION,
      mode: options.mode,
      format: { channels: format.channels, sample_rate: format.sample_rate, bit_depth: format.bit_depth, is_float: format.is_float, encoding: format.encoding ?? 'pcm' },
      interim_results: options.start.interimResults,
      acks: options.start.acks,
      vad: {
        threshold: vad.threshold ?? this.config.vad.threshold,
        min_silence_ms: vad.min_silence_ms ?? this.config.vad.min_silence_ms,
        speech_pad_ms: vad.speech_pad_ms ?? this.config.vad.speech_pad_ms,
        max_utterance_seconds: maxUtteranceSeconds
      },
      limits: { idle_timeout_seconds: limits.idle_timeout_seconds, max_stream_seconds: limits.max_stream_seconds, max_buffered_seconds: limits.max_buffered_seconds }
    })
    return stream
  }

  // The session's services: its inferences are keyed by the session (the model pool serves
  // sessions fairly) and timed once, by the pool: the session's observer gets the whole (wait +
  // run) and its outcome, the streamer's the wait for a thread and the run on it.
  #sessionServices (key: string, observer: SessionObserver | undefined): SessionServices {
    const infer = this.#services.infer
    const streamer = this.#observer
    const keyed: InferFn = (audio, options) => {
      // Read before the call: the audio's buffer is transferred to a worker thread.
      const seconds = audio.length / MODEL_SAMPLE_RATE
      return infer(audio, {
        ...options,
        key,
        onTiming: observer === undefined
          ? undefined
          : (timing) => {
              if (timing.outcome === 'ok') observer.stage('model', seconds, (timing.endedAt - timing.queuedAt) / 1000)
              observer.inference?.(seconds, timing.queuedAt, timing.endedAt, timing.outcome)
              if (timing.startedAt !== undefined) streamer?.modelTask?.((timing.startedAt - timing.queuedAt) / 1000, (timing.endedAt - timing.startedAt) / 1000)
            }
      })
    }
    return { ...this.#services, ...(observer !== undefined ? { observer } : {}), infer: keyed }
  }

  /**
   * A graceful shutdown: readiness turns false and new streams are refused with `shutting_down`
   * at once; every open stream is drained (told, finalised, `end`, closed, see Stream.drain).
   * Settles when all are closed or `deadlineSeconds` passed; what is still open then is ended
   * with `shutting_down`.
   */
  async drain (deadlineSeconds: number): Promise<void> {
    this.#closing = true
    const streams = [...this.registry.entries()]
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, deadlineSeconds * 1000) })
    await Promise.race([Promise.all(streams.map(async (stream) => { await stream.drain(deadlineSeconds) })), deadline])
    clearTimeout(timer)
    this.shutdown()
  }

  /**
   * Shutdown now: readiness turns false, new streams are refused with `shutting_down`, and
   * every open stream ends with a `shutting_down` error event and its transport closes.
   */
  shutdown (): void {
    this.#closing = true
    const error = new ApiError('shutting_down', 'The server is shutting down; the stream was ended before it finished')
    for (const stream of [...this.registry.entries()]) stream.fail(error)
  }

  /** Stops the core: what is still open is ended (see shutdown), then the pools stop. */
  async close (): Promise<void> {
    this.shutdown()
    const warmed = await this.warm.then(() => true, () => false)
    if (warmed) await Promise.all([this.#model?.close(), this.#vad.close()])
  }
}
