import t from 'tap'
import { connect } from 'node:http2'
import { SpanKind } from '@opentelemetry/api'
import type { StreamEvent } from '../../schemas/events.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { clientSpan } from '../helpers/spans.ts'
import { startTracedServer } from '../helpers/traced-server.ts'

// As tracing.test.ts, on the other transports: the HTTP/2 upload (traceparent header) and the
// paired session (trace_id in the create request).
const { server, spans } = await startTracedServer(t)

const fixture = loadFixture('hello_16k_mono')

t.test('HTTP/2 upload: a traceparent header puts the request and the stream in the client\'s trace', async (t) => {
  const parent = clientSpan()
  const session = connect(server.http)
  t.teardown(() => { session.close() })
  const query = new URLSearchParams({ sample_rate: String(fixture.format.sample_rate), channels: '1', bit_depth: '16', is_float: 'false' })
  const request = session.request({
    ':method': 'POST',
    ':path': `/api/v1/segmented?${query.toString()}`,
    'content-type': 'application/octet-stream',
    traceparent: parent.traceparent
  })
  let body = ''
  request.setEncoding('utf8')
  request.on('data', (chunk: string) => { body += chunk })
  const ended = new Promise((resolve, reject) => {
    request.on('end', resolve)
    request.on('error', reject)
  })
  request.end(fixture.pcm)
  await ended
  const events = body.split('\n').filter((line) => line.startsWith('data: ')).map((line) => JSON.parse(line.slice(6)) as StreamEvent)
  t.equal(events.at(-1)?.type, 'end', 'the stream ended normally')

  const stream = await spans.sessionSpan(parent.traceId)
  const inTrace = spans.inTrace(parent.traceId)
  const requestSpan = inTrace.find((s) => s.name === 'request')
  t.ok(requestSpan !== undefined, '@fastify/otel made a request span in the client\'s trace')
  t.equal(requestSpan?.parentSpanContext?.spanId, parent.spanId, 'the request span\'s parent is the client\'s span')
  t.equal(requestSpan?.kind, SpanKind.SERVER)
  // The session nests under the request (via its handler span): one trace, one tree.
  const ids = new Set(inTrace.map((s) => s.spanContext().spanId))
  t.ok(ids.has(stream.parentSpanContext?.spanId ?? ''), 'the session span\'s parent is a server span of the same request')
  t.equal(stream.attributes['streamer.transport'], 'http')
  spans.checkPipelineSpans(t, stream, events, fixture.duration)
})

t.test('paired session: trace_id in the create request puts the stream in the client\'s trace', async (t) => {
  const parent = clientSpan()
  const created = await fetch(`${server.http}/api/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ mode: 'segmented', format: fixture.format, trace_id: parent.traceparent })
  })
  t.equal(created.status, 201)
  const { audio_url: audioUrl, stop_url: stopUrl } = await created.json() as { audio_url: string, stop_url: string }
  const audio = await fetch(`${server.http}${audioUrl}?seq=0`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: fixture.pcm })
  t.equal(audio.status, 200)
  await fetch(`${server.http}${stopUrl}`, { method: 'POST' })

  const stream = await spans.sessionSpan(parent.traceId)
  t.equal(stream.parentSpanContext?.spanId, parent.spanId, 'the session span\'s parent is the client\'s span')
  t.equal(stream.attributes['streamer.transport'], 'paired')
  t.equal(stream.attributes['streamer.session.state'], 'ended')
  const children = spans.inTrace(parent.traceId).filter((s) => s.parentSpanContext?.spanId === stream.spanContext().spanId)
  t.ok(children.some((s) => s.name === 'streamer.inference'), 'inference spans under the session')
})
