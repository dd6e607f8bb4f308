import t from 'tap'
import * as crypto from 'node:crypto'
import { createHash, createHmac } from 'node:crypto'
import { Value } from '@sinclair/typebox/value'
import { AuthConfig } from '../../schemas/config.ts'
import { ApiError } from '../../schemas/error-codes.ts'
import { Authenticator, checkScope, keyIdOf, type AuthPolicy, type Presented, type Principal } from '../../plugins/auth/authenticator.ts'
import { digestsEqual, KeyRing, looksLikeToken, TokenSigner } from '../../plugins/auth/credentials.ts'
import { FailureLimiter } from '../../plugins/auth/failure-limiter.ts'
import { redactUrl, selectSubprotocol } from '../../plugins/auth/index.ts'
import { loadConfig } from '../../src/config.ts'

// Keys, tokens, scopes and the limit on failures, without a server (test/e2e/auth*.test.ts run
// them against real servers and clients).

const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex')
const SECRET = 'unit-test-secret-that-is-long-enough'
const authConfig = (overrides: Record<string, unknown> = {}): AuthConfig => Value.Default(AuthConfig, { ...overrides }) as AuthConfig

function refusal (run: () => unknown): ApiError {
  try {
    run()
  } catch (error) {
    if (error instanceof ApiError) return error
    throw error
  }
  throw new Error('expected an ApiError')
}

t.test('keys: plain and sha256: forms, ids that are not the key', async (t) => {
  const ring = new KeyRing(['alpha-key', `sha256:${sha256Hex('beta-key')}`, `SHA256:${sha256Hex('gamma-key').toUpperCase()}`])
  const alpha = ring.match('alpha-key')
  t.equal(alpha, sha256Hex('alpha-key').slice(0, 8), 'the id is the first 8 hex digits of the key\'s SHA-256')
  t.equal(ring.match('beta-key'), sha256Hex('beta-key').slice(0, 8), 'a hashed key matches the key it is the hash of')
  t.equal(ring.match('gamma-key'), sha256Hex('gamma-key').slice(0, 8), 'the prefix and the hex digits in any case')
  t.equal(ring.match(`sha256:${sha256Hex('beta-key')}`), undefined, 'the hash itself is not the key')
  t.equal(ring.match('alpha-ke'), undefined)
  t.equal(ring.match(''), undefined)
  t.ok(ring.has(alpha as string))
  t.notOk(ring.has('00000000'))
  t.equal(new KeyRing(['same']).match('same'), new KeyRing([`sha256:${sha256Hex('same')}`]).match('same'), 'a key and its hash have one id')
  t.throws(() => new KeyRing(['sha256:abc']), /auth\.api_keys\.0 starts with "sha256:" but is not followed by 64 hex digits/)
  t.equal(digestsEqual(Buffer.alloc(32), Buffer.alloc(31)), false, 'digests of different lengths are unequal, without throwing')
})

