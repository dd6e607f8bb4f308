import type { FastifyInstance, FastifyRequest, FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { ServerConfig } from '../../schemas/config.ts'
import type { Mode } from '../../schemas/messages.ts'
import { Authenticator, checkScope, type AuthPolicy, type Principal } from './authenticator.ts'

export { checkScope, keyIdOf, type AuthPolicy, type Principal } from './authenticator.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route asks of a request when authentication is on; unset: an API key. */
    auth?: AuthPolicy
    /** A streaming route's mode: a token scoped to the other mode is refused before the route runs. */
    authMode?: Mode
  }
  interface FastifyRequest {
    /** Who the request is: set before any route's own hooks run. */
    auth: Principal
  }
  interface FastifyInstance {
    authenticator: Authenticator
  }
}

export interface AuthPluginOptions {
  config: ServerConfig
}

// The WebSocket subprotocol that carries a token: a browser cannot set headers on a WebSocket,
// so it offers `new WebSocket(url, ['token', token])` and the server answers with `token`.
export const TOKEN_SUBPROTOCOL = 'token'

// Authentication for every route, in one onRequest hook at the root: it runs before any route's
// own hooks and before a body is read, and on the request that asks for a WebSocket upgrade too,
// so a refused upgrade is a plain HTTP 401/403/429 (a browser sees a failed connection) and not
// a socket that opens and closes. Routes say what they need in their config (`auth`); a route
// that says nothing needs an API key, so a route added later is never open by mistake.
async function auth (app: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const authenticator = new Authenticator(options.config.auth)
  app.decorate('authenticator', authenticator)
  // Set by the hook below for every request before its handler runs.
  app.decorateRequest('auth')

  if (!authenticator.enabled) {
    app.log.warn('authentication is off: auth.api_keys (STREAMER_API_KEYS) is empty, so anyone who can reach this port may use every route')
  } else if (authenticator.randomSecret) {
    app.log.warn('auth.token_secret (STREAMER_TOKEN_SECRET) is not set: tokens are signed with a random secret made at start-up, so they do not survive a restart and are not accepted by other instances')
  }

  app.addHook('onRequest', async (request) => {
    const queryToken = takeQueryToken(request)
    // CORS preflights carry no credentials by design, and OPTIONS does nothing else here.
    if (request.method === 'OPTIONS') {
      request.auth = authenticator.authenticate({ address: request.ip }, 'public')
      return
    }
    const config = request.routeOptions.config
    // An unknown route is answered 404 whoever asks: there is nothing behind it to protect.
    const policy: AuthPolicy = request.is404 ? 'public' : config.auth ?? 'key'
    request.auth = authenticator.authenticate({
      authorization: request.headers.authorization,
      token: queryToken ?? subprotocolToken(request),
      address: request.ip
    }, policy)
    if (config.authMode !== undefined) checkScope(request.auth, { mode: config.authMode })
  })

  // An upgrade request answered with plain HTTP (refused here, or by any route) still owns its
  // socket: Node's HTTP parser let go of it for the upgrade, and @fastify/websocket only closes
  // those of requests that reached its own hooks. Without this the socket stays half-open until
  // the client leaves, and app.close() waits for it. (A completed upgrade is hijacked and never
  // gets here.)
  app.addHook('onResponse', async (request) => {
    if (request.headers.upgrade?.toLowerCase() === 'websocket' && request.raw.httpVersionMajor < 2) request.raw.socket.destroy()
  })
}

export default fp(auth, { name: 'auth', dependencies: ['errors'] })

// `?token=` is the auth layer's, never a route's: it is taken out of the query before the
// route's query schema sees it (those refuse unknown parameters), with authentication on or off.
function takeQueryToken (request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown> | null | undefined
  if (query === null || typeof query !== 'object' || !('token' in query)) return undefined
  const value = query.token
  delete query.token
  // Repeated (?token=a&token=b): the first, so a second cannot change which one is checked.
  const first: unknown = Array.isArray(value) ? value[0] : value
  return typeof first === 'string' ? first : undefined
}

// The entry after "token" in Sec-WebSocket-Protocol, on an upgrade request only.
function subprotocolToken (request: FastifyRequest): string | undefined {
  const header = request.headers['sec-websocket-protocol']
  if (header === undefined || request.headers.upgrade?.toLowerCase() !== 'websocket') return undefined
  const offered = header.split(',').map((protocol) => protocol.trim())
  const at = offered.indexOf(TOKEN_SUBPROTOCOL)
  return at === -1 ? undefined : offered[at + 1]
}

/**
 * ws's handleProtocols: `token` when offered (the token itself is the next entry, checked by the
 * auth hook before the upgrade), otherwise ws's own default, the first protocol offered.
 */
export function selectSubprotocol (protocols: Set<string>): string | false {
  if (protocols.has(TOKEN_SUBPROTOCOL)) return TOKEN_SUBPROTOCOL
  const first = protocols.values().next()
  return first.done === true ? false : first.value
}

const TOKEN_IN_URL = /([?&]token=)[^&#]*/gi

/** A URL with the value of any `token` query parameter replaced, for logs. */
export function redactUrl (url: string): string {
  return url.replace(TOKEN_IN_URL, '$1[redacted]')
}

/**
 * Fastify options whose logger writes a request's URL with `token=` redacted. Fastify's own
 * request serializer (used by any line that logs `req`) is replaced by the same fields, the URL
 * redacted; request-log.ts leaves the query out altogether. A logger instance passed in as is is
 * the caller's to configure.
 */
export function withLogRedaction (options: FastifyServerOptions | undefined): FastifyServerOptions | undefined {
  const logger = options?.logger
  if (options === undefined || typeof logger !== 'object' || logger === null) return options
  const own = (logger as { serializers?: Record<string, unknown> }).serializers
  return {
    ...options,
    logger: {
      ...logger,
      serializers: {
        ...own,
        req: (request: FastifyRequest) => {
          const version = request.headers['accept-version']
          return {
            method: request.method,
            url: redactUrl(request.url),
            version: Array.isArray(version) ? version[0] : version,
            host: request.host,
            remoteAddress: request.ip,
            remotePort: request.socket.remotePort
          }
        }
      }
    }
  }
}
