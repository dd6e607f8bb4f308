// Prometheus metrics of one server: every name starts with `streamer_` and ends in its unit
// (`_seconds`, `_bytes`, `_ratio`, `_total` for counters). One registry per app, so two apps in
// one process (tests) never share or clash.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'

export const METRIC_PREFIX = 'streamer_'

export type StageName = 'decode' | 'vad' | 'model'

// Real-time factor = wall seconds / audio seconds: below 1 a stage keeps up with live audio.
// From 0.01 (decode is ~1000x faster than real time; it lands in the first bucket) to 15 (a
// model ten times too slow), dense around 1 where it matters.
export const RTF_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 15]
// Seconds of audio per stage call: a stream's decode pushes summed to >= 250 ms (the rest when it
// closes; session-telemetry.ts), a VAD batch (32 ms frames), an
// utterance (up to the maximum utterance length) or a simple-mode chunk.
const MEDIA_BUCKETS = [0.01, 0.032, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60]
// Wall seconds per stage call: microseconds (decode) to seconds (a slow model and its queue).
export const PROCESSING_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

// The worker pools' counters, read at scrape time (see Streamer.stats()).
export interface PoolStats {
  modelQueued: number
  vadQueued: number
  modelCrashes: number
  vadCrashes: number
  inferenceFailures: number
  inferenceTimeouts: number
  modelThreadsUsable: number
}

// Children bound to their labels once, so the per-frame path (a decode push, a VAD batch) builds
// no label object per call. prom-client still hashes the labels on every observe: ~150-300 ns
// each here, ~0.05-0.07 ms CPU per audio second per stream in all (bench/observability.bench.ts).
interface StageInstruments {
  rtf: Histogram.Internal<'stage'>
  media: Histogram.Internal<'stage'>
  processing: Histogram.Internal<'stage'>
}

// The metrics of one transport, bound to their labels once (bench/observability.bench.ts
// measures what they cost).
export interface TransportMetrics {
  /** Audio bytes taken: a plain sum, handed to the counter when /metrics is read (exact at every scrape). */
  addAudioBytes: (bytes: number) => void
  readonly audioSeconds: Counter.Internal
  opened: (mode: string) => void
  closed: (mode: string) => void
  event: (type: string) => void
  error: (code: string) => void
  readonly interimDropped: Counter.Internal
}

export interface StreamerMetricsOptions {
  // Node runtime metrics (event-loop delay and utilisation, heap, GC, CPU); default true.
  runtime?: boolean
}

export interface ClusterSnapshot {
  redisUp: boolean
  members: ReadonlyMap<string, number> // instance id -> open sessions
  owned: number
}

export class StreamerMetrics {
  readonly registry = new Registry()
  readonly #stages: Record<StageName, StageInstruments>
  readonly #sessionsOpen: Gauge<'transport' | 'mode'>
  readonly #sessionsStarted: Counter<'transport' | 'mode'>
  readonly #audioBytes: Counter<'transport'>
  // Bytes taken per transport since the counter was last collected (see #audioBytes).
  readonly #pendingAudioBytes = new Map<string, { bytes: number }>()
  readonly #audioSeconds: Counter<'transport'>
  readonly #events: Counter<'transport' | 'type'>
  readonly #errors: Counter<'transport' | 'code'>
  readonly #interimDropped: Counter<'transport'>
  readonly #inferences: Histogram<'outcome'>
  readonly #taskWait: Histogram
  readonly #taskRun: Histogram
  readonly #transports = new Map<string, TransportMetrics>()
  // Metrics whose value is computed when Prometheus scrapes (their collect()).
  readonly #scraped: Array<Gauge | Counter> = []
  #pools: (() => PoolStats) | undefined