t.test('every comparison of a secret goes through crypto.timingSafeEqual, on equal-length digests', async (t) => {
  const calls: Array<[number, number]> = []
  const spied = {
    ...crypto,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView): boolean => {
      calls.push([a.byteLength, b.byteLength])
      return crypto.timingSafeEqual(a, b)
    }
  }
  const mocked = await t.mockImport<typeof import('../../plugins/auth/credentials.ts')>('../../plugins/auth/credentials.ts', { 'node:crypto': spied })
  const ring = new mocked.KeyRing(['one', 'two', 'three'])
  t.ok(ring.match('one'))
  t.same(calls, [[32, 32], [32, 32], [32, 32]], 'a key is compared with every configured key (a match does not stop early), as 32-byte digests')
  calls.length = 0
  t.equal(ring.match('a presented key of another length entirely'), undefined)
  t.same(calls, [[32, 32], [32, 32], [32, 32]], 'whatever its length, what is compared is its digest')

  const signer = new mocked.TokenSigner(SECRET)
  const token = signer.issue({ keyId: 'abcdef01', expiresAt: Math.floor(Date.now() / 1000) + 60 })
  calls.length = 0
  t.ok(signer.verify(token, Date.now() / 1000).ok)
  t.same(calls, [[32, 32]], 'a token\'s signature is compared once, as a 32-byte HMAC')
  calls.length = 0
  const forged = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`
  t.match(signer.verify(forged, Date.now() / 1000), { ok: false, problem: 'forged' })
  t.same(calls, [[32, 32]], 'a forged signature too')
})

t.test('tokens: signed claims, refused when expired, altered, or signed with another secret', async (t) => {
  const signer = new TokenSigner(SECRET)
  const now = 1_800_000_000
  const token = signer.issue({ keyId: 'abcdef01', expiresAt: now + 60, mode: 'simple', sessionId: 'q2w9Yf0cR3u7lq1l1uYy8A' })
  t.ok(looksLikeToken(token))
  t.match(token, /^st1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/, 'base64url parts: a URL query value and a WebSocket subprotocol name as it is')
  t.equal(encodeURIComponent(token), token, 'nothing in it needs escaping in a URL')
  t.same(signer.verify(token, now), { ok: true, claims: { keyId: 'abcdef01', expiresAt: now + 60, mode: 'simple', sessionId: 'q2w9Yf0cR3u7lq1l1uYy8A' } })
  t.same(new TokenSigner(Buffer.from(SECRET)).verify(token, now), signer.verify(token, now), 'another instance with the same secret accepts it')

  t.match(signer.verify(token, now + 60), { ok: false, problem: 'expired', message: /expired 0 s ago/ }, 'valid strictly before its expiry')
  t.match(signer.verify(token, now + 90), { ok: false, problem: 'expired', message: /expired 30 s ago/ })
  t.match(new TokenSigner('another-secret-that-is-long-enough!!').verify(token, now), { ok: false, problem: 'forged' }, 'another secret')

  // A payload rewritten to widen the scope keeps its old signature: refused.
  const [prefix, , signature] = token.split('.')
  const widened = Buffer.from(JSON.stringify({ e: now + 86400, k: 'abcdef01' })).toString('base64url')
  t.match(signer.verify(`${prefix}.${widened}.${signature}`, now), { ok: false, problem: 'forged' }, 'a payload altered (scope dropped, lifetime extended)')
  // Signed with the right secret, but not a payload this server writes: refused too.
  const body = `st1.${Buffer.from(JSON.stringify({ e: 'soon', k: 'abcdef01' })).toString('base64url')}`
  t.match(signer.verify(`${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`, now), { ok: false, problem: 'malformed' })
  for (const bad of ['', 'st1', 'st1..', 'st2.e30.' + 'A'.repeat(43), `st1.e30.${'A'.repeat(42)}`, 'x'.repeat(2000), 'sk-live-something', `${token} `]) {
    t.match(signer.verify(bad, now), { ok: false, problem: 'malformed' }, `malformed: ${JSON.stringify(bad.slice(0, 30))}`)
  }
})

t.test('scopes: a mode, a paired session; keys and an open server may do anything', async (t) => {
  const token = (mode?: 'segmented' | 'simple', sessionId?: string): Principal => ({ kind: 'token', keyId: 'abcdef01', token: { keyId: 'abcdef01', expiresAt: 0, ...(mode !== undefined ? { mode } : {}), ...(sessionId !== undefined ? { sessionId } : {}) } })
  checkScope({ kind: 'open' }, { mode: 'simple' })
  checkScope({ kind: 'key', keyId: 'abcdef01' }, { sessionId: 'x' })
  checkScope(token(), { mode: 'simple' })
  checkScope(token(), { sessionId: 'x', mode: 'segmented' })
  checkScope(token('simple'), { mode: 'simple' })
  checkScope(token('simple'), { sessionId: 'x' })
  checkScope(token('simple'), { sessionId: 'x', mode: 'simple' })
  checkScope(token(undefined, 'x'), { sessionId: 'x', mode: 'segmented' })
  t.match(refusal(() => { checkScope(token('simple'), { mode: 'segmented' }) }), { code: 'forbidden', statusCode: 403, field: 'token', message: /simple mode/ })
  t.match(refusal(() => { checkScope(token('simple'), { sessionId: 'x', mode: 'segmented' }) }), { code: 'forbidden' }, 'a session of the other mode')
  t.match(refusal(() => { checkScope(token(undefined, 'x'), { sessionId: 'y' }) }), { code: 'forbidden', message: /one paired session/ })
  t.match(refusal(() => { checkScope(token(undefined, 'x'), { mode: 'simple' }) }), { code: 'forbidden' }, 'a session token opens no other stream')
  t.equal(keyIdOf({ kind: 'open' }), undefined)
  t.equal(keyIdOf({ kind: 'anonymous' }), undefined)
  t.equal(keyIdOf(token()), 'abcdef01', 'a token counts against the key that issued it')
})

t.test('the authenticator: policies, refusals, and the limit on failures', async (t) => {
  let clock = 1_800_000_000_000
  const auth = new Authenticator(authConfig({ api_keys: ['good-key'], token_secret: SECRET, max_failures: 3, failure_window_seconds: 10 }), { now: () => clock })
  const as = (presented: Omit<Presented, 'address'>, policy: AuthPolicy, address = '10.0.0.1'): Principal => auth.authenticate({ ...presented, address }, policy)
  const id = sha256Hex('good-key').slice(0, 8)

  t.same(new Authenticator(authConfig()).authenticate({ authorization: 'Bearer whatever', address: 'x' }, 'key'), { kind: 'open' }, 'no keys: open, whatever is sent')
  t.same(as({}, 'public'), { kind: 'anonymous' })
  t.match(refusal(() => as({}, 'stream')), { code: 'unauthorized', statusCode: 401, field: 'authorization' })
  t.same(as({ authorization: 'Bearer good-key' }, 'key'), { kind: 'key', keyId: id })
  t.same(as({ authorization: 'bearer   good-key' }, 'stream'), { kind: 'key', keyId: id }, 'the scheme in any case')
  t.match(refusal(() => as({ authorization: 'Basic Z29vZA==' }, 'key', '10.0.0.9')), { code: 'unauthorized', message: /must be "Bearer/ })

  const { token, expires_in: expiresIn } = auth.issue({ kind: 'key', keyId: id }, { mode: 'segmented' })
  t.equal(expiresIn, 60, 'the default lifetime')
  t.same(as({ token }, 'stream'), { kind: 'token', keyId: id, token: { keyId: id, expiresAt: clock / 1000 + 60, mode: 'segmented' } })
  t.same(as({ authorization: `Bearer ${token}` }, 'stream'), as({ token }, 'stream'), 'a token as the bearer too')
  t.match(refusal(() => as({ token }, 'key')), { code: 'forbidden', message: /needs an API key/ }, 'a token does not open key-only routes')
  t.match(as({ token }, 'public'), { kind: 'token' }, 'on a public route a token is who the request is, no more')
  t.equal(auth.issue({ kind: 'key', keyId: id }, { expires_in: 3600 }).expires_in, 3600)

  // A key removed from the configuration takes its tokens with it.
  const rotated = new Authenticator(authConfig({ api_keys: ['new-key'], token_secret: SECRET }), { now: () => clock })
  t.match(refusal(() => rotated.authenticate({ token, address: 'x' }, 'stream')), { code: 'unauthorized', message: /no longer accepted/ })

  // Three failures in 10 s from one address: blocked, before its credentials are looked at.
  for (let i = 0; i < 3; i++) t.match(refusal(() => as({ authorization: 'Bearer wrong' }, 'key')), { code: 'unauthorized' })
  t.match(refusal(() => as({ authorization: 'Bearer good-key' }, 'key')), { code: 'rate_limited', statusCode: 429, retryAfter: 10 }, 'even a good key waits: a guess would otherwise be confirmed')
  t.same(as({ authorization: 'Bearer good-key' }, 'key', '10.0.0.2'), { kind: 'key', keyId: id }, 'other addresses are not affected')
  t.same(as({}, 'public'), { kind: 'anonymous' }, 'a request with no credentials reveals nothing and is not blocked')
  t.match(refusal(() => as({}, 'key')), { code: 'unauthorized' }, 'nor counted: it is told what to send')
  clock += 4000
  t.match(refusal(() => as({ token: 'st1.forged' }, 'stream')), { code: 'rate_limited', retryAfter: 6 }, 'Retry-After counts down')
  clock += 6001
  t.same(as({ authorization: 'Bearer good-key' }, 'key'), { kind: 'key', keyId: id }, 'the window passed: accepted again')
  // Successes are not counted: a busy client with a good key is never limited.
  for (let i = 0; i < 50; i++) as({ authorization: 'Bearer good-key' }, 'stream')
  t.match(refusal(() => as({ token: `${token}x` }, 'stream')), { code: 'unauthorized' }, 'one failure after many successes is one failure')
})

t.test('the failure window slides', async (t) => {
  let clock = 0
  const limiter = new FailureLimiter({ max: 2, windowMs: 1000, now: () => clock })
  limiter.fail('a')
  clock = 600
  limiter.fail('a')
  t.equal(limiter.retryAfter('a'), 1, 'blocked until the first failure is 1 s old')
  clock = 1001
  t.equal(limiter.retryAfter('a'), undefined, 'the first left the window')
  limiter.fail('a')
  t.equal(limiter.retryAfter('a'), 1)
  clock = 5000
  t.equal(limiter.retryAfter('a'), undefined)
  t.equal(limiter.addresses, 0, 'an address with no recent failure is forgotten')
})

t.test('URLs in logs lose their token; the WebSocket answers with the token subprotocol', async (t) => {
  t.equal(redactUrl('/api/v1/segmented?token=st1.a.b'), '/api/v1/segmented?token=[redacted]')
  t.equal(redactUrl('/api/v1/simple?sample_rate=16000&token=st1.a.b&channels=1'), '/api/v1/simple?sample_rate=16000&token=[redacted]&channels=1')
  t.equal(redactUrl('/x?a=1&TOKEN=abc#frag'), '/x?a=1&TOKEN=[redacted]#frag')
  t.equal(redactUrl('/x?mytoken=abc'), '/x?mytoken=abc', 'only the parameter named token')
  t.equal(selectSubprotocol(new Set(['token', 'st1.a.b'])), 'token')
  t.equal(selectSubprotocol(new Set(['chat', 'token', 'st1.a.b'])), 'token')
  t.equal(selectSubprotocol(new Set(['chat', 'superchat'])), 'chat', 'otherwise ws\'s default: the first offered')
  t.equal(selectSubprotocol(new Set()), false)
})

t.test('configuration: keys from the environment, hashed keys checked, secrets never echoed, CORS closed by default', async (t) => {
  const load = (env: NodeJS.ProcessEnv, overrides: Record<string, unknown> = {}): ReturnType<typeof loadConfig> => loadConfig({ file: null, env, overrides })
  const open = load({})
  t.same(open.config.auth.api_keys, [])
  t.same(open.config.paired.cors_origins, ['*'], 'auth off: any origin, as before')
  t.equal(open.config.metrics.require_auth, true)
  t.equal(open.config.metrics.port, undefined)
  t.equal(open.config.limits.max_sessions_per_key, 0)
  t.equal(open.config.auth.sessions_per_minute_per_key, 600)
  t.equal(open.config.auth.token_max_ttl_seconds, 3600)

  const hashed = `sha256:${sha256Hex('k3')}`
  const on = load({ STREAMER_API_KEYS: ` k1, k2 ,${hashed},`, STREAMER_TOKEN_SECRET: SECRET, METRICS_PORT: '9100' })
  t.same(on.config.auth.api_keys, ['k1', 'k2', hashed], 'comma-separated, blanks dropped')
  t.equal(on.config.auth.token_secret, SECRET)
  t.equal(on.config.metrics.port, 9100)
  t.same(on.config.paired.cors_origins, [], 'auth on and no origins configured: none')
  t.same(load({ STREAMER_API_KEYS: 'k1' }, { paired: { cors_origins: ['https://app.example'] } }).config.paired.cors_origins, ['https://app.example'])
  t.same(load({}, { auth: { api_keys: ['k1'] }, paired: { cors_origins: ['*'] } }).config.paired.cors_origins, ['*'], 'an explicit "*" is kept')

  const fail = (run: () => unknown): string => {
    try {
      run()
    } catch (error) {
      return (error as Error).message
    }
    return ''
  }
  t.match(fail(() => load({}, { auth: { api_keys: ['k1', 'sha256:0123'] } })), /auth\.api_keys\.1 starts with "sha256:" but is not followed by the 64 hex digits/)
  const short = fail(() => load({ STREAMER_TOKEN_SECRET: 'hunter2' }))
  t.equal(short, 'STREAMER_TOKEN_SECRET must be a string of at least 32 characters, got 7 characters (not shown: a secret)')
  const inFile = fail(() => load({}, { auth: { token_secret: 'hunter2', api_keys: 'my-only-key' } }))
  t.match(inFile, /auth\.api_keys must be an array of non-empty strings, got a value not shown here \(a secret\)/)
  t.match(inFile, /auth\.token_secret must be a string of at least 32 characters, got a value not shown here/)
  t.notMatch(inFile, /hunter2|my-only-key/, 'neither value is quoted')
  t.match(fail(() => load({ METRICS_PORT: 'x' })), /METRICS_PORT must be an integer 0-65535, got "x"/)
})
