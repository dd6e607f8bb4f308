import t from 'tap'
import { readFileSync } from 'node:fs'
import type { StreamEvent } from '../../schemas/events.ts'
import { RTF_BUCKETS, StreamerMetrics } from '../../src/observability/metrics.ts'
import { StreamTelemetry, type TelemetryLogger } from '../../src/observability/session-telemetry.ts'
import { traceExportersFromEnv } from '../../src/observability/tracing.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'

const scrape = async (metrics: StreamerMetrics): Promise<ReturnType<typeof parsePrometheusText>> => parsePrometheusText(await metrics.metrics())

t.test('stage observations land in the RTF, media and processing histograms', async (t) => {
  const metrics = new StreamerMetrics({ runtime: false })
  metrics.stage('model', 2, 1) // RTF 0.5
  metrics.stage('model', 1, 3) // RTF 3
  metrics.stage('decode', 0, 0.001) // nothing decoded yet (a split frame): no RTF
  const families = await scrape(metrics)
  const bucket = (stage: string, le: string): number | undefined => sampleValue(families, 'streamer_stage_rtf_ratio', 'streamer_stage_rtf_ratio_bucket', { stage, le })
  t.equal(bucket('model', '0.3'), 0)
  t.equal(bucket('model', '0.5'), 1, 'RTF 0.5 in the 0.5 bucket')
  t.equal(bucket('model', '2'), 1)
  t.equal(bucket('model', '3'), 2, 'RTF 3 in the 3 bucket')
  t.equal(bucket('model', '+Inf'), 2)
  t.equal(sampleValue(families, 'streamer_stage_rtf_ratio', 'streamer_stage_rtf_ratio_sum', { stage: 'model' }), 3.5)
  t.equal(sampleValue(families, 'streamer_stage_media_duration_seconds', 'streamer_stage_media_duration_seconds_sum', { stage: 'model' }), 3)
  t.equal(sampleValue(families, 'streamer_stage_processing_duration_seconds', 'streamer_stage_processing_duration_seconds_sum', { stage: 'model' }), 4)
  t.equal(sampleValue(families, 'streamer_stage_rtf_ratio', 'streamer_stage_rtf_ratio_count', { stage: 'decode' }), 0, 'no RTF without audio')
  t.equal(sampleValue(families, 'streamer_stage_processing_duration_seconds', 'streamer_stage_processing_duration_seconds_count', { stage: 'decode' }), 1)
  t.same(RTF_BUCKETS.at(0), 0.01)
  t.same(RTF_BUCKETS.at(-1), 15)
})

t.test('pool counters and queue depths are read from the streamer at scrape time', async (t) => {
  const metrics = new StreamerMetrics({ runtime: false })
  let stats = { modelQueued: 3, vadQueued: 1, modelCrashes: 2, vadCrashes: 0, inferenceFailures: 5, inferenceTimeouts: 1, modelThreadsUsable: 2 }
  metrics.observePools(() => stats)
  let families = await scrape(metrics)
  t.equal(sampleValue(families, 'streamer_pool_queued_tasks', 'streamer_pool_queued_tasks', { pool: 'model' }), 3)
  t.equal(sampleValue(families, 'streamer_pool_queued_tasks', 'streamer_pool_queued_tasks', { pool: 'vad' }), 1)
  t.equal(sampleValue(families, 'streamer_worker_crashes_total', 'streamer_worker_crashes_total', { pool: 'model' }), 2)
  t.equal(sampleValue(families, 'streamer_inference_failures_total', 'streamer_inference_failures_total'), 5)
  t.equal(sampleValue(families, 'streamer_inference_timeouts_total', 'streamer_inference_timeouts_total'), 1)
  t.equal(sampleValue(families, 'streamer_model_threads_usable', 'streamer_model_threads_usable'), 2)
  t.equal(families.get('streamer_worker_crashes_total')?.type, 'counter')
  stats = { ...stats, modelQueued: 0, modelCrashes: 4 }
  families = await scrape(metrics)
  t.equal(sampleValue(families, 'streamer_pool_queued_tasks', 'streamer_pool_queued_tasks', { pool: 'model' }), 0)
  t.equal(sampleValue(families, 'streamer_worker_crashes_total', 'streamer_worker_crashes_total', { pool: 'model' }), 4, 'the counter follows the pool, not a sum of scrapes')
})

