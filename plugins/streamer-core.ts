import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Streamer, type StreamerOptions } from '../src/core/streamer.ts'
import type { ServerConfig } from '../schemas/config.ts'

declare module 'fastify' {
  interface FastifyInstance {
    streamer: Streamer
  }
}

export interface StreamerCorePluginOptions extends StreamerOptions {
  config: ServerConfig
}

// Starts the session core (worker pools warm before the app is ready) and stops it on close.
async function streamerCore (app: FastifyInstance, options: StreamerCorePluginOptions): Promise<void> {
  const streamer = await Streamer.start(options.config, {
    ...options,
    onWorkerError: (error) => { app.log.error({ err: error }, 'worker crashed while idle; the pool replaces it') }
  })
  app.decorate('streamer', streamer)
  // Shutdown: server.ts first drains the streams (streamer.drain: results and `end` for each);
  // whatever is still open when the app closes (a drain past its deadline, or an app closed
  // without one: tests, a failed start) is ended here by the core, the same way for every
  // transport, before the servers close (they wait for open responses). The pools stop last.
  app.addHook('preClose', async () => { streamer.shutdown() })
  app.addHook('onClose', async () => { await streamer.close() })
}

export default fp(streamerCore, { name: 'streamer-core' })
