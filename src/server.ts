import { loadConfig } from './config.ts'
import { buildApp } from './app.ts'
import { startTracing } from './observability/tracing.ts'

// The process: configuration, tracing, logger, listen, graceful shutdown.
const { config, configDir, source } = loadConfig()
// Before the app is built: it installs @fastify/otel only while tracing is on. Without
// OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_ENDPOINT this loads nothing and returns undefined.
const tracing = await startTracing()
const pretty = process.stdout.isTTY && process.env.CI === undefined
const app = await buildApp({
  config,
  configDir,
  // Listen at once; /api/v1/ready says 503 until the workers are warm.
  background: true,
  fastify: {
    logger: {
      level: config.log_level,
      ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {})
    }
  }
})

let stopping = false
const stop = (code: number): void => {
  if (stopping) return
  stopping = true
  app.close()
    .then(() => tracing?.shutdown()) // flushes spans still buffered
    .then(() => process.exit(code), (error: unknown) => {
      app.log.error({ err: error }, 'shutdown failed')
      process.exit(1)
    })
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'shutting down')
    stop(0)
  })
}

await app.listen({ port: config.port, host: config.host })
app.log.info({ config: source ?? '(defaults)', model: config.model.module, tracing: tracing?.exporters ?? [] }, 'listening; warming up the workers')
app.streamer.warm.then(() => {
  app.log.info('workers warm: ready')
}, (error: unknown) => {
  app.log.fatal({ err: error }, 'the workers failed to start')
  stop(1)
})
