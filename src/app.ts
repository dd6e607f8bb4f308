import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { ServerConfig } from '../schemas/config.ts'
import health from '../plugins/health.ts'
import metricsPlugin from '../plugins/metrics.ts'
import openapi from '../plugins/openapi.ts'
import otel from '../plugins/otel.ts'
import streamerCore from '../plugins/streamer-core.ts'
import errors, { frameworkErrorOptions } from '../plugins/errors.ts'
import requestLog from '../plugins/request-log.ts'
import websocketTransport from '../plugins/websocket/index.ts'
import httpStreamTransport from '../plugins/http-stream/index.ts'
import pairedSessionTransport from '../plugins/paired-session/index.ts'
import cluster from '../plugins/cluster.ts'
import auth, { withLogRedaction } from '../plugins/auth/index.ts'
import corsPolicy from '../plugins/auth/cors.ts'
import tokensRoute from '../plugins/auth/tokens.ts'
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
    // One line per request, from plugins/request-log.ts, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Refusals before routing (bad URLs, unparseable requests) in the documented error body.
    ...frameworkErrorOptions,
    // Start-up waits for every model worker to warm up; a real model may take minutes.
    pluginTimeout: 0,
    // One port: HTTP/1.1 (+ WebSocket upgrade) and HTTP/2 (h2c prior knowledge, or TLS + ALPN).
    serverFactory: dualProtocolServerFactory({ tls: readTls(options.config, options.configDir), maxConcurrentStreams: options.config.limits.max_streams_per_connection }),
    // A token in a URL (?token=) never reaches a log line (plugins/auth).
    ...withLogRedaction(options.fastify)
  })
  // Tracing first, so @fastify/otel sees every route; only when tracing is on at all.
  if (tracingEnabled()) await app.register(otel)
  // Metrics, spans and log lines for every session of every transport, fed by the core.
  const metrics = new StreamerMetrics()
  const observer = new StreamTelemetry({ metrics, log: app.log })
  // Before every route: the validator, the error body and the request log apply to all of them,
  // and @fastify/swagger describes the routes as they are added.
  await app.register(errors)
  await app.register(requestLog)
  // Authentication (plugins/auth/): CORS first, so preflights are answered and refusals carry
  // CORS headers; then the hook every route's requests pass, before any route is added.
  await app.register(corsPolicy, { config: options.config })
  await app.register(auth, { config: options.config })
  await app.register(openapi)
  await app.register(tokensRoute)
  await app.register(streamerCore, { config: options.config, configDir: options.configDir, observer, background: options.background })
  await app.register(cluster)
  await app.register(metricsPlugin, { metrics })
  await app.register(health)
  await app.register(websocketTransport)
  await app.register(httpStreamTransport)
  await app.register(pairedSessionTransport)
  await app.register(import('../plugins/web-page.ts')) // the try-it page: / and /web/* (web/)
  return app
}

// TLS files are paths relative to the config file; both or neither must be set. Both are
// parsed here, so a missing, unreadable or mismatched file fails start-up with a message naming
// the field and the file instead of an OpenSSL error from deep inside the server.
function readTls (config: ServerConfig, configDir: string): DualProtocolOptions['tls'] {
  if (config.tls_key === undefined && config.tls_cert === undefined) return undefined
  if (config.tls_key === undefined || config.tls_cert === undefined) {
    throw new Error(`TLS needs both tls_key and tls_cert (TLS_KEY, TLS_CERT); only ${config.tls_key === undefined ? 'tls_cert' : 'tls_key'} is set`)
  }
  const keyPath = resolve(configDir, config.tls_key)
  const certPath = resolve(configDir, config.tls_cert)
  const key = readTlsFile('tls_key (TLS_KEY)', keyPath, !isAbsolute(config.tls_key))
  const cert = readTlsFile('tls_cert (TLS_CERT)', certPath, !isAbsolute(config.tls_cert))
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(key)
  } catch (error) {
    throw new Error(`tls_key (TLS_KEY) ${keyPath} is not a PEM private key without a passphrase: ${(error as Error).message}`, { cause: error })
  }
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(cert)
  } catch (error) {
    throw new Error(`tls_cert (TLS_CERT) ${certPath} is not a PEM certificate: ${(error as Error).message}`, { cause: error })
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new Error(`tls_cert (TLS_CERT) ${certPath} does not belong to the key in tls_key (TLS_KEY) ${keyPath}`)
  }
  return { key, cert }
}

function readTlsFile (field: string, path: string, relative: boolean): Buffer {
  try {
    return readFileSync(path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable (permission denied)' : code === 'EISDIR' ? 'is a directory' : `cannot be read: ${(error as Error).message}`
    const hint = relative ? ' (a relative path is resolved against the config file\'s directory, or the working directory without one)' : ''
    throw new Error(`${field} ${path} ${why}${hint}`, { cause: error })
  }
}
