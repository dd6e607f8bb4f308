import t, { type Test } from 'tap'
import http2 from 'node:http2'
import type WebSocket from 'ws'
import { ERRORS, type ErrorCode } from '../../schemas/error-codes.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import type { Mode } from '../../schemas/messages.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { SseCollector } from '../helpers/sse-collector.ts'
import { sleep, until } from '../helpers/waiting.ts'
import { assertSegmentedMatchesTruth, assertSimpleCoversAudio } from '../helpers/speech-assertions.ts'
import type { TestServer } from '../helpers/server.ts'
import { bearer, craftToken, KEY, keyId, OTHER_KEY, SECRET, startAuthServer, startLoggedServer, tokenFrom, tryUpgrade } from '../helpers/auth-server.ts'

// Authentication against real servers with real clients: every route and transport without
// credentials, with a wrong key, with a key, and with tokens (valid, expired, forged, out of
// scope) on the WebSocket (subprotocol and query), the HTTP upload (HTTP/1.1 and HTTP/2) and
// paired sessions; the limit on failures; the per-key limits; tokens across instances; the
// metrics port; CORS; and the log, which must never hold a token. Browsers (EventSource and
// WebSocket in Chromium) are test/e2e/auth-browser.test.ts, the CLI test/e2e/auth-cli.test.ts.

const fixture = loadFixture('hello_16k_mono')
const RAW_QUERY = `sample_rate=${fixture.format.sample_rate}&channels=${fixture.format.channels}&bit_depth=${fixture.format.bit_depth}`
const START = { format: fixture.format }
const JSON_TYPE = { 'content-type': 'application/json' }
const PAGE = 'http://page.example'

const server = await startAuthServer({ paired: { cors_origins: [PAGE] }, auth: { max_failures: 10000 } })
t.teardown(() => server.close())

// Every token a test sends: none of them may reach the log (checked last).
const sent = new Set<string>()
const use = (token: string): string => { sent.add(token); return token }
const expired = (): string => use(craftToken({ expiresAt: Math.floor(Date.now() / 1000) - 5 }))
const forged = (): string => use(craftToken({}, 'a-different-secret-of-enough-length!!'))

interface Answer { status: number, headers: Headers, body: Record<string, unknown>, text: string }

async function call (target: TestServer, path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(`${target.http}${path}`, init)
  const type = response.headers.get('content-type') ?? ''
  // An SSE answer is open until the stream ends: its status is all that is needed here.
  if (type.startsWith('text/event-stream')) {
    await response.body?.cancel()
    return { status: response.status, headers: response.headers, body: {}, text: '' }
  }
  const text = await response.text()
  let body: Record<string, unknown> = {}
  try { body = JSON.parse(text) as Record<string, unknown> } catch {}
  return { status: response.status, headers: response.headers, body, text }
}

function isRefusal (t: Test, what: string, answer: { status: number, body: Record<string, unknown> }, code: ErrorCode, message?: RegExp): void {
  t.equal(answer.status, ERRORS[code].status, `${what}: HTTP ${String(ERRORS[code].status)}`)
  t.equal(answer.body.code, code, `${what}: ${code}`)
  t.match(answer.body.message, message ?? /\S{3}/, `${what}: says why`)
  t.same(Object.keys(answer.body).filter((key) => !['code', 'message', 'field'].includes(key)), [], `${what}: the documented body`)
}

const createBody = (mode: Mode = 'segmented'): string => JSON.stringify({ mode, ...START })

async function createSession (target: TestServer, auth: { key?: string, token?: string }, mode: Mode = 'segmented'): Promise<Answer> {
  const query = auth.token === undefined ? '' : `?token=${auth.token}`
  return await call(target, `/api/v1/sessions${query}`, { method: 'POST', headers: { ...JSON_TYPE, ...(auth.key === undefined ? {} : bearer(auth.key)) }, body: createBody(mode) })
}

// A whole paired session with a token in every URL, as a page does: events read as SSE.
async function pairedWithToken (t: Test, target: TestServer, token: string, sessionToken?: (id: string) => Promise<string>): Promise<StreamEvent[]> {
  const created = await createSession(target, { token })
  t.equal(created.status, 201, `created with ?token= (${created.text})`)
  const id = created.body.id as string
  const scoped = sessionToken === undefined ? token : await sessionToken(id)
  const events = await fetch(`${target.http}/api/v1/sessions/${id}/events?token=${scoped}`)
  t.equal(events.status, 200, 'events with ?token=')
  const sse = new SseCollector()
  const reading = (async () => {
    const decoder = new TextDecoder()
    for await (const part of events.body as AsyncIterable<Uint8Array>) sse.feed(decoder.decode(part, { stream: true }))
    sse.end()
  })()
  const chunk = 32000
  for (let at = 0, seq = 0; at < fixture.pcm.length; at += chunk, seq++) {
    const ack = await call(target, `/api/v1/sessions/${id}/audio?seq=${seq}&token=${scoped}`, { method: 'POST', body: fixture.pcm.subarray(at, at + chunk) })
    t.equal(ack.status, 200, `chunk ${seq} with ?token=`)
  }
  t.equal((await call(target, `/api/v1/sessions/${id}/keepalive?token=${scoped}`, { method: 'POST' })).status, 204)
  t.equal((await call(target, `/api/v1/sessions/${id}/stop?token=${scoped}`, { method: 'POST' })).status, 202)
  await reading
  return sse.events
}

