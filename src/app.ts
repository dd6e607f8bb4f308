import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { ServerConfig } from '../schemas/config.ts'
import health from '../plugins/health.ts'
import metricsPlugin from '../plugins/metrics.ts'
import openapi from '../plugins/openapi.ts'
import otel from '../plugins/otel.ts'
import streamerCore from '../plugins/streamer-core.ts'
import websocketTransport from '../plugins/websocket-transport.ts'
import httpStreamTransport from '../plugins/http-stream-transport.ts'
import pairedSessionTransport from '../plugins/paired-session-transport.ts'
import { StreamerMetrics } from './observability/metrics.ts'
import { StreamTelemetry } from './observability/session-telemetry.ts'
import { tracingEnabled } from './observability/tracing.ts'
import { dualProtocolServerFactory, type DualProtocolOptions } from './dual-protocol-server.ts'

export interface AppOptions {
  config: ServerConfig
  configDir: string
  fastify?: FastifyServerOptions
  // Warm the workers after start-up instead of before it: the app can listen at once, and
  // GET /api/v1/ready answers 503 until app.streamer.warm resolves (server.ts does this).
  background?: boolean
}

// The composition root: builds the app from a config and never listens (server.ts does).
export async function buildApp (options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    // A caller's request id (a proxy's, say) names the request in every log line.
    requestIdHeader: 'x-request-id',
    // Start-up waits for every model worker to warm up; a real model may take minutes.
    pluginTimeout: 0,
    // One port: HTTP/1.1 (+ WebSocket upgrade) and HTTP/2 (h2c prior knowledge, or TLS + ALPN).
    serverFactory: dualProtocolServerFactory({ tls: readTls(options.config, options.configDir) }),
    ...options.fastify
  })
  // Tracing first, so @fastify/otel sees every route; only when tracing is on at all.
  if (tracingEnabled()) await app.register(otel)
  // Metrics, spans and log lines for every session of every transport, fed by the core.
  const metrics = new StreamerMetrics()
  const observer = new StreamTelemetry({ metrics, log: app.log })
  // Before every route: @fastify/swagger describes the routes as they are added.
  await app.register(openapi)
  await app.register(streamerCore, { config: options.config, configDir: options.configDir, observer, background: options.background })
  await app.register(metricsPlugin, { metrics })
  await app.register(health)
  await app.register(websocketTransport)
  await app.register(httpStreamTransport)
  await app.register(pairedSessionTransport)
  return app
}

// TLS files are paths relative to the config file; both or neither must be set.
function readTls (config: ServerConfig, configDir: string): DualProtocolOptions['tls'] {
  if (config.tls_key === undefined && config.tls_cert === undefined) return undefined
  if (config.tls_key === undefined || config.tls_cert === undefined) {
    throw new Error(`TLS needs both tls_key and tls_cert (TLS_KEY, TLS_CERT); only ${config.tls_key === undefined ? 'tls_cert' : 'tls_key'} is set`)
  }
  return { key: readFileSync(resolve(configDir, config.tls_key)), cert: readFileSync(resolve(configDir, config.tls_cert)) }
}
