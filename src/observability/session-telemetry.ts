// The streamer's observer (see StreamerObserver in src/core/services.ts, matched structurally:
// this layer imports only schemas): for every session of every transport it feeds the
// Prometheus metrics, the session's trace and its log lines. Transports need know nothing.
import { context, defaultTextMapGetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import { ERRORS, type ErrorCode } from '../../schemas/error-codes.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import type { StageName, StreamerMetrics, TransportMetrics } from './metrics.ts'
import { tracingEnabled } from './tracing.ts'

// The slice of a pino / Fastify logger this needs.
export interface TelemetryLogger {
  child: (bindings: Record<string, unknown>) => TelemetryLogger
  debug: (object: object, message: string) => void
  info: (object: object, message: string) => void
  warn: (object: object, message: string) => void
  error: (object: object, message: string) => void
}

export interface SessionInfo {
  id: string
  transport: string
  mode: string
  format: AudioFormat
  traceparent: string | undefined
}

export interface TelemetryOptions {
  metrics?: StreamerMetrics
  log?: TelemetryLogger
  // Whether sessions create spans; default: while startTracing() is in force.
  tracing?: () => boolean
}

const TRACER_NAME = 'streamer'
// The protocol says trace_id is a W3C traceparent, whatever propagators OTEL_PROPAGATORS picks.
const w3c = new W3CTraceContextPropagator()

// performance.now() milliseconds -> epoch milliseconds, what span start/end times take.
const epochMs = (now: number): number => performance.timeOrigin + now

export class StreamTelemetry {
  readonly #metrics: StreamerMetrics | undefined
  readonly #log: TelemetryLogger | undefined
  readonly #tracing: () => boolean

  constructor (options: TelemetryOptions = {}) {
    this.#metrics = options.metrics
    this.#log = options.log
    this.#tracing = options.tracing ?? tracingEnabled
  }

  openSession (info: SessionInfo): SessionTelemetry {
    const span = this.#tracing() ? startSessionSpan(trace.getTracer(TRACER_NAME), info) : undefined
    const traceId = span?.spanContext().traceId
    const log = this.#log?.child({ session: info.id, transport: info.transport, mode: info.mode, ...(traceId !== undefined ? { trace_id: traceId } : {}) })
    return new SessionTelemetry(info, this.#metrics, log, span)
  }

  modelTask (waitSeconds: number, runSeconds: number): void {
    this.#metrics?.modelTask(waitSeconds, runSeconds)
  }
}

// The session span's parent: the client's span from trace_id, unless the active context (the
// HTTP request span @fastify/otel made from the same client's `traceparent` header) is already
// in that trace, in which case the session nests under the request. Without trace_id: the active
// context (the request's span, or none: a new trace).
function startSessionSpan (tracer: Tracer, info: SessionInfo): Span {
  const active = context.active()
  let parent: Context = active
  let kind = SpanKind.INTERNAL
  if (info.traceparent !== undefined) {
    const remote = w3c.extract(ROOT_CONTEXT, { traceparent: info.traceparent }, defaultTextMapGetter)
    const client = trace.getSpanContext(remote)
    if (client !== undefined && trace.getSpanContext(active)?.traceId !== client.traceId) {
      parent = remote
      kind = SpanKind.SERVER
    }
  }
  return tracer.startSpan('streamer.session', {
    kind,
    attributes: {
      'streamer.session.id': info.id,
      'streamer.transport': info.transport,
      'streamer.mode': info.mode,
      'streamer.audio.channels': info.format.channels,
      'streamer.audio.sample_rate': info.format.sample_rate,
      'streamer.audio.bit_depth': info.format.bit_depth,
      'streamer.audio.encoding': info.format.encoding ?? (info.format.is_float ? 'float' : 'pcm')
    }
  }, parent)
}

// A live client's decode pushes are 20 ms of audio each, 50 a second per stream, and its VAD
// requests ~100 ms each: observing each one in three Prometheus histograms (and, for decode, a
// counter) was ~8 % (decode) and ~2.5 % (VAD) of the main thread's time at 10 real-time streams
// (prom-client hashes the labels on every call). Calls are summed per stream and stage into
// observations of at least this much audio (and the rest when the stream closes), so the stage
// histograms and the audio seconds counter are exact once a stream is closed and at most this
// far behind while it runs. The bytes counter is exact at every scrape (metrics.ts).
const STAGE_FLUSH_SECONDS = 0.25

type SummedStage = 'decode' | 'vad'

// Decode pushes and VAD batches are many and short: one span each would cost more than the work
// it measures. Each becomes one aggregate span per session, from the first call's start to the
// last call's end, carrying the totals.
class StageAggregate {
  calls = 0
  audioSeconds = 0
  wallSeconds = 0
  firstStart = 0 // performance.now() ms
  lastEnd = 0

  add (audioSeconds: number, wallSeconds: number): void {
    const now = performance.now()
    if (this.calls === 0) this.firstStart = now - wallSeconds * 1000
    this.calls++
    this.audioSeconds += audioSeconds
    this.wallSeconds += wallSeconds
    this.lastEnd = now
  }

  end (tracer: Tracer, parent: Context, stage: StageName): void {
    if (this.calls === 0) return
    tracer.startSpan(`streamer.${stage}`, {
      startTime: epochMs(this.firstStart),
      attributes: {
        'streamer.stage': stage,
        'streamer.stage.calls': this.calls,
        'streamer.stage.audio_seconds': this.audioSeconds,
        'streamer.stage.processing_seconds': this.wallSeconds,
        'streamer.stage.rtf': this.audioSeconds > 0 ? this.wallSeconds / this.audioSeconds : 0
      }
    }, parent).end(epochMs(this.lastEnd))
  }
}

export class SessionTelemetry {
  readonly #info: SessionInfo
  readonly #metrics: StreamerMetrics | undefined
  readonly #transport: TransportMetrics | undefined
  readonly #log: TelemetryLogger | undefined
  readonly #channelLogs: Array<TelemetryLogger | undefined> = []
  readonly #span: Span | undefined
  readonly #spanContext: Context | undefined
  readonly #decode: StageAggregate | undefined
  readonly #vad: StageAggregate | undefined
  readonly #openedAt = performance.now()
  #audioSeconds = 0
  // Decode and VAD figures not yet handed to the metrics (see STAGE_FLUSH_SECONDS).
  readonly #unflushed: Record<SummedStage, { audioSeconds: number, wallSeconds: number }> = {
    decode: { audioSeconds: 0, wallSeconds: 0 },
    vad: { audioSeconds: 0, wallSeconds: 0 }
  }

  #events = 0
  #errors = 0
  #segments = 0
  #closed = false
  #endedBy: ErrorCode | undefined
  // Absent without tracing, so the core does not even time inferences for it.
  readonly inference: ((audioSeconds: number, startedAt: number, endedAt: number, outcome: string) => void) | undefined

  constructor (info: SessionInfo, metrics: StreamerMetrics | undefined, log: TelemetryLogger | undefined, span: Span | undefined) {
    this.#info = info
    this.#metrics = metrics
    this.#transport = metrics?.transport(info.transport)
    this.#transport?.opened(info.mode)
    this.#log = log
    this.#span = span
    if (span !== undefined) {
      this.#spanContext = trace.setSpan(ROOT_CONTEXT, span)
      this.#decode = new StageAggregate()
      this.#vad = new StageAggregate()
    }
    this.inference = span === undefined && metrics === undefined ? undefined : this.#inference
    this.#logFor(null)?.info({ channels: info.format.channels, sample_rate: info.format.sample_rate, format: info.format }, 'stream opened')
  }

  stage (stage: StageName, audioSeconds: number, wallSeconds: number): void {
    if (stage === 'model') {
      this.#metrics?.stage(stage, audioSeconds, wallSeconds)
      return
    }
    if (stage === 'decode') {
      this.#audioSeconds += audioSeconds
      this.#decode?.add(audioSeconds, wallSeconds)
    } else {
      this.#vad?.add(audioSeconds, wallSeconds)
    }
    // Many short calls: they reach the metrics summed, see STAGE_FLUSH_SECONDS.
    const unflushed = this.#unflushed[stage]
    unflushed.audioSeconds += audioSeconds
    unflushed.wallSeconds += wallSeconds
    if (unflushed.audioSeconds >= STAGE_FLUSH_SECONDS) this.#flush(stage)
  }

  // The bytes taken are exact at every scrape (a test's barrier, a client's proof): metrics.ts.
  received (bytes: number): void {
    this.#transport?.addAudioBytes(bytes)
  }

  // Hands a stage's figures summed since its last flush to the metrics.
  #flush (stage: SummedStage): void {
    const unflushed = this.#unflushed[stage]
    if (unflushed.audioSeconds > 0) {
      this.#metrics?.stage(stage, unflushed.audioSeconds, unflushed.wallSeconds)
      if (stage === 'decode') this.#transport?.audioSeconds.inc(unflushed.audioSeconds)
    }
    unflushed.audioSeconds = 0
    unflushed.wallSeconds = 0
  }

  readonly #inference = (audioSeconds: number, startedAt: number, endedAt: number, outcome: string): void => {
    this.#metrics?.inference(outcome, (endedAt - startedAt) / 1000)
    if (this.#span === undefined || this.#closed) return
    const span = trace.getTracer(TRACER_NAME).startSpan('streamer.inference', {
      startTime: epochMs(startedAt),
      attributes: { 'streamer.audio_seconds': audioSeconds, 'streamer.inference.outcome': outcome }
    }, this.#spanContext)
    if (outcome !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome })
    span.end(epochMs(endedAt))
  }

  event (event: StreamEvent): void {
    this.#events++
    this.#transport?.event(event.type)
    if (event.type === 'segment') {
      this.#segments++
    } else if (event.type === 'end') {
      const dropped = event.interim_segments_dropped.reduce((sum, n) => sum + n, 0)
      if (dropped > 0) this.#transport?.interimDropped.inc(dropped)
    } else if (event.type === 'error') {
      this.#errors++
      this.#transport?.error(event.code)
      this.#span?.addEvent('error', { 'streamer.error.code': event.code, 'streamer.channel': event.channel ?? -1 })
      this.#logFor(event.channel)?.warn({ code: event.code, message: event.message }, 'error event sent')
      if (ERRORS[event.code].ends_stream) this.#endedBy = event.code
    }
  }

  fault (error: unknown): void {
    this.#logFor(null)?.error({ err: error }, 'stream fault')
  }

  closed (state: 'ended' | 'aborted'): void {
    if (this.#closed) return
    this.#closed = true
    this.#flush('decode')
    this.#flush('vad')
    this.#transport?.closed(this.#info.mode)
    const seconds = (performance.now() - this.#openedAt) / 1000
    // How it ended: `ended` (the stop, every result sent), the code of the error the server ended
    // it with (shutting_down...), or `client_left`.
    const outcome = state === 'ended' ? 'ended' : this.#endedBy ?? 'client_left'
    const summary = { state, outcome, channels: this.#info.format.channels, audio_seconds: this.#audioSeconds, events: this.#events, segments: this.#segments, errors: this.#errors }
    if (this.#span !== undefined && this.#spanContext !== undefined) {
      const tracer = trace.getTracer(TRACER_NAME)
      this.#decode?.end(tracer, this.#spanContext, 'decode')
      this.#vad?.end(tracer, this.#spanContext, 'vad')
      this.#span.setAttributes({
        'streamer.session.state': state,
        'streamer.audio_seconds': this.#audioSeconds,
        'streamer.events': this.#events,
        'streamer.segments': this.#segments,
        'streamer.errors': this.#errors
      })
      this.#span.end()
    }
    this.#logFor(null)?.info({ ...summary, wall_seconds: seconds }, 'stream closed')
  }

  // Lines about one channel carry it; lines about the whole stream carry `channel: null`.
  #logFor (channel: number | null): TelemetryLogger | undefined {
    const log = this.#log
    if (log === undefined) return undefined
    const index = channel ?? this.#info.format.channels // the slot after the channels: the stream
    let child = this.#channelLogs[index]
    if (child === undefined) {
      child = log.child({ channel })
      this.#channelLogs[index] = child
    }
    return child
  }
}
