import { inspect } from 'node:util'
import type { ServerConfig } from '../schemas/config.ts'
import { loadConfig } from './config.ts'
import { buildApp } from './app.ts'
import { startTracing } from './observability/tracing.ts'

// The process: configuration, tracing, logger, listen, graceful shutdown.

// Until the config is loaded, the environment's LOG_LEVEL decides whether a failure shows its
// stack; afterwards the configured level does.
let logLevel = process.env.LOG_LEVEL

// Every start-up failure ends here: one line on stderr that says what is wrong (the errors
// thrown on the way carry the whole text), the stack only for someone debugging.
function fail (error: unknown): never {
  const message = error instanceof Error ? error.message : String(error)
  process.stderr.write(`streamer: ${message.replace(/\s*\n\s*/g, ' ')}\n`)
  if (logLevel === 'debug' || logLevel === 'trace') process.stderr.write(`${inspect(error)}\n`)
  process.exit(1)
}

// listen()'s errors name a syscall and an errno; these say which setting to change.
function listenError (error: unknown, config: ServerConfig): unknown {
  const cause = { cause: error }
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE': return new Error(`port ${config.port} is already in use (set PORT to another)`, cause)
    case 'EACCES': return new Error(`port ${config.port} needs privileges this process does not have (set PORT to 1024 or above)`, cause)
    case 'EADDRNOTAVAIL': return new Error(`host ${config.host} is not an address of this machine (set HOST to another)`, cause)
    case 'ENOTFOUND':
    case 'EAI_AGAIN': return new Error(`host ${config.host} does not resolve to an address (set HOST to another)`, cause)
    default: return error
  }
}

async function start (): Promise<void> {
  const { config, configDir, source } = loadConfig()
  logLevel = config.log_level
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
  // `failure`: the workers could not start; it is reported once the server has closed.
  const stop = (code: number, failure?: unknown): void => {
    if (stopping) return
    stopping = true
    app.close()
      .then(() => tracing?.shutdown()) // flushes spans still buffered
      .then(() => failure === undefined ? process.exit(code) : fail(failure), (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed')
        if (failure !== undefined) fail(failure)
        process.exit(1)
      })
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.log.info({ signal }, 'shutting down')
      stop(0)
    })
  }

  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (error) {
    throw listenError(error, config)
  }
  app.log.info({ config: source ?? '(defaults)', model: config.model.module, tracing: tracing?.exporters ?? [] }, 'listening; warming up the workers')
  app.streamer.warm.then(() => {
    app.log.info('workers warm: ready')
  }, (error: unknown) => { stop(1, error) })
}

await start().catch(fail)
