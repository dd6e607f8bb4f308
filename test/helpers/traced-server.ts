import type { Test } from 'tap'
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-node'
import { startTracing } from '../../src/observability/tracing.ts'
import { startServer, type TestServer } from './server.ts'
import { SpanReader } from './spans.ts'

// Tracing on, with every span handed to an in-memory exporter as it ends, then a server: tracing
// starts first so the server's instrumentation registers with it. Both close when `t` ends.
export async function startTracedServer (t: Test): Promise<{ server: TestServer, spans: SpanReader }> {
  const exporter = new InMemorySpanExporter()
  const tracing = await startTracing({ exporter, env: {} })
  if (tracing === undefined) throw new Error('an exporter was given: tracing must start')
  const server = await startServer()
  t.teardown(async () => {
    await server.close()
    await tracing.shutdown()
  })
  return { server, spans: new SpanReader(exporter) }
}
