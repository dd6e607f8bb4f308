import { loadConfig } from './config.ts'
import { buildApp } from './app.ts'

// The process: configuration, logger, listen, graceful shutdown.
const { config, configDir, source } = loadConfig()
const pretty = process.stdout.isTTY && process.env.CI === undefined
const app = await buildApp({
  config,
  configDir,
  fastify: {
    logger: {
      level: config.log_level,
      ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {})
    }
  }
})
app.log.info({ config: source ?? '(defaults)', model: config.model.module }, 'workers warm')

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (stopping) return
    stopping = true
    app.log.info({ signal }, 'shutting down')
    app.close().then(() => process.exit(0), (error: unknown) => {
      app.log.error({ err: error }, 'shutdown failed')
      process.exit(1)
    })
  })
}

await app.listen({ port: config.port, host: config.host })