// A whole WebSocket stream on an open socket: start, audio, stop; the events up to `end`.
async function streamOn (socket: WebSocket): Promise<StreamEvent[]> {
  const events: StreamEvent[] = []
  const ended = new Promise<void>((resolve, reject) => {
    socket.on('message', (data) => {
      const event = JSON.parse(data.toString()) as StreamEvent
      events.push(event)
      if (event.type === 'end') resolve()
    })
    socket.once('close', () => { reject(new Error(`closed before end: ${JSON.stringify(events)}`)) })
  })
  socket.send(JSON.stringify({ request: 'start', ...START }))
  for (let at = 0; at < fixture.pcm.length; at += 8192) socket.send(fixture.pcm.subarray(at, at + 8192))
  socket.send(JSON.stringify({ request: 'stop', disconnect: true }))
  await ended
  return events
}

// An HTTP/2 upload (prior knowledge), the body sent whole: the status and the response body.
async function h2Upload (target: TestServer, path: string, headers: http2.OutgoingHttpHeaders = {}): Promise<{ status: number, text: string, sse: SseCollector }> {
  const session = http2.connect(target.http)
  session.on('error', () => {})
  try {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/octet-stream', ...headers })
    const sse = new SseCollector()
    let status = 0
    stream.setEncoding('utf8')
    stream.on('response', (response) => { status = Number(response[':status']) })
    stream.on('data', (chunk: string) => { sse.feed(chunk) })
    const closed = new Promise<void>((resolve) => { stream.once('close', resolve) })
    stream.on('error', () => {})
    stream.end(fixture.pcm)
    await closed
    return { status, text: sse.text, sse }
  } finally {
    session.close()
  }
}

const parsed = (text: string): Record<string, unknown> => { try { return JSON.parse(text) as Record<string, unknown> } catch { return {} } }

t.test('every HTTP route: no credentials and a wrong key are 401, a key works', async (t) => {
  const created = await createSession(server, { key: KEY })
  t.equal(created.status, 201)
  const id = created.body.id as string
  const upload = (method: string, mode: Mode): { path: string, init: RequestInit } => ({ path: `/api/v1/${mode}?${RAW_QUERY}`, init: { method, body: fixture.pcm.subarray(0, 3200) } })
  const routes: Array<{ name: string, path: string, init?: RequestInit, ok: number }> = [
    { name: 'the metrics', path: '/metrics', ok: 200 },
    { name: 'the docs page', path: '/docs/', ok: 200 },
    { name: 'the OpenAPI document (JSON)', path: '/api/v1/openapi.json', ok: 200 },
    { name: 'the OpenAPI document (YAML)', path: '/api/v1/openapi.yaml', ok: 200 },
    { name: 'a token', path: '/api/v1/tokens', init: { method: 'POST' }, ok: 200 },
    { name: 'a paired session', path: '/api/v1/sessions', init: { method: 'POST', headers: JSON_TYPE, body: createBody() }, ok: 201 },
    { name: 'its events', path: `/api/v1/sessions/${id}/events`, ok: 200 },
    { name: 'its audio', path: `/api/v1/sessions/${id}/audio?seq=0`, init: { method: 'POST', body: fixture.pcm.subarray(0, 3200) }, ok: 200 },
    { name: 'its keepalive', path: `/api/v1/sessions/${id}/keepalive`, init: { method: 'POST' }, ok: 204 },
    { name: 'its finalize', path: `/api/v1/sessions/${id}/finalize`, init: { method: 'POST' }, ok: 202 },
    { name: 'its stop', path: `/api/v1/sessions/${id}/stop`, init: { method: 'POST' }, ok: 202 },
    { name: 'the HTTP upload (POST, segmented)', ...upload('POST', 'segmented'), ok: 200 },
    { name: 'the HTTP upload (PUT, simple)', ...upload('PUT', 'simple'), ok: 200 },
    { name: 'a WebSocket route as plain GET', path: '/api/v1/segmented', ok: 426 }
  ]
  for (const route of routes) {
    const { path, ...init } = { ...route.init, path: route.path }
    const headers = (extra: Record<string, string>): Record<string, string> => ({ ...(init.headers as Record<string, string> | undefined), ...extra })
    isRefusal(t, `${route.name}, no credentials`, await call(server, path, { ...init, headers: headers({}) }), 'unauthorized')
    isRefusal(t, `${route.name}, a wrong key`, await call(server, path, { ...init, headers: headers(bearer('not-a-key')) }), 'unauthorized', /not valid/)
    isRefusal(t, `${route.name}, another scheme`, await call(server, path, { ...init, headers: headers({ authorization: `Basic ${Buffer.from(`x:${KEY}`).toString('base64')}` }) }), 'unauthorized', /Bearer/)
    if (route.path.includes('/events') || route.path.includes('/audio') || route.path.includes('/keepalive') || route.path.includes('/finalize')) {
      t.equal((await call(server, path, { ...init, headers: headers(bearer(OTHER_KEY)) })).status, route.ok, `${route.name}, the hashed key: ${route.ok}`)
    }
    if (route.path.endsWith('/audio?seq=0')) continue // taken once, above
    const answer = await call(server, path, { ...init, headers: headers(bearer(KEY)) })
    t.equal(answer.status, route.ok, `${route.name}, the key: ${route.ok} (${answer.text.slice(0, 200)})`)
  }
  // Refusals are refusals before anything else: a 401 before the upload's 415.
  isRefusal(t, 'an upload with no key and a bad content type', await call(server, `/api/v1/simple?${RAW_QUERY}`, { method: 'POST', headers: { 'content-type': 'text/html' }, body: 'x' }), 'unauthorized')
  isRefusal(t, 'an unknown route, no credentials', await call(server, '/api/v2/nothing'), 'not_found')
  t.equal((await call(server, '/api/v1/ready')).status, 200, 'readiness is open to probes')
  isRefusal(t, 'readiness with a wrong key', await call(server, '/api/v1/ready', { headers: bearer('nope') }), 'unauthorized')
})

