import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ApiError } from '../schemas/error-codes.ts'
import type { StreamerMetrics } from '../src/observability/metrics.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Where /metrics is served when metrics.port is set (null: on the API port, or not listening yet). */
    metricsAddress: () => AddressInfo | null
  }
}

export interface MetricsPluginOptions {
  metrics: StreamerMetrics
}

export const METRICS_URL = '/metrics'

// GET /metrics: the Prometheus text exposition of this server's registry. Pool counters and
// queue depths are read from the streamer at scrape time. With metrics.port it is served on a
// port of its own (a plain node:http server on the same host: nothing else is served there),
// so the API port can face the world while only Prometheus reaches the metrics. Either way,
// with auth on and metrics.require_auth (the default), a scrape needs an API key.
async function metricsPlugin (app: FastifyInstance, options: MetricsPluginOptions): Promise<void> {
  const { metrics } = options
  const { port, require_auth: requireAuth } = app.streamer.config.metrics
  metrics.observePools(() => app.streamer.stats())
  const cluster = app.cluster
  if (cluster !== undefined) metrics.observeCluster(() => ({ redisUp: cluster.ready, members: cluster.members, owned: cluster.ownedCount }))
  let separate: Server | null = null
  app.decorate('metricsAddress', () => {
    const address = separate?.address()
    return typeof address === 'object' && address !== null ? address : null
  })

  if (port === undefined) {
    app.get(METRICS_URL, {
      config: { auth: requireAuth ? 'key' : 'public' },
      schema: {
        operationId: 'getMetrics',
        tags: ['operations'],
        summary: 'Prometheus metrics (text exposition format 0.0.4)',
        produces: ['text/plain'],
        response: { 200: { type: 'string', description: 'Prometheus text format' } }
      }
    }, async (_request, reply) => {
      const body = await metrics.metrics()
      return reply.type(metrics.contentType).send(body)
    })
    return
  }

  const host = app.streamer.config.host
  const server = createServer((request, response) => {
    serve(request, response).catch((error: unknown) => {
      app.log.error({ err: error }, 'metrics scrape failed')
      refuse(response, new ApiError('internal', 'Internal server error'))
    })
  })
  const serve = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = (request.url ?? '/').split('?', 1)[0]
    if (path !== METRICS_URL || (request.method !== 'GET' && request.method !== 'HEAD')) {
      refuse(response, new ApiError('not_found', `No route ${request.method ?? ''} ${path ?? ''}: this port serves GET ${METRICS_URL} only`))
      return
    }
    if (requireAuth) {
      try {
        app.authenticator.authenticate({ authorization: request.headers.authorization, address: request.socket.remoteAddress ?? '' }, 'key')
      } catch (error) {
        if (error instanceof ApiError) {
          refuse(response, error)
          return
        }
        throw error
      }
    }
    const body = await metrics.metrics()
    response.writeHead(200, { 'content-type': metrics.contentType })
    response.end(request.method === 'HEAD' ? undefined : body)
  }
  // Before the API listens (onReady), so a port in use fails start-up instead of being noticed later.
  app.addHook('onReady', async () => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(error.code === 'EADDRINUSE' ? new Error(`metrics.port ${port} (METRICS_PORT) is already in use`, { cause: error }) : error)
      })
      server.listen(port, host, () => { resolve() })
    })
    separate = server
  })
  app.addHook('onClose', async () => {
    if (separate === null) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
}

// The documented error body, written by hand: this server has no Fastify error handler.
function refuse (response: ServerResponse, error: ApiError): void {
  if (response.headersSent) {
    response.destroy()
    return
  }
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' }
  if (error.retryAfter !== undefined) headers['retry-after'] = String(error.retryAfter)
  response.writeHead(error.statusCode, headers)
  response.end(JSON.stringify(error.toResponse()))
}

export default fp(metricsPlugin, { name: 'metrics', dependencies: ['auth', 'streamer-core'] })