t.test('two apps in one process keep their own registries', async (t) => {
  const a = new StreamerMetrics()
  const b = new StreamerMetrics()
  a.transport('websocket').opened('simple')
  const [fa, fb] = await Promise.all([scrape(a), scrape(b)])
  t.equal(sampleValue(fa, 'streamer_sessions_started_total', 'streamer_sessions_started_total', { transport: 'websocket', mode: 'simple' }), 1)
  t.equal(sampleValue(fb, 'streamer_sessions_started_total', 'streamer_sessions_started_total', { transport: 'websocket', mode: 'simple' }), undefined)
  const elu = sampleValue(fa, 'streamer_nodejs_eventloop_utilization_ratio', 'streamer_nodejs_eventloop_utilization_ratio') ?? -1
  t.ok(elu >= 0 && elu <= 1, `event-loop utilisation is a ratio (${elu})`)
})

// A logger that records every line with the bindings of its chain of children.
function recordingLogger (): { log: TelemetryLogger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const make = (bindings: Record<string, unknown>): TelemetryLogger => {
    const write = (level: string) => (object: object, message: string): void => { lines.push({ ...bindings, ...object, level, msg: message }) }
    return { child: (more) => make({ ...bindings, ...more }), debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') }
  }
  return { log: make({}), lines }
}

t.test('session telemetry: sessions, audio, events and errors by transport; log lines carry session, transport and channel', async (t) => {
  const metrics = new StreamerMetrics({ runtime: false })
  const { log, lines } = recordingLogger()
  const telemetry = new StreamTelemetry({ metrics, log, tracing: () => false })
  const session = telemetry.openSession({ id: 's1', transport: 'http', mode: 'segmented', format: { channels: 2, sample_rate: 8000, bit_depth: 16, is_float: false }, traceparent: undefined })
  let families = await scrape(metrics)
  t.equal(sampleValue(families, 'streamer_sessions_open', 'streamer_sessions_open', { transport: 'http', mode: 'segmented' }), 1)
  session.received(640)
  session.stage('decode', 0.04, 0.0001)
  session.inference?.(0.5, 0, 20, 'ok')
  const events: StreamEvent[] = [
    { type: 'active', channel: 1, time: 0.1 },
    { type: 'error', channel: 1, code: 'inference_failed', message: 'boom' },
    { type: 'error', channel: null, code: 'truncated_audio', message: 'odd bytes' },
    { type: 'end', channel: null, seconds_received: [0.04, 0.04], samples_received: [320, 320], segments: [0, 0], interim_segments: [0, 0], interim_segments_dropped: [0, 0], bytes_received: 640, sha256: '', dropped: { truncated_audio: 0, max_duration: 0 }, errors: 2 }
  ]
  for (const event of events) session.event(event)
  session.closed('ended')
  families = await scrape(metrics)
  const value = (family: string, labels: Record<string, string>): number | undefined => sampleValue(families, family, family, labels)
  t.equal(value('streamer_sessions_open', { transport: 'http', mode: 'segmented' }), 0)
  t.equal(value('streamer_sessions_started_total', { transport: 'http', mode: 'segmented' }), 1)
  t.equal(value('streamer_audio_received_bytes_total', { transport: 'http' }), 640)
  t.equal(value('streamer_audio_received_seconds_total', { transport: 'http' }), 0.04)
  t.equal(value('streamer_events_sent_total', { transport: 'http', type: 'error' }), 2)
  t.equal(value('streamer_events_sent_total', { transport: 'http', type: 'end' }), 1)
  t.equal(value('streamer_errors_total', { transport: 'http', code: 'inference_failed' }), 1)
  t.equal(sampleValue(families, 'streamer_inference_duration_seconds', 'streamer_inference_duration_seconds_sum', { outcome: 'ok' }), 0.02)

  t.ok(lines.length >= 3, 'opened, errors and closed were logged')
  for (const line of lines) {
    t.match(line, { session: 's1', transport: 'http', mode: 'segmented' }, `"${String(line.msg)}" names the session and transport`)
    t.ok('channel' in line, `"${String(line.msg)}" names its channel`)
  }
  t.match(lines.find((l) => l.code === 'inference_failed'), { channel: 1, level: 'warn' })
  t.match(lines.find((l) => l.code === 'truncated_audio'), { channel: null })
  t.match(lines[0], { msg: 'stream opened', level: 'info', channels: 2, sample_rate: 8000, channel: null })
  t.match(lines.at(-1), { msg: 'stream closed', level: 'info', state: 'ended', outcome: 'ended', channels: 2, errors: 2, channel: null })
})

t.test('the closing line says how a stream ended: the server\'s error code, or the client leaving', async (t) => {
  const { log, lines } = recordingLogger()
  const telemetry = new StreamTelemetry({ log, tracing: () => false })
  const format = { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }
  const shut = telemetry.openSession({ id: 'a', transport: 'websocket', mode: 'simple', format, traceparent: undefined })
  shut.event({ type: 'error', channel: null, code: 'shutting_down', message: 'bye' })
  shut.closed('aborted')
  const left = telemetry.openSession({ id: 'b', transport: 'paired', mode: 'simple', format, traceparent: undefined })
  left.event({ type: 'error', channel: 0, code: 'inference_failed', message: 'one segment' })
  left.closed('aborted')
  const closing = lines.filter((l) => l.msg === 'stream closed')
  t.match(closing, [{ session: 'a', outcome: 'shutting_down' }, { session: 'b', outcome: 'client_left' }])
  left.fault(new Error('worker crashed'))
  t.match(lines.at(-1), { msg: 'stream fault', level: 'error', session: 'b' })
})

t.test('without metrics or tracing the core is not even asked to time inferences', async (t) => {
  const session = new StreamTelemetry({ tracing: () => false }).openSession({ id: 's', transport: 'websocket', mode: 'simple', format: { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }, traceparent: undefined })
  t.equal(session.inference, undefined)
})

t.test('which trace exporters the OTEL_* variables ask for', async (t) => {
  t.same(traceExportersFromEnv({}), [], 'nothing set: no exporter (not the SDK\'s default otlp)')
  t.same(traceExportersFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), ['otlp'])
  t.same(traceExportersFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), ['otlp'])
  t.same(traceExportersFromEnv({ OTEL_TRACES_EXPORTER: 'console' }), ['console'])
  t.same(traceExportersFromEnv({ OTEL_TRACES_EXPORTER: 'otlp, console,otlp' }), ['otlp', 'console'])
  t.same(traceExportersFromEnv({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), [])
  t.same(traceExportersFromEnv({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }), [])
})