t.test('health: open to probes, the session count for a key only', async (t) => {
  const created = await createSession(server, { key: KEY })
  const token = use(await tokenFrom(server))
  t.same((await call(server, '/api/v1/health')).body, { status: 'healthy' }, 'no credentials: alive, nothing more')
  t.same((await call(server, '/api/v1/health', { headers: bearer(KEY) })).body, { status: 'healthy', sessions: server.app.streamer.registry.size }, 'a key: the count')
  t.ok(server.app.streamer.registry.size >= 1)
  t.same((await call(server, `/api/v1/health?token=${token}`)).body, { status: 'healthy' }, 'a token grants streaming, not the count')
  isRefusal(t, 'health with a wrong key', await call(server, '/api/v1/health', { headers: bearer('nope') }), 'unauthorized')
  await call(server, `/api/v1/sessions/${String(created.body.id)}/stop`, { method: 'POST', headers: bearer(KEY) })
})

t.test('tokens: only a key mints them; lifetime and scope are as asked, and checked', async (t) => {
  const minted = await call(server, '/api/v1/tokens', { method: 'POST', headers: bearer(KEY) })
  t.equal(minted.status, 200)
  t.match(minted.body, { token: /^st1\./, expires_in: 60 }, 'no body: an unscoped token for 60 s')
  const token = use(minted.body.token as string)
  isRefusal(t, 'a token minting a token', await call(server, `/api/v1/tokens?token=${token}`, { method: 'POST' }), 'forbidden', /API key/)
  isRefusal(t, 'a token as the bearer minting a token', await call(server, '/api/v1/tokens', { method: 'POST', headers: bearer(token) }), 'forbidden')
  isRefusal(t, 'a token for the metrics', await call(server, `/metrics?token=${token}`), 'forbidden')
  isRefusal(t, 'a token for the docs', await call(server, `/api/v1/openapi.json?token=${token}`), 'forbidden')
  const ask = async (body: unknown): Promise<Answer> => await call(server, '/api/v1/tokens', { method: 'POST', headers: { ...bearer(KEY), ...JSON_TYPE }, body: JSON.stringify(body) })
  t.match((await ask({ expires_in: 3600, mode: 'simple', session_id: 'abc' })).body, { expires_in: 3600 })
  isRefusal(t, 'a lifetime over auth.token_max_ttl_seconds', await ask({ expires_in: 3601 }), 'invalid_message')
  isRefusal(t, 'an unknown scope', await ask({ modes: ['simple'] }), 'invalid_message')
  isRefusal(t, 'an unknown mode', await ask({ mode: 'fast' }), 'invalid_message')

  // A real expiry: valid now, refused a moment later.
  const short = use((await ask({ expires_in: 1 })).body.token as string)
  t.equal((await createSession(server, { token: short })).status, 201, 'a 1 s token works at once')
  await sleep(1100)
  isRefusal(t, 'the same token after its second', await createSession(server, { token: short }), 'unauthorized', /expired \d+ s ago/)
  for (const id of [...server.app.streamer.registry.entries()].map((stream) => stream.id)) {
    await call(server, `/api/v1/sessions/${id}/stop`, { method: 'POST', headers: bearer(KEY) })
  }
})