  constructor (options: StreamerMetricsOptions = {}) {
    const registers = [this.registry]
    // The stage histograms take one observation per 250 ms of a stream's audio through decode and the VAD.
    const rtf = new Histogram({
      name: `${METRIC_PREFIX}stage_rtf_ratio`,
      help: 'Real-time factor per pipeline stage call: wall time / audio duration (decode = decode + resample)',
      labelNames: ['stage'] as const,
      buckets: RTF_BUCKETS,
      registers
    })
    const media = new Histogram({
      name: `${METRIC_PREFIX}stage_media_duration_seconds`,
      help: 'Seconds of audio per pipeline stage call',
      labelNames: ['stage'] as const,
      buckets: MEDIA_BUCKETS,
      registers
    })
    const processing = new Histogram({
      name: `${METRIC_PREFIX}stage_processing_duration_seconds`,
      help: 'Wall seconds per pipeline stage call (vad and model include the wait for a worker thread)',
      labelNames: ['stage'] as const,
      buckets: PROCESSING_BUCKETS,
      registers
    })
    // Every stage's series exists from the start (at zero), so rate() over it is defined
    // before the first stream; a child alone would appear only with its first observation.
    const bind = (stage: StageName): StageInstruments => {
      for (const histogram of [rtf, media, processing]) histogram.zero({ stage })
      return { rtf: rtf.labels(stage), media: media.labels(stage), processing: processing.labels(stage) }
    }
    this.#stages = { decode: bind('decode'), vad: bind('vad'), model: bind('model') }

    this.#sessionsOpen = new Gauge({
      name: `${METRIC_PREFIX}sessions_open`,
      help: 'Streaming sessions open now',
      labelNames: ['transport', 'mode'] as const,
      registers
    })
    this.#sessionsStarted = new Counter({
      name: `${METRIC_PREFIX}sessions_started_total`,
      help: 'Streaming sessions started',
      labelNames: ['transport', 'mode'] as const,
      registers
    })
    // Every push of every stream adds to it: a counter's inc (prom-client hashes the labels on
    // every call) was ~2 % of the main thread at 10 live streams, so the bytes are summed per
    // transport in a plain number and reach the counter when it is collected, at every scrape.
    const pendingBytes = this.#pendingAudioBytes
    this.#audioBytes = new Counter({
      name: `${METRIC_PREFIX}audio_received_bytes_total`,
      help: 'Audio bytes received by streaming sessions, before decoding',
      labelNames: ['transport'] as const,
      registers,
      collect () {
        for (const [transport, pending] of pendingBytes) {
          if (pending.bytes > 0) this.inc({ transport }, pending.bytes)
          pending.bytes = 0
        }
      }
    })
    this.#audioSeconds = new Counter({
      name: `${METRIC_PREFIX}audio_received_seconds_total`,
      help: 'Seconds of audio received (decoded frames / sample rate, once per frame whatever the channel count)',
      labelNames: ['transport'] as const,
      registers
    })
    this.#events = new Counter({
      name: `${METRIC_PREFIX}events_sent_total`,
      help: 'Events sent to clients, by type',
      labelNames: ['transport', 'type'] as const,
      registers
    })
    this.#errors = new Counter({
      name: `${METRIC_PREFIX}errors_total`,
      help: 'Error events sent to clients, by code',
      labelNames: ['transport', 'code'] as const,
      registers
    })
    this.#interimDropped = new Counter({
      name: `${METRIC_PREFIX}interim_segments_dropped_total`,
      help: 'Interim segments not sent because the client left more than limits.max_outbound_bytes of events unread',
      labelNames: ['transport'] as const,
      registers
    })
    this.#inferences = new Histogram({
      name: `${METRIC_PREFIX}inference_duration_seconds`,
      help: 'Seconds from asking the model pool for an inference to its result: the wait for a model thread plus the run, by outcome',
      labelNames: ['outcome'] as const,
      buckets: PROCESSING_BUCKETS,
      registers
    })

    this.#taskWait = new Histogram({
      name: `${METRIC_PREFIX}model_task_wait_seconds`,
      help: 'Seconds an inference waited in the model pool for a free worker thread',
      buckets: PROCESSING_BUCKETS,
      registers
    })
    this.#taskRun = new Histogram({
      name: `${METRIC_PREFIX}model_task_run_seconds`,
      help: 'Seconds an inference ran on a model worker thread',
      buckets: PROCESSING_BUCKETS,
      registers
    })

    // Pool counters live in the pools; these read them when Prometheus scrapes.
    const pools = (): PoolStats | undefined => this.#pools?.()
    this.#scraped.push(new Gauge({
      name: `${METRIC_PREFIX}pool_queued_tasks`,
      help: 'Tasks waiting for a worker thread, by pool',
      labelNames: ['pool'] as const,
      registers,
      collect () {
        const stats = pools()
        this.set({ pool: 'model' }, stats?.modelQueued ?? 0)
        this.set({ pool: 'vad' }, stats?.vadQueued ?? 0)
      }
    }))
    this.#scraped.push(new Counter({
      name: `${METRIC_PREFIX}worker_crashes_total`,
      help: 'Worker threads lost to a crash (replaced by the pool), by pool; vad counts crashes of idle threads only',
      labelNames: ['pool'] as const,
      registers,
      collect () {
        const stats = pools()
        this.reset()
        this.inc({ pool: 'model' }, stats?.modelCrashes ?? 0)
        this.inc({ pool: 'vad' }, stats?.vadCrashes ?? 0)
      }
    }))
    // A count kept by a pool, read when Prometheus scrapes: the counter follows the pool.
    const poolCounter = (name: string, help: string, read: (stats: PoolStats) => number): Counter => new Counter({
      name: `${METRIC_PREFIX}${name}`,
      help,
      registers,
      collect () {
        const stats = pools()
        this.reset()
        this.inc(stats === undefined ? 0 : read(stats))
      }
    })
    this.#scraped.push(poolCounter('inference_timeouts_total', 'Inferences past model.timeout_seconds (their thread was terminated and replaced)', (stats) => stats.inferenceTimeouts))
    this.#scraped.push(new Gauge({
      name: `${METRIC_PREFIX}model_threads_usable`,
      help: 'Model threads warm and not stuck past a deadline; readiness is 503 at 0',
      registers,
      collect () { this.set(pools()?.modelThreadsUsable ?? 0) }
    }))
    this.#scraped.push(poolCounter('inference_failures_total', 'Inferences the model itself failed (error code inference_failed)', (stats) => stats.inferenceFailures))

    if (options.runtime !== false) {
      // prom-client's Node metrics: event-loop delay (min/max/mean/percentiles), heap spaces,
      // GC durations by kind, CPU, handles, memory.
      // The delay histogram samples the loop with a timer every eventLoopMonitoringPrecision ms.
      // prom-client's default of 10 ms costs ~85 us CPU per wake-up (measured: ~8.5 ms CPU per
      // second on an idle server); 50 ms costs ~2 ms/s. Delays shorter than that are recorded
      // less often; a blocked loop still shows in max and the percentiles.
      collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX, eventLoopMonitoringPrecision: 50 })
      // Event-loop utilisation (idle vs busy time since the previous scrape): what delay alone
      // hides, a loop busy 95 % of the time yet never blocked long.
      let last = performance.eventLoopUtilization()
      this.#scraped.push(new Gauge({
        name: `${METRIC_PREFIX}nodejs_eventloop_utilization_ratio`,
        help: 'Share of wall time the event loop was busy since the previous scrape (0..1)',
        registers,
        collect () {
          const now = performance.eventLoopUtilization()
          this.set(performance.eventLoopUtilization(now, last).utilization)
          last = now
        }
      }))
    }
  }

  get contentType (): string {
    return this.registry.contentType
  }

  // The Prometheus text exposition.
  metrics (): Promise<string> {
    return this.registry.metrics()
  }

  // Where pool counters come from (a started Streamer's stats()).
  // Cluster membership (cluster.redis_url): read at scrape time from what the last heartbeat saw.
  observeCluster (snapshot: () => ClusterSnapshot): void {
    const registers = [this.registry]
    this.#scraped.push(new Gauge({
      name: `${METRIC_PREFIX}cluster_redis_up`,
      help: 'Whether this instance reaches the cluster\'s Redis (1) or not (0)',
      registers,
      collect () { this.set(snapshot().redisUp ? 1 : 0) }
    }))
    this.#scraped.push(new Gauge({
      name: `${METRIC_PREFIX}cluster_members`,
      help: 'Live instances in the cluster (heartbeat not expired), as this instance last saw them',
      registers,
      collect () { this.set(snapshot().members.size) }
    }))
    this.#scraped.push(new Gauge({
      name: `${METRIC_PREFIX}cluster_instance_sessions`,
      help: 'Open sessions of each live instance (every transport), as published with its heartbeat',
      labelNames: ['instance'] as const,
      registers,
      collect () {
        this.reset()
        for (const [instance, sessions] of snapshot().members) this.set({ instance }, sessions)
      }
    }))
    this.#scraped.push(new Gauge({
      name: `${METRIC_PREFIX}cluster_owned_paired_sessions`,
      help: 'Paired sessions whose pipeline runs on this instance (created here or claimed after a failure)',
      registers,
      collect () { this.set(snapshot().owned) }
    }))
  }

  observePools (stats: () => PoolStats): void {
    this.#pools = stats
  }

  // One call of a pipeline stage: `audioSeconds` of audio took `wallSeconds`.
  stage (stage: StageName, audioSeconds: number, wallSeconds: number): void {
    const instruments = this.#stages[stage]
    instruments.media.observe(audioSeconds)
    instruments.processing.observe(wallSeconds)
    if (audioSeconds > 0) instruments.rtf.observe(wallSeconds / audioSeconds)
  }

  inference (outcome: string, seconds: number): void {
    this.#inferences.observe({ outcome }, seconds)
  }

  modelTask (waitSeconds: number, runSeconds: number): void {
    this.#taskWait.observe(waitSeconds)
    this.#taskRun.observe(runSeconds)
  }

  transport (transport: string): TransportMetrics {
    let bound = this.#transports.get(transport)
    if (bound === undefined) {
      bound = this.#bindTransport(transport)
      this.#transports.set(transport, bound)
    }
    return bound
  }

  #bindTransport (transport: string): TransportMetrics {
    const events = new Map<string, Counter.Internal>()
    const errors = new Map<string, Counter.Internal>()
    const pendingBytes = { bytes: 0 }
    this.#pendingAudioBytes.set(transport, pendingBytes)
    const audioSeconds = this.#audioSeconds.labels(transport)
    // At zero from the transport's first stream on, as the stage series are from the start.
    this.#audioBytes.labels(transport).inc(0)
    audioSeconds.inc(0)
    const interimDropped = this.#interimDropped.labels(transport)
    interimDropped.inc(0)
    return {
      addAudioBytes: (bytes) => { pendingBytes.bytes += bytes },
      audioSeconds,
      interimDropped,
      opened: (mode) => {
        this.#sessionsStarted.inc({ transport, mode })
        this.#sessionsOpen.inc({ transport, mode })
      },
      closed: (mode) => { this.#sessionsOpen.dec({ transport, mode }) },
      event: (type) => {
        let counter = events.get(type)
        if (counter === undefined) {
          counter = this.#events.labels(transport, type)
          events.set(type, counter)
        }
        counter.inc()
      },
      error: (code) => {
        let counter = errors.get(code)
        if (counter === undefined) {
          counter = this.#errors.labels(transport, code)
          errors.set(code, counter)
        }
        counter.inc()
      }
    }
  }
}
