import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'

// A fast, reliable dummy model for end-to-end tests: set through config overrides, the same
// mechanism a user has (config.json's model.options).
export const FAST_MODEL = { delay: 0, constant_factor: 0, jitter: 0, failure_rate: 0, panic_rate: 0, warmup_penalty: 1 }

export interface TestServer {
  app: FastifyInstance
  port: number
  http: string // http://127.0.0.1:port (https:// with tls_key/tls_cert in the overrides)
  ws: string // ws://127.0.0.1:port (wss://)
  close: () => Promise<void>
}

export async function startServer (overrides: Record<string, unknown> = {}): Promise<TestServer> {
  const { config, configDir } = loadConfig({
    file: null,
    env: {},
    overrides: { model: { threads: 2, options: FAST_MODEL }, ...overrides }
  })
  const app = await buildApp({ config, configDir })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const secure = config.tls_key !== undefined ? 's' : ''
  return { app, port, http: `http${secure}://127.0.0.1:${port}`, ws: `ws${secure}://127.0.0.1:${port}`, close: () => app.close() }
}