t.test('WebSocket: the upgrade is refused with its HTTP status before any frame; keys and tokens open it', async (t) => {
  for (const mode of ['segmented', 'simple'] as const) {
    const other: Mode = mode === 'segmented' ? 'simple' : 'segmented'
    const url = `${server.ws}/api/v1/${mode}`
    const refusedWith = async (what: string, attempt: ReturnType<typeof tryUpgrade>, code: ErrorCode, message?: RegExp): Promise<void> => {
      const result = await attempt
      if (result.opened) {
        t.fail(`${mode}, ${what}: the socket opened`)
        result.socket.terminate()
        return
      }
      isRefusal(t, `${mode}, ${what}`, result, code, message)
      t.equal(result.frames, 0, `${mode}, ${what}: no frame`)
    }
    await refusedWith('no credentials', tryUpgrade(url), 'unauthorized')
    await refusedWith('a wrong key', tryUpgrade(url, { headers: bearer('wrong') }), 'unauthorized', /not valid/)
    await refusedWith('an expired token (subprotocol)', tryUpgrade(url, { protocols: ['token', expired()] }), 'unauthorized', /expired/)
    await refusedWith('an expired token (query)', tryUpgrade(`${url}?token=${expired()}`), 'unauthorized', /expired/)
    await refusedWith('a forged token (subprotocol)', tryUpgrade(url, { protocols: ['token', forged()] }), 'unauthorized', /signature/)
    await refusedWith('a forged token (query)', tryUpgrade(`${url}?token=${forged()}`), 'unauthorized', /signature/)
    await refusedWith(`a token for ${other} (subprotocol)`, tryUpgrade(url, { protocols: ['token', use(await tokenFrom(server, { mode: other }))] }), 'forbidden', new RegExp(`${other} mode`))
    await refusedWith(`a token for ${other} (query)`, tryUpgrade(`${url}?token=${use(await tokenFrom(server, { mode: other }))}`), 'forbidden')
    await refusedWith('a token for a paired session', tryUpgrade(url, { protocols: ['token', use(await tokenFrom(server, { session_id: 'someone' }))] }), 'forbidden', /paired session/)
    await refusedWith('a token whose key was never configured', tryUpgrade(url, { protocols: ['token', use(craftToken({ keyId: keyId('unknown') }))] }), 'unauthorized', /no longer accepted/)

    const check = mode === 'segmented' ? assertSegmentedMatchesTruth : assertSimpleCoversAudio
    const opens = async (what: string, attempt: ReturnType<typeof tryUpgrade>, protocol: string): Promise<void> => {
      const result = await attempt
      if (!result.opened) {
        t.fail(`${mode}, ${what}: refused with ${result.status} ${JSON.stringify(result.body)}`)
        return
      }
      t.equal(result.protocol, protocol, `${mode}, ${what}: subprotocol ${JSON.stringify(protocol)}`)
      const events = await streamOn(result.socket)
      check(t, events, fixture)
    }
    await opens('the key as a bearer', tryUpgrade(url, { headers: bearer(KEY) }), '')
    await opens('the hashed key as a bearer', tryUpgrade(url, { headers: bearer(OTHER_KEY) }), '')
    await opens('a token as the subprotocol', tryUpgrade(url, { protocols: ['token', use(await tokenFrom(server))] }), 'token')
    await opens(`a ${mode} token as the subprotocol`, tryUpgrade(url, { protocols: ['token', use(await tokenFrom(server, { mode }))] }), 'token')
    await opens('a token in the query', tryUpgrade(`${url}?token=${use(await tokenFrom(server))}`), '')
    await opens('a token as the bearer', tryUpgrade(url, { headers: bearer(use(await tokenFrom(server, { mode }))) }), '')
  }
})

