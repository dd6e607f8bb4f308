import t from 'tap'
import { SpanKind } from '@opentelemetry/api'
import { loadFixture } from '../helpers/fixtures.ts'
import { clientSpan } from '../helpers/spans.ts'
import { startTracedServer } from '../helpers/traced-server.ts'
import { WsClient } from '../helpers/ws-client.ts'

// Tracing on, with every span handed to an in-memory exporter as it ends. A client that sends a
// W3C traceparent must find the server's spans in its own trace, under its own span.
const { server, spans } = await startTracedServer(t)

const fixture = loadFixture('hello_16k_mono')

t.test('websocket: a start message with trace_id puts the stream in the client\'s trace', async (t) => {
  const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
  t.teardown(() => { client.close() })
  const parent = clientSpan()
  client.start(fixture.format, { trace_id: parent.traceparent })
  await client.sendAudio(fixture.pcm, { chunkBytes: 3200 })
  client.stop()
  await client.waitFor((e) => e.type === 'end')
  const events = client.events.slice()

  const session = await spans.sessionSpan(parent.traceId)
  t.equal(session.parentSpanContext?.spanId, parent.spanId, 'the session span\'s parent is the client\'s span')
  t.equal(session.kind, SpanKind.SERVER)
  t.equal(session.attributes['streamer.transport'], 'websocket')
  t.equal(session.attributes['streamer.session.state'], 'ended')
  spans.checkPipelineSpans(t, session, events, fixture.duration)

  // The next stream on the same connection, without trace_id, is not in the client's trace.
  const before = spans.inTrace(parent.traceId).length
  await client.stream(fixture.format, fixture.pcm)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(spans.inTrace(parent.traceId).length, before, 'trace_id applies to its own stream only')
})
