import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { ServerConfig } from '../schemas/config.ts'
import health from '../plugins/health.ts'
import streamerCore from '../plugins/streamer-core.ts'
import websocketTransport from '../plugins/websocket-transport.ts'

export interface AppOptions {
  config: ServerConfig
  configDir: string
  fastify?: FastifyServerOptions
}

// The composition root: builds the app from a config and never listens (server.ts does).
export async function buildApp (options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    ...options.fastify
  })
  await app.register(streamerCore, { config: options.config, configDir: options.configDir })
  await app.register(health)
  await app.register(websocketTransport)
  return app
}