t.test('HTTP upload, HTTP/2 and HTTP/1.1: keys and tokens stream; bad credentials are refused before the body is read', async (t) => {
  const path = (mode: Mode, token?: string): string => `/api/v1/${mode}?${RAW_QUERY}${token === undefined ? '' : `&token=${token}`}`
  const h2Refused = async (what: string, upload: ReturnType<typeof h2Upload>, code: ErrorCode, message?: RegExp): Promise<void> => {
    const answer = await upload
    isRefusal(t, `HTTP/2, ${what}`, { status: answer.status, body: parsed(answer.text) }, code, message)
  }
  await h2Refused('no credentials', h2Upload(server, path('segmented')), 'unauthorized')
  await h2Refused('a wrong key', h2Upload(server, path('segmented'), bearer('wrong')), 'unauthorized')
  await h2Refused('an expired token', h2Upload(server, path('segmented', expired())), 'unauthorized', /expired/)
  await h2Refused('a forged token', h2Upload(server, path('segmented', forged())), 'unauthorized', /signature/)
  await h2Refused('a token for the other mode', h2Upload(server, path('segmented', use(await tokenFrom(server, { mode: 'simple' })))), 'forbidden')
  await h2Refused('a token for a paired session', h2Upload(server, path('simple', use(await tokenFrom(server, { session_id: 'x' })))), 'forbidden')

  const key = await h2Upload(server, path('segmented'), bearer(KEY))
  t.equal(key.status, 200)
  assertSegmentedMatchesTruth(t, key.sse.events, fixture)
  const token = await h2Upload(server, path('segmented', use(await tokenFrom(server, { mode: 'segmented' }))))
  t.equal(token.status, 200, 'a token in the query')
  assertSegmentedMatchesTruth(t, token.sse.events, fixture)
  const simple = await h2Upload(server, path('simple'), bearer(use(await tokenFrom(server))))
  t.equal(simple.status, 200, 'a token as the bearer')
  assertSimpleCoversAudio(t, simple.sse.events, fixture)

  // HTTP/1.1, a WAV body (the browser's case: fetch with a Blob).
  const wav = async (token: string): Promise<Response> => await fetch(`${server.http}/api/v1/simple?token=${token}`, { method: 'POST', headers: { 'content-type': 'audio/wav' }, body: fixture.wav })
  const ok = await wav(use(await tokenFrom(server)))
  t.equal(ok.status, 200)
  const sse = new SseCollector()
  sse.feed(await ok.text())
  assertSimpleCoversAudio(t, sse.events, fixture)
  const late = await wav(expired())
  isRefusal(t, 'HTTP/1.1, an expired token', { status: late.status, body: await late.json() as Record<string, unknown> }, 'unauthorized')
})

t.test('paired sessions with tokens in every URL, as a browser sends them', async (t) => {
  assertSegmentedMatchesTruth(t, await pairedWithToken(t, server, use(await tokenFrom(server))), fixture)
  // A page creates the session with a mode-scoped token, then its backend hands it a longer-lived
  // token for that one session, for the events, audio and stop URLs.
  const events = await pairedWithToken(t, server, use(await tokenFrom(server, { mode: 'segmented' })), async (id) => use(await tokenFrom(server, { session_id: id, expires_in: 600 })))
  assertSegmentedMatchesTruth(t, events, fixture)

  // Scopes.
  const simpleToken = use(await tokenFrom(server, { mode: 'simple' }))
  isRefusal(t, 'a simple token creating a segmented session', await createSession(server, { token: simpleToken }, 'segmented'), 'forbidden', /simple mode/)
  const simple = await createSession(server, { token: simpleToken }, 'simple')
  t.equal(simple.status, 201, 'a simple token creates a simple session')
  const segmented = await createSession(server, { key: KEY })
  const segmentedId = segmented.body.id as string
  isRefusal(t, 'a simple token on a segmented session', await call(server, `/api/v1/sessions/${segmentedId}/events?token=${simpleToken}`), 'forbidden')
  const sessionToken = use(await tokenFrom(server, { session_id: segmentedId }))
  isRefusal(t, 'a session token creating a session', await createSession(server, { token: sessionToken }), 'forbidden', /paired session/)
  isRefusal(t, 'a session token on another session', await call(server, `/api/v1/sessions/${String(simple.body.id)}/stop?token=${sessionToken}`, { method: 'POST' }), 'forbidden')
  isRefusal(t, 'a session token on an unknown session: 403, not 404', await call(server, `/api/v1/sessions/unknown/stop?token=${sessionToken}`, { method: 'POST' }), 'forbidden')
  isRefusal(t, 'an expired token on the events', await call(server, `/api/v1/sessions/${segmentedId}/events?token=${expired()}`), 'unauthorized', /expired/)
  isRefusal(t, 'a forged token on the audio', await call(server, `/api/v1/sessions/${segmentedId}/audio?seq=0&token=${forged()}`, { method: 'POST', body: new Uint8Array(2) }), 'unauthorized', /signature/)
  isRefusal(t, 'an expired token creating', await createSession(server, { token: expired() }), 'unauthorized')
  t.equal((await call(server, `/api/v1/sessions/${segmentedId}/stop?token=${sessionToken}`, { method: 'POST' })).status, 202, 'the session token stops its session')
  t.equal((await call(server, `/api/v1/sessions/${String(simple.body.id)}/stop?token=${simpleToken}`, { method: 'POST' })).status, 202)
})

