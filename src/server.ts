import { inspect } from 'node:util'
import type { ServerConfig } from '../schemas/config.ts'
import type { Transport } from '../schemas/messages.ts'
import { loadConfig } from './config.ts'
import { buildApp } from './app.ts'
import { startTracing } from './observability/tracing.ts'

// The process: configuration, tracing, logger, listen, graceful shutdown.

// After the drain deadline, app.close() has this long (stopping the worker pools, closing the
// HTTP/2 sessions, flushing spans) before the process exits anyway.
const HARD_EXIT_GRACE_SECONDS = 5
// A second signal this soon after the first is the same stop delivered twice (see onSignal).
const DUPLICATE_SIGNAL_MS = 500
const TRANSPORTS: readonly Transport[] = ['websocket', 'http', 'paired']

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

  // One shutdown at a time: a signal, or workers that could not start.
  let stopping = false
  // `failure`: the workers could not start; it is reported once the server has closed.
  const stop = (code: number, failure?: unknown): void => {
    if (stopping) return
    stopping = true
    closeAndExit(code, failure)
  }
  const closeAndExit = (code: number, failure?: unknown): void => {
    app.close()
      .then(() => tracing?.shutdown()) // flushes spans still buffered
      .then(() => failure === undefined ? process.exit(code) : fail(failure), (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed')
        if (failure !== undefined) fail(failure)
        process.exit(1)
      })
  }

  // SIGTERM/SIGINT: drain, then close. Readiness is 503 and new streams are refused at once;
  // every open stream is told (`shutdown`), gets its results and `end`, and its transport
  // closes; whatever is still open after drain_seconds is ended with shutting_down. app.close()
  // then closes what serves nothing (idle and half-sent connections, sockets with no stream)
  // and stops the workers.
  const drainSeconds = config.shutdown.drain_seconds
  let firstSignalAt = 0
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // Two signals at once are one request to stop: a terminal's Ctrl-C reaches the whole
      // process group, systemd's SIGTERM every process of the unit, and `npm start` forwards
      // its own copy to this process too (measured: the second arrives within milliseconds).
      if (performance.now() - firstSignalAt < DUPLICATE_SIGNAL_MS) return
      app.log.warn({ signal, still_open: stillOpen() }, 'signal during shutdown: exiting without finishing it')
      process.exit(1)
    }
    stopping = true
    firstSignalAt = performance.now()
    app.log.info({ signal, drain_seconds: drainSeconds, streams: app.streamer.registry.size }, 'shutting down: draining open streams (a second signal exits at once)')
    // However the drain and the close go, the process is gone shortly after the deadline.
    setTimeout(() => {
      app.log.error({ still_open: stillOpen() }, `shutdown did not finish within shutdown.drain_seconds + ${HARD_EXIT_GRACE_SECONDS} s: exiting`)
      process.exit(1)
    }, (drainSeconds + HARD_EXIT_GRACE_SECONDS) * 1000).unref()
    // In a cluster, paired sessions are handed to the other instances first (they go on there).
    const handingOver = app.cluster?.handOver().then((count) => { if (count > 0) app.log.info({ sessions: count }, 'paired sessions handed over to the cluster') }) ?? Promise.resolve()
    handingOver.then(() => app.streamer.drain(drainSeconds)).then(() => { closeAndExit(0) }, (error: unknown) => {
      app.log.error({ err: error }, 'draining failed; closing')
      closeAndExit(1)
    })
  }
  // What keeps the process from exiting: streams by transport, connections by state.
  const stillOpen = (): Record<string, unknown> => {
    const streams = Object.fromEntries(TRANSPORTS.map((transport) => [transport, app.streamer.registry.count(transport)]))
    const server = app.server as { connectionCounts?: () => Record<string, number> }
    return { streams, connections: server.connectionCounts?.() }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (error) {
    // The worker threads are still loading their models: exiting at once would tear
    // onnxruntime down mid-load, which aborts the process (SIGABRT, a C++ message on stderr)
    // instead of exiting 1 with the one line. Closing waits for the warm-up, then stops the
    // pools; the line is printed after, or after the grace period if the close hangs.
    const failure = listenError(error, config)
    setTimeout(() => { fail(failure) }, HARD_EXIT_GRACE_SECONDS * 1000).unref()
    stop(1, failure)
    return
  }
  app.log.info({ config: source ?? '(defaults)', model: config.model.module, tracing: tracing?.exporters ?? [] }, 'listening; warming up the workers')
  app.streamer.warm.then(() => {
    app.log.info('workers warm: ready')
  }, (error: unknown) => { stop(1, error) })
}

await start().catch(fail)
