import type { FastifyInstance } from 'fastify'
import type { StreamerMetrics } from '../src/observability/metrics.ts'

export interface MetricsPluginOptions {
  metrics: StreamerMetrics
}

// GET /metrics: the Prometheus text exposition of this server's registry. Pool counters and
// queue depths are read from the streamer at scrape time.
export default async function metricsPlugin (app: FastifyInstance, options: MetricsPluginOptions): Promise<void> {
  const { metrics } = options
  metrics.observePools(() => app.streamer.stats())
  app.get('/metrics', {
    schema: {
      operationId: 'getMetrics',
      summary: 'Prometheus metrics (text exposition format 0.0.4)',
      produces: ['text/plain'],
      response: { 200: { type: 'string', description: 'Prometheus text format' } }
    }
  }, async (_request, reply) => {
    const body = await metrics.metrics()
    return reply.type(metrics.contentType).send(body)
  })
}