t.test('an address that keeps sending bad credentials gets 429 with Retry-After, on every transport', async (t) => {
  const strict = await startAuthServer({ auth: { max_failures: 3, failure_window_seconds: 2 } })
  t.teardown(() => strict.close())
  for (let i = 0; i < 3; i++) isRefusal(t, `bad key ${i + 1}`, await call(strict, '/api/v1/sessions', { method: 'POST', headers: { ...JSON_TYPE, ...bearer(`guess-${i}`) }, body: createBody() }), 'unauthorized')
  const limited = await call(strict, '/metrics', { headers: bearer('guess-3') })
  isRefusal(t, 'the fourth', limited, 'rate_limited', /bad credentials/)
  const retryAfter = Number(limited.headers.get('retry-after'))
  t.ok(retryAfter >= 1 && retryAfter <= 2, `Retry-After ${retryAfter} s, within the window`)
  isRefusal(t, 'the key itself, meanwhile', await call(strict, '/metrics', { headers: bearer(KEY) }), 'rate_limited')
  const upgrade = await tryUpgrade(`${strict.ws}/api/v1/simple`, { headers: bearer(KEY) })
  t.equal(upgrade.opened ? 101 : upgrade.status, 429, 'a WebSocket upgrade too')
  if (!upgrade.opened) t.equal(upgrade.headers['retry-after'] !== undefined, true, 'with Retry-After')
  const h2 = await h2Upload(strict, `/api/v1/simple?${RAW_QUERY}`, bearer(KEY))
  t.equal(h2.status, 429, 'an HTTP/2 upload too')
  t.same((await call(strict, '/api/v1/health')).body, { status: 'healthy' }, 'a probe without credentials is still answered')
  await sleep(retryAfter * 1000 + 100)
  t.equal((await call(strict, '/metrics', { headers: bearer(KEY) })).status, 200, 'after Retry-After the key works')
  for (let i = 0; i < 20; i++) t.equal((await call(strict, '/api/v1/health', { headers: bearer(KEY) })).status, 200)
  t.pass('good requests are not counted')
})

t.test('per key: open sessions (limits.max_sessions_per_key) and sessions per minute (auth.sessions_per_minute_per_key)', async (t) => {
  const limited = await startAuthServer({ limits: { max_sessions_per_key: 1 }, auth: { sessions_per_minute_per_key: 3 } })
  t.teardown(() => limited.close())
  const first = await createSession(limited, { key: KEY })
  t.equal(first.status, 201)
  const second = await createSession(limited, { token: use(await tokenFrom(limited)) })
  isRefusal(t, 'a second session of the key, through its token', second, 'too_many_sessions', /limits\.max_sessions_per_key/)
  const socket = await tryUpgrade(`${limited.ws}/api/v1/simple`, { headers: bearer(KEY) })
  if (socket.opened) {
    socket.socket.send(JSON.stringify({ request: 'start', ...START }))
    const refusal = await new Promise<StreamEvent>((resolve) => { socket.socket.once('message', (data) => { resolve(JSON.parse(data.toString()) as StreamEvent) }) })
    t.match(refusal, { type: 'error', code: 'too_many_sessions' }, 'a WebSocket start too')
    socket.socket.terminate()
  } else {
    t.fail('the upgrade should open: the limit is on sessions, not sockets')
  }
  const other = await createSession(limited, { key: OTHER_KEY })
  t.equal(other.status, 201, 'another key has its own slots')
  const stop = async (answer: Answer, key: string): Promise<void> => {
    await call(limited, `/api/v1/sessions/${String(answer.body.id)}/stop`, { method: 'POST', headers: bearer(key) })
    await until(() => ![...limited.app.streamer.registry.entries()].some((stream) => stream.id === answer.body.id), 10000)
  }
  await stop(first, KEY)
  await stop(other, OTHER_KEY)
  // Three sessions a minute: the first one, and two more.
  for (let i = 0; i < 2; i++) {
    const next = await createSession(limited, { key: KEY })
    t.equal(next.status, 201, `session ${i + 2} of the minute`)
    await stop(next, KEY)
  }
  const fourth = await createSession(limited, { key: KEY })
  isRefusal(t, 'the fourth in a minute', fourth, 'rate_limited', /sessions_per_minute_per_key/)
  const wait = Number(fourth.headers.get('retry-after'))
  t.ok(wait > 0 && wait <= 60, `Retry-After ${wait} s`)
  const h2 = await h2Upload(limited, `/api/v1/simple?${RAW_QUERY}`, bearer(KEY))
  t.equal(h2.status, 429, 'the HTTP upload counts the same')
  t.equal((await createSession(limited, { key: OTHER_KEY })).status, 201, 'another key is not limited by it')
})

