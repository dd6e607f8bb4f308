import t from 'tap'
import { clientSpan } from '../helpers/spans.ts'
import { startTracedServer } from '../helpers/traced-server.ts'
import { loadFixture } from '../helpers/fixtures.ts'

// With tracing on, @fastify/otel records each request's URL on its span: a token in the query
// must not leave in an exported span any more than in a log line.
const { server, spans } = await startTracedServer(t)
const fixture = loadFixture('hello_16k_mono')

t.test('a ?token= is redacted in the request span', async (t) => {
  const token = 'st1.eyJlIjoxLCJrIjoiYWJjZGVmMDEifQ.not-a-real-signature-but-it-must-not-leak'
  const parent = clientSpan()
  const response = await fetch(`${server.http}/api/v1/simple?sample_rate=16000&channels=1&bit_depth=16&token=${token}`, { method: 'POST', headers: { traceparent: parent.traceparent }, body: fixture.pcm })
  t.equal(response.status, 200)
  await response.text()
  await spans.sessionSpan(parent.traceId)
  const requestSpan = spans.inTrace(parent.traceId).find((span) => typeof span.attributes['url.path'] === 'string')
  t.equal(requestSpan?.attributes['url.path'], '/api/v1/simple?sample_rate=16000&channels=1&bit_depth=16&token=[redacted]')
  const exported = JSON.stringify(spans.inTrace(parent.traceId).map((span) => ({ name: span.name, attributes: span.attributes, events: span.events })))
  t.notOk(exported.includes(token.split('.')[2] as string), 'the token is in no span of the trace')
})