t.test('the Prometheus text reader refuses what Prometheus would', async (t) => {
  const good = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="q\\"uote",y="n\\nl"} 3\n'
  t.same(parsePrometheusText(good).get('a_total')?.samples, [{ name: 'a_total', labels: { x: 'q"uote', y: 'n\nl' }, value: 3 }])
  t.throws(() => parsePrometheusText('b 1\n'), /undeclared/)
  t.throws(() => parsePrometheusText('# TYPE c gauge\nc{x="1" 2\n'), /label/)
  t.throws(() => parsePrometheusText('# TYPE c gauge\nc one\n'), /value/)
  const histogram = (inf: number): string => `# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} ${inf}\nh_sum 1\nh_count 2\n`
  t.ok(parsePrometheusText(histogram(2)).has('h'))
  t.throws(() => parsePrometheusText(histogram(1)), /cumulative|\+Inf/)
})

t.test('every metric the Grafana dashboard queries exists, and every stage is on it', async (t) => {
  const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana/dashboards/streamer.json', import.meta.url), 'utf8')) as { panels: Array<{ title: string, targets?: Array<{ expr: string }> }> }
  const metrics = new StreamerMetrics()
  const families = await scrape(metrics)
  const exists = (name: string): boolean => families.has(name) || ['_bucket', '_sum', '_count'].some((suffix) => name.endsWith(suffix) && families.get(name.slice(0, -suffix.length))?.type === 'histogram')
  const exprs = dashboard.panels.flatMap((panel) => panel.targets ?? []).map((target) => target.expr)
  t.ok(exprs.length > 10, 'the dashboard has queries')
  const names = new Set(exprs.flatMap((expr) => expr.match(/\bstreamer_[a-z0-9_]+/g) ?? []))
  for (const name of names) t.ok(exists(name), `${name} is exported`)
  const titles = dashboard.panels.map((panel) => panel.title.toLowerCase()).join(' | ')
  for (const topic of ['rtf', 'sessions', 'error', 'event-loop delay']) t.match(titles, topic, `a panel for ${topic}`)
})