t.test('instances sharing auth.token_secret accept each other\'s tokens; others do not', async (t) => {
  const twin = await startAuthServer()
  const stranger = await startAuthServer({ auth: { token_secret: 'not-the-shared-secret-0123456789abcd' } })
  const rotated = await startLoggedServer({ auth: { api_keys: [OTHER_KEY], token_secret: SECRET } })
  t.teardown(async () => { await Promise.all([twin.close(), stranger.close(), rotated.close()]) })
  const token = use(await tokenFrom(server))
  const upgrade = await tryUpgrade(`${twin.ws}/api/v1/segmented`, { protocols: ['token', token] })
  t.ok(upgrade.opened, 'the twin opens a WebSocket with the other instance\'s token')
  if (upgrade.opened) assertSegmentedMatchesTruth(t, await streamOn(upgrade.socket), fixture)
  assertSegmentedMatchesTruth(t, await pairedWithToken(t, twin, token), fixture)
  const h2 = await h2Upload(twin, `/api/v1/simple?${RAW_QUERY}&token=${token}`)
  t.equal(h2.status, 200, 'and takes an upload with it')
  // Back the other way: the twin's token on the first server.
  t.equal((await createSession(server, { token: use(await tokenFrom(twin)) })).status, 201, 'tokens go both ways')
  isRefusal(t, 'another secret', await createSession(stranger, { token }), 'unauthorized', /signature/)
  isRefusal(t, 'the same secret, but the issuing key is gone', await createSession(rotated, { token }), 'unauthorized', /no longer accepted/)
  t.equal((await createSession(rotated, { token: use(await tokenFrom(server, {}, OTHER_KEY)) })).status, 201, 'a token of a key it still has')
  for (const target of [server, twin, rotated]) {
    for (const stream of [...target.app.streamer.registry.entries()]) stream.abort()
  }
})

t.test('metrics: on a port of its own (metrics.port), with or without a key', async (t) => {
  const separate = await startAuthServer({ host: '127.0.0.1', metrics: { port: 0 } })
  const open = await startAuthServer({ host: '127.0.0.1', metrics: { port: 0, require_auth: false } })
  const unlocked = await startAuthServer({ metrics: { require_auth: false } })
  t.teardown(async () => { await Promise.all([separate.close(), open.close(), unlocked.close()]) })
  const address = separate.app.metricsAddress()
  t.ok(address, 'listening')
  t.equal(address?.address, '127.0.0.1', 'on the configured host')
  t.not(address?.port, separate.port, 'on another port')
  const metricsUrl = `http://127.0.0.1:${address?.port ?? 0}`
  isRefusal(t, 'the API port has no /metrics then', await call(separate, '/metrics', { headers: bearer(KEY) }), 'not_found')
  const refused = await fetch(`${metricsUrl}/metrics`)
  isRefusal(t, 'the metrics port, no key', { status: refused.status, body: await refused.json() as Record<string, unknown> }, 'unauthorized')
  const scrape = await fetch(`${metricsUrl}/metrics`, { headers: bearer(KEY) })
  t.equal(scrape.status, 200)
  t.match(scrape.headers.get('content-type'), /^text\/plain/)
  t.match(await scrape.text(), /^# HELP streamer_/m, 'Prometheus text')
  const token = use(await tokenFrom(separate))
  const withToken = await fetch(`${metricsUrl}/metrics`, { headers: bearer(token) })
  isRefusal(t, 'the metrics port, a token', { status: withToken.status, body: await withToken.json() as Record<string, unknown> }, 'forbidden')
  const elsewhere = await fetch(`${metricsUrl}/api/v1/health`, { headers: bearer(KEY) })
  isRefusal(t, 'the metrics port serves nothing else', { status: elsewhere.status, body: await elsewhere.json() as Record<string, unknown> }, 'not_found')
  const openAddress = open.app.metricsAddress()
  t.equal((await fetch(`http://127.0.0.1:${openAddress?.port ?? 0}/metrics`)).status, 200, 'metrics.require_auth false: no key needed')
  t.equal((await call(unlocked, '/metrics')).status, 200, 'on the API port too')
  t.equal(unlocked.app.metricsAddress(), null)
  isRefusal(t, 'while the rest of that server still needs one', await call(unlocked, '/api/v1/openapi.json'), 'unauthorized')
})

t.test('CORS: no origins by default with auth on; configured ones get preflights on every browser route, and refusals they can read', async (t) => {
  const preflight = async (target: TestServer, path: string, origin: string, method = 'POST'): Promise<Answer> => await call(target, path, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization, content-type' }
  })
  for (const path of ['/api/v1/sessions', '/api/v1/sessions/some-id/events', `/api/v1/simple?${RAW_QUERY}`, '/api/v1/segmented']) {
    const allowed = await preflight(server, path, PAGE)
    t.equal(allowed.status, 204, `${path}: preflight answered`)
    t.equal(allowed.headers.get('access-control-allow-origin'), PAGE)
    t.match(allowed.headers.get('access-control-allow-headers'), /Authorization/, 'Authorization may be sent')
    t.equal(allowed.headers.get('access-control-allow-credentials'), null, 'no cookies')
    t.equal((await preflight(server, path, 'http://elsewhere.example')).headers.get('access-control-allow-origin'), null, `${path}: not for other origins`)
  }
  t.equal((await preflight(server, '/metrics', PAGE, 'GET')).status, 404, 'no preflight for the operations routes')
  const refusal = await call(server, '/api/v1/sessions', { method: 'POST', headers: { origin: PAGE, ...JSON_TYPE }, body: createBody() })
  t.equal(refusal.status, 401)
  t.equal(refusal.headers.get('access-control-allow-origin'), PAGE, 'a 401 carries CORS headers: the page can read why')
  t.match(refusal.headers.get('access-control-expose-headers'), /Retry-After/)

  const closed = await startAuthServer()
  t.teardown(() => closed.close())
  t.same(closed.app.streamer.config.paired.cors_origins, [], 'paired.cors_origins unset and auth on: none')
  t.equal((await preflight(closed, '/api/v1/sessions', PAGE)).headers.get('access-control-allow-origin'), null, 'so no page may call it')
})

