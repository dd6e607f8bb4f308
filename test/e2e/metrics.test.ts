import t from 'tap'
import type { StreamEvent } from '../../schemas/events.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { parsePrometheusText, sampleValue, type Family } from '../helpers/prometheus-text.ts'
import { FAST_MODEL, startServer, type TestServer } from '../helpers/server.ts'
import { WsClient } from '../helpers/ws-client.ts'

// Real streams through a real server, then a scrape of GET /metrics, read as Prometheus would.

async function scrape (server: TestServer): Promise<{ families: Map<string, Family>, contentType: string | null }> {
  const response = await fetch(`${server.http}/metrics`)
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`)
  return { families: parsePrometheusText(await response.text()), contentType: response.headers.get('content-type') }
}

// A session leaves the registry (and the open-sessions gauge) just after its `end` event.
async function allClosed (server: TestServer): Promise<void> {
  while (server.app.streamer.registry.size > 0) await new Promise((resolve) => setTimeout(resolve, 10))
}

const count = (events: StreamEvent[], type: StreamEvent['type']): number => events.filter((e) => e.type === type).length

t.test('after real streams, /metrics shows every stage, the sessions, the audio and the events', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const fixture = loadFixture('dialogue_44k_stereo') // 44.1 kHz stereo: decode, resample, two channels
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  const segmented = await client.stream(fixture.format, fixture.pcm, { chunkBytes: 17640 })
  client.close()
  const simpleClient = await WsClient.connect(`${server.ws}/api/v1/simple`)
  // One byte too many: the stream ends with a truncated_audio error, counted by code.
  const simplePcm = new Uint8Array(fixture.pcm.length + 1)
  simplePcm.set(fixture.pcm)
  const simple = await simpleClient.stream(fixture.format, simplePcm, { chunkBytes: 17640 })
  simpleClient.close()
  await allClosed(server)

  const { families, contentType } = await scrape(server)
  t.match(contentType, /^text\/plain; version=0\.0\.4/)
  const value = (family: string, sample: string, labels: Record<string, string> = {}): number | undefined =>
    sampleValue(families, family, sample, labels)

  for (const stage of ['decode', 'vad', 'model']) {
    t.ok((value('streamer_stage_rtf_ratio', 'streamer_stage_rtf_ratio_count', { stage }) ?? 0) > 0, `${stage}: RTF observations`)
    t.ok((value('streamer_stage_media_duration_seconds', 'streamer_stage_media_duration_seconds_sum', { stage }) ?? 0) > 0, `${stage}: media seconds`)
    t.ok((value('streamer_stage_processing_duration_seconds', 'streamer_stage_processing_duration_seconds_count', { stage }) ?? 0) > 0, `${stage}: processing time`)
  }
  // Every decoded second went through decode (once per frame, both channels at once) and,
  // in segmented mode, through the VAD (per channel).
  const decodedSeconds = value('streamer_stage_media_duration_seconds', 'streamer_stage_media_duration_seconds_sum', { stage: 'decode' }) ?? 0
  t.ok(Math.abs(decodedSeconds - 2 * fixture.duration) < 0.01, `decode saw both streams' audio (${decodedSeconds} s)`)
  t.equal(families.get('streamer_stage_rtf_ratio')?.samples.filter((s) => s.name.endsWith('_bucket') && s.labels.stage === 'model').length, 16, '15 RTF buckets and +Inf')

  t.equal(value('streamer_sessions_started_total', 'streamer_sessions_started_total', { transport: 'websocket', mode: 'segmented' }), 1)
  t.equal(value('streamer_sessions_started_total', 'streamer_sessions_started_total', { transport: 'websocket', mode: 'simple' }), 1)
  t.equal(value('streamer_sessions_open', 'streamer_sessions_open', { transport: 'websocket', mode: 'segmented' }), 0, 'both sessions closed again')
  t.equal(value('streamer_audio_received_bytes_total', 'streamer_audio_received_bytes_total', { transport: 'websocket' }), fixture.pcm.length * 2 + 1, 'every byte sent is counted')
  const seconds = value('streamer_audio_received_seconds_total', 'streamer_audio_received_seconds_total', { transport: 'websocket' }) ?? 0
  t.ok(Math.abs(seconds - 2 * fixture.duration) < 0.01, `audio seconds received (${seconds})`)

  const all = [...segmented, ...simple]
  for (const type of ['segment', 'active', 'inactive', 'end'] as const) {
    t.equal(value('streamer_events_sent_total', 'streamer_events_sent_total', { transport: 'websocket', type }), count(all, type), `${type} events counted`)
  }
  t.ok(count(all, 'segment') > 0 && count(all, 'active') > 0, 'the streams did produce events')
  t.equal(value('streamer_errors_total', 'streamer_errors_total', { transport: 'websocket', code: 'truncated_audio' }), 1, 'errors by code')
  t.ok((value('streamer_inference_duration_seconds', 'streamer_inference_duration_seconds_count', { outcome: 'ok' }) ?? 0) >= count(all, 'segment'), 'every inference timed')
  // The pool splits each inference into its wait for a thread and its run there.
  const runs = value('streamer_model_task_run_seconds', 'streamer_model_task_run_seconds_count', {}) ?? 0
  t.ok(runs >= count(all, 'segment'), `every inference's run timed (${runs})`)
  t.equal(value('streamer_model_task_wait_seconds', 'streamer_model_task_wait_seconds_count', {}), runs, 'and its wait')

  // Pools, read at scrape time.
  t.equal(value('streamer_pool_queued_tasks', 'streamer_pool_queued_tasks', { pool: 'model' }), 0)
  t.equal(value('streamer_pool_queued_tasks', 'streamer_pool_queued_tasks', { pool: 'vad' }), 0)
  t.equal(value('streamer_worker_crashes_total', 'streamer_worker_crashes_total', { pool: 'model' }), 0)
  t.equal(value('streamer_inference_failures_total', 'streamer_inference_failures_total'), 0)

  // The Node runtime.
  t.ok(families.has('streamer_nodejs_eventloop_lag_seconds'), 'event-loop delay')
  t.ok(families.has('streamer_nodejs_eventloop_lag_p99_seconds'), 'event-loop delay percentiles')
  const utilisation = value('streamer_nodejs_eventloop_utilization_ratio', 'streamer_nodejs_eventloop_utilization_ratio') ?? -1
  t.ok(utilisation >= 0 && utilisation <= 1, `event-loop utilisation ${utilisation}`)
  t.ok((value('streamer_nodejs_heap_size_used_bytes', 'streamer_nodejs_heap_size_used_bytes') ?? 0) > 0, 'heap')
  t.equal(families.get('streamer_nodejs_gc_duration_seconds')?.type, 'histogram', 'GC durations')
  for (const name of families.keys()) t.match(name, /^streamer_/, `${name} has the common prefix`)
})

t.test('a failing model shows in the failure counter, the errors by code and the inference outcomes', async (t) => {
  const server = await startServer({ model: { threads: 1, options: { ...FAST_MODEL, failure_rate: 1 } } })
  t.teardown(() => server.close())
  const fixture = loadFixture('hello_16k_mono')
  const client = await WsClient.connect(`${server.ws}/api/v1/simple`)
  const events = await client.stream(fixture.format, fixture.pcm)
  client.close()
  const failed = events.filter((e) => e.type === 'error' && e.code === 'inference_failed').length
  t.ok(failed > 0, 'the model failed')
  const { families } = await scrape(server)
  t.equal(sampleValue(families, 'streamer_inference_failures_total', 'streamer_inference_failures_total'), failed)
  t.equal(sampleValue(families, 'streamer_errors_total', 'streamer_errors_total', { code: 'inference_failed' }), failed)
  t.equal(sampleValue(families, 'streamer_inference_duration_seconds', 'streamer_inference_duration_seconds_count', { outcome: 'inference_failed' }), failed)
})
