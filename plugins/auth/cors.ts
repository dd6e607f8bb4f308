import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import cors, { type FastifyCorsOptions } from '@fastify/cors'
import type { ServerConfig } from '../../schemas/config.ts'
import { PAIRED_PREFIX } from '../paired-session/index.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: @fastify/cors leaves the route alone (its documented per-route switch). */
    cors?: false
  }
}

export interface CorsPluginOptions {
  config: ServerConfig
}

// The routes a page on another origin calls: paired sessions (fetch + EventSource) and the HTTP
// upload (fetch with a body). The WebSocket routes need no CORS (browsers do not preflight an
// upgrade), and nothing else is for pages.
function browserRoute (url: string): boolean {
  const path = url.split('?', 1)[0] ?? url
  return path === PAIRED_PREFIX || path.startsWith(`${PAIRED_PREFIX}/`) || path === '/api/v1/segmented' || path === '/api/v1/simple'
}

// CORS for the browser routes, at the root and before the auth hook: a preflight (which never
// carries credentials) is answered before authentication runs, and a refusal (401, 403, 429)
// carries the CORS headers too, so the page can read why. Origins come from paired.cors_origins
// (src/config.ts makes its default none when auth is on). No cookies are used, so credentials
// stay off; Authorization is allowed for pages that send a key or a token as a header, and
// Retry-After is exposed so a page can honour a 429 or 503.
async function corsPolicy (app: FastifyInstance, options: CorsPluginOptions): Promise<void> {
  const origins = options.config.paired.cors_origins
  const allowed: FastifyCorsOptions = {
    origin: origins.includes('*') ? '*' : origins.length === 0 ? false : origins,
    methods: ['GET', 'POST'],
    // Last-Event-ID is listed because EventSource sets it on a reconnect.
    allowedHeaders: ['Content-Type', 'Last-Event-ID', 'Authorization'],
    exposedHeaders: ['Retry-After'],
    credentials: false,
    maxAge: 600
  }
  const none: FastifyCorsOptions = { origin: false }
  // Other routes opt out before the delegator runs, so their responses stay exactly as without
  // CORS (no Vary: Origin). The preflight route @fastify/cors adds ('*') must stay in.
  app.addHook('onRoute', (route) => {
    if (route.url !== '*' && !browserRoute(route.url)) route.config = { ...route.config, cors: false }
  })
  await app.register(cors, {
    delegator: (request: FastifyRequest, callback: (error: Error | null, options?: FastifyCorsOptions) => void) => {
      callback(null, browserRoute(request.url) ? allowed : none)
    }
  })
}

export default fp(corsPolicy, { name: 'cors-policy' })