t.test('auth off: open as before, and the ways a page sends a token do no harm', async (t) => {
  const open = await startLoggedServer()
  t.teardown(() => open.close())
  t.equal(open.log().split('\n').filter((line) => line.includes('authentication is off')).length, 1, 'one warning at start-up')
  t.match(open.log(), /"level":40.*authentication is off/, 'at warn')
  t.match((await call(open, '/api/v1/health')).body, { status: 'healthy', sessions: 0 })
  t.equal((await call(open, '/metrics')).status, 200)
  t.equal((await call(open, '/api/v1/tokens', { method: 'POST' })).status, 200, 'a token can be had (it is not needed)')
  const upgrade = await tryUpgrade(`${open.ws}/api/v1/segmented?token=anything`, { protocols: ['token', 'anything'] })
  t.ok(upgrade.opened && upgrade.protocol === 'token', 'the token subprotocol is answered, so a page written for auth works')
  if (upgrade.opened) assertSegmentedMatchesTruth(t, await streamOn(upgrade.socket), fixture)
  const h2 = await h2Upload(open, `/api/v1/simple?${RAW_QUERY}&token=anything`)
  t.equal(h2.status, 200, '?token= is not an unknown query parameter')
  const preflight = await call(open, `/api/v1/simple?${RAW_QUERY}`, { method: 'OPTIONS', headers: { origin: PAGE, 'access-control-request-method': 'POST' } })
  t.equal(preflight.status, 204, 'the upload answers preflights now')
  t.equal(preflight.headers.get('access-control-allow-origin'), '*')
})

t.test('start-up says when tokens will not outlive the process', async (t) => {
  const random = await startLoggedServer({ auth: { api_keys: [KEY] } })
  t.teardown(() => random.close())
  t.match(random.log(), /"level":40.*auth\.token_secret \(STREAMER_TOKEN_SECRET\) is not set: tokens are signed with a random secret/)
  t.notMatch(server.log(), /authentication is off|token_secret .* is not set/, 'nothing to warn about with keys and a secret')
})

// Last: everything above went through the main server's log.
t.test('no token and no key reaches the log', async (t) => {
  // A line that logs a request (Fastify's own serializer) shows its URL without the token.
  server.app.log.info({ req: { method: 'GET', url: `/api/v1/segmented?token=${use(await tokenFrom(server))}&x=1`, headers: {}, socket: {} } }, 'probe')
  const log = server.log()
  t.ok(log.split('\n').length > 100, `the log was captured (${log.split('\n').length} lines)`)
  t.match(log, /"url":"\/api\/v1\/sessions\/[^"?]+\/events"/, 'request lines name the paths that carried tokens')
  t.match(log, /"url":"\/api\/v1\/segmented\?token=\[redacted\]&x=1"/, 'a logged request URL is redacted')
  t.ok(sent.size > 10, `${sent.size} tokens were sent`)
  const leaked = [...sent].filter((token) => log.includes(token) || log.includes(token.split('.')[2] as string))
  t.same(leaked, [], 'none of them, nor its signature, is in the log')
  t.notOk(log.includes(KEY) || log.includes(OTHER_KEY), 'nor is an API key')
  t.notOk(log.includes(SECRET), 'nor the secret')
})
