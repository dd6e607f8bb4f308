import type { AuthConfig } from '../../schemas/config.ts'
import { ApiError } from '../../schemas/error-codes.ts'
import type { Mode } from '../../schemas/messages.ts'
import { FailureLimiter } from './failure-limiter.ts'
import { KeyRing, looksLikeToken, TokenSigner, type TokenClaims } from './credentials.ts'

// Who a request is, from what it presented, and whether that covers what it asks for. No
// Fastify here: the plugin (index.ts) and the separate metrics port both use it.

/** Who a request is. */
export type Principal =
  | { kind: 'open' } // authentication is off: everyone may do everything
  | { kind: 'anonymous' } // authentication is on and the request had no credentials (public routes only)
  | { kind: 'key', keyId: string }
  | { kind: 'token', keyId: string, token: TokenClaims }

/**
 * What a route asks of a request when authentication is on:
 * - `public`: nothing (health, readiness); credentials, if sent, are still checked;
 * - `key`: an API key (operations, documentation, minting tokens);
 * - `stream`: an API key or a token (the streaming routes a browser uses).
 */
export type AuthPolicy = 'public' | 'key' | 'stream'

/** The credentials a request carries: at most one is used, the Authorization header first. */
export interface Presented {
  authorization?: string | undefined // the Authorization header
  token?: string | undefined // ?token= or the WebSocket subprotocol
  address: string // the client's address, for the limit on failures
}

export interface TokenRequest {
  expires_in?: number
  mode?: Mode
  session_id?: string
}

// A token's lifetime when the request does not ask for one.
export const DEFAULT_TOKEN_TTL_SECONDS = 60

const OPEN: Principal = { kind: 'open' }
const ANONYMOUS: Principal = { kind: 'anonymous' }

const MISSING = 'This server requires credentials: send Authorization: Bearer <API key>, or a token from POST /api/v1/tokens as ?token=<token> (or, on a WebSocket, as the subprotocols ["token", <token>])'

export class Authenticator {
  /** False with no API keys configured: every request is let through as `open`. */
  readonly enabled: boolean
  /** True when no auth.token_secret was configured and tokens are signed with a random one. */
  readonly randomSecret: boolean
  readonly maxTtlSeconds: number
  readonly #keys: KeyRing
  readonly #signer: TokenSigner
  readonly #failures: FailureLimiter
  readonly #now: () => number

  constructor (config: AuthConfig, options: { now?: () => number } = {}) {
    this.#keys = new KeyRing(config.api_keys)
    this.enabled = this.#keys.size > 0
    this.randomSecret = config.token_secret === undefined
    this.#signer = new TokenSigner(config.token_secret ?? TokenSigner.randomSecret())
    this.maxTtlSeconds = config.token_max_ttl_seconds
    this.#now = options.now ?? Date.now
    this.#failures = new FailureLimiter({ max: config.max_failures, windowMs: config.failure_window_seconds * 1000, now: this.#now })
  }

  /**
   * Who the request is, or an ApiError: `unauthorized` (401) for missing or bad credentials,
   * `forbidden` (403) for a token where the route needs a key, `rate_limited` (429) for an
   * address that sent too many bad credentials lately.
   */
  authenticate (presented: Presented, policy: AuthPolicy): Principal {
    if (!this.enabled) return OPEN
    if (presented.authorization === undefined && presented.token === undefined) {
      if (policy === 'public') return ANONYMOUS
      throw new ApiError('unauthorized', MISSING, { field: 'authorization' })
    }
    const wait = this.#failures.retryAfter(presented.address)
    if (wait !== undefined) {
      throw new ApiError('rate_limited', `Too many requests with bad credentials from this address (auth.max_failures); try again in ${wait} s`, { retryAfter: wait })
    }
    let principal: Principal
    try {
      principal = this.#identify(presented)
    } catch (error) {
      this.#failures.fail(presented.address)
      throw error
    }
    if (policy === 'key' && principal.kind === 'token') {
      throw new ApiError('forbidden', 'A token grants streaming only: this route needs an API key (Authorization: Bearer <key>)', { field: 'token' })
    }
    return principal
  }

  /** A token for the holder of an API key, scoped as asked. */
  issue (principal: Principal, request: TokenRequest): { token: string, expires_in: number } {
    // With authentication off there is no key to tie the token to; it is accepted (and not needed).
    const keyId = principal.kind === 'key' || principal.kind === 'token' ? principal.keyId : '00000000'
    const expiresIn = request.expires_in ?? Math.min(DEFAULT_TOKEN_TTL_SECONDS, this.maxTtlSeconds)
    const claims: TokenClaims = { keyId, expiresAt: Math.floor(this.#now() / 1000) + expiresIn }
    if (request.mode !== undefined) claims.mode = request.mode
    if (request.session_id !== undefined) claims.sessionId = request.session_id
    return { token: this.#signer.issue(claims), expires_in: expiresIn }
  }

  #identify (presented: Presented): Principal {
    if (presented.authorization !== undefined) {
      const value = /^Bearer +(\S+) *$/i.exec(presented.authorization)?.[1]
      if (value === undefined) throw new ApiError('unauthorized', 'The Authorization header must be "Bearer <API key or token>"', { field: 'authorization' })
      const keyId = this.#keys.match(value)
      if (keyId !== undefined) return { kind: 'key', keyId }
      if (looksLikeToken(value)) return this.#verifyToken(value, 'authorization')
      throw new ApiError('unauthorized', 'The API key is not valid on this server', { field: 'authorization' })
    }
    return this.#verifyToken(presented.token ?? '', 'token')
  }

  #verifyToken (token: string, field: string): Principal {
    const checked = this.#signer.verify(token, this.#now() / 1000)
    if (!checked.ok) throw new ApiError('unauthorized', checked.message, { field })
    // Removing a key from auth.api_keys revokes the tokens it issued too.
    if (!this.#keys.has(checked.claims.keyId)) throw new ApiError('unauthorized', 'The API key that issued this token is no longer accepted by this server', { field })
    return { kind: 'token', keyId: checked.claims.keyId, token: checked.claims }
  }
}

/** The id of the key behind a request (its own, or its token's issuer), for per-key limits. */
export function keyIdOf (principal: Principal): string | undefined {
  return principal.kind === 'key' || principal.kind === 'token' ? principal.keyId : undefined
}

/**
 * Throws `forbidden` unless the principal may use what is asked: a token scoped to a mode
 * streams in that mode only; one scoped to a paired session may use that session's routes and
 * nothing else. Keys (and an open server) may do anything.
 */
export function checkScope (principal: Principal, wanted: { mode?: Mode | undefined, sessionId?: string | undefined }): void {
  if (principal.kind !== 'token') return
  const { mode, sessionId } = principal.token
  if (sessionId !== undefined && wanted.sessionId !== sessionId) {
    throw new ApiError('forbidden', 'This token is scoped to one paired session (session_id): it may use that session\'s routes only', { field: 'token' })
  }
  if (mode !== undefined && wanted.mode !== undefined && wanted.mode !== mode) {
    throw new ApiError('forbidden', `This token is scoped to ${mode} mode (mode): it cannot be used for a ${wanted.mode} stream`, { field: 'token' })
  }
}
