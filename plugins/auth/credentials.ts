import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { Mode } from '../../schemas/messages.ts'

// API keys and tokens, with no Fastify in them. Every comparison of a secret against what a
// client sent goes through `digestsEqual`, which compares two SHA-256 (or HMAC-SHA256) digests
// with crypto.timingSafeEqual: the time it takes does not depend on where they differ, and both
// sides always have the same length, so nothing is learnt from the length either.

/** Whether two digests are equal, in time that does not depend on their contents. */
export function digestsEqual (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest()

// A key's id: the first 8 hex digits of its SHA-256. Safe to log, put in a token and count
// sessions by; 32 bits of a hash say nothing useful about a key with real entropy.
const idOf = (digest: Buffer): string => digest.toString('hex').slice(0, 8)

const HASHED = /^sha256:([0-9a-f]{64})$/i

/** The configured API keys, held only as SHA-256 digests. */
export class KeyRing {
  readonly #keys: ReadonlyArray<{ id: string, digest: Buffer }>

  /** `keys`: each the key itself or `sha256:<64 hex digits>`, the SHA-256 of the key. */
  constructor (keys: readonly string[]) {
    this.#keys = keys.map((key, index) => {
      if (key.toLowerCase().startsWith('sha256:')) {
        const hex = HASHED.exec(key)?.[1]
        if (hex === undefined) throw new Error(`auth.api_keys.${index} starts with "sha256:" but is not followed by 64 hex digits`)
        const digest = Buffer.from(hex, 'hex')
        return { id: idOf(digest), digest }
      }
      const digest = sha256(key)
      return { id: idOf(digest), digest }
    })
  }

  get size (): number { return this.#keys.length }

  /** The id of the key `presented` is, or undefined. Every key is compared, a match or not. */
  match (presented: string): string | undefined {
    const digest = sha256(presented)
    let found: string | undefined
    for (const key of this.#keys) if (digestsEqual(key.digest, digest) && found === undefined) found = key.id
    return found
  }

  /** Whether a key with this id is configured (a token names the key that issued it). */
  has (id: string): boolean {
    return this.#keys.some((key) => key.id === id)
  }
}

// What a token carries, compact: it travels in URLs. `e` expiry (Unix seconds), `k` the id of
// the key that issued it, `m` the one mode it may stream in, `s` the one paired session it may
// use.
const Claims = Type.Object({
  e: Type.Integer({ minimum: 0 }),
  k: Type.String({ pattern: '^[0-9a-f]{8}$' }),
  m: Type.Optional(Mode),
  s: Type.Optional(Type.String({ minLength: 1, maxLength: 128 }))
}, { additionalProperties: false })
type Claims = Static<typeof Claims>

/** A verified token's scope and lifetime. */
export interface TokenClaims {
  keyId: string
  expiresAt: number // Unix seconds
  mode?: Mode
  sessionId?: string
}

export type TokenCheck =
  | { ok: true, claims: TokenClaims }
  | { ok: false, problem: 'malformed' | 'forged' | 'expired', message: string }

// `st1.<payload>.<signature>`: "st1" (streamer token, version 1) tells a token from an API key
// in an Authorization header; payload and signature are base64url, so the token is a valid
// URL query value and a valid WebSocket subprotocol name (RFC 6455 4.1: an RFC 7230 token).
const PREFIX = 'st1'
const MAX_TOKEN_LENGTH = 1024
const TOKEN_SHAPE = /^st1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/

/** Whether `value` has a token's shape (it may still be forged or expired). */
export function looksLikeToken (value: string): boolean {
  return value.length <= MAX_TOKEN_LENGTH && TOKEN_SHAPE.test(value)
}

/**
 * Issues and checks tokens: an HMAC-SHA256 over the payload with the server's secret. Instances
 * given the same secret accept each other's tokens; nothing is stored.
 */
export class TokenSigner {
  readonly #secret: Buffer

  constructor (secret: string | Buffer) {
    this.#secret = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret
  }

  /** A random secret, for a server that was not given one. */
  static randomSecret (): Buffer {
    return randomBytes(32)
  }

  issue (claims: TokenClaims): string {
    const payload: Claims = { e: claims.expiresAt, k: claims.keyId }
    if (claims.mode !== undefined) payload.m = claims.mode
    if (claims.sessionId !== undefined) payload.s = claims.sessionId
    const body = `${PREFIX}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`
    return `${body}.${this.#sign(body).toString('base64url')}`
  }

  /** The token's claims if its signature verifies and it has not expired at `now` (Unix seconds). */
  verify (token: string, now: number): TokenCheck {
    if (!looksLikeToken(token)) return { ok: false, problem: 'malformed', message: 'The token is not one this server issues (st1.<payload>.<signature>); get one from POST /api/v1/tokens' }
    const cut = token.lastIndexOf('.')
    const body = token.slice(0, cut)
    const signature = Buffer.from(token.slice(cut + 1), 'base64url')
    // The signature is checked before the payload is even parsed: nothing a forger wrote is read.
    if (!digestsEqual(this.#sign(body), signature)) {
      return { ok: false, problem: 'forged', message: 'The token\'s signature does not verify: it was altered, forged, or signed with another auth.token_secret' }
    }
    let payload: unknown
    try {
      payload = JSON.parse(Buffer.from(body.slice(PREFIX.length + 1), 'base64url').toString('utf8'))
    } catch {
      payload = undefined
    }
    if (!Value.Check(Claims, payload)) return { ok: false, problem: 'malformed', message: 'The token\'s payload is not one this server issues; get a new token from POST /api/v1/tokens' }
    if (payload.e <= now) {
      return { ok: false, problem: 'expired', message: `The token expired ${Math.max(0, Math.round(now - payload.e))} s ago: get a new one from POST /api/v1/tokens` }
    }
    const claims: TokenClaims = { keyId: payload.k, expiresAt: payload.e }
    if (payload.m !== undefined) claims.mode = payload.m
    if (payload.s !== undefined) claims.sessionId = payload.s
    return { ok: true, claims }
  }

  #sign (body: string): Buffer {
    return createHmac('sha256', this.#secret).update(body, 'utf8').digest()
  }
}
