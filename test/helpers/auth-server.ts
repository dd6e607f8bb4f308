import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { TokenSigner } from '../../plugins/auth/credentials.ts'
import { FAST_MODEL, type TestServer } from './server.ts'

// Servers with authentication on, for test/e2e/auth*.test.ts: what startServer does, plus the
// server's whole log (every line at trace, as JSON) kept for the test to read.

export const KEY = 'e2e-key-one-0f3a9c'
export const OTHER_KEY = 'e2e-key-two-7d21b4'
export const SECRET = 'e2e-shared-token-secret-0123456789abcdef'
export const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex')
export const keyId = (key: string): string => sha256Hex(key).slice(0, 8)
export const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` })

export interface LoggedServer extends TestServer {
  /** Everything the server logged so far, one JSON line each. */
  log: () => string
}

export async function startLoggedServer (overrides: Record<string, unknown> = {}): Promise<LoggedServer> {
  const { config, configDir } = loadConfig({
    file: null,
    env: {},
    overrides: { model: { threads: 1, options: FAST_MODEL }, ...overrides }
  })
  let log = ''
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      log += chunk.toString()
      done()
    }
  })
  const app = await buildApp({ config, configDir, fastify: { logger: { level: 'trace', stream } } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return { app, port, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}`, close: () => app.close(), log: () => log }
}

/** A server with two keys (one configured as its hash) and a shared token secret. */
export async function startAuthServer (overrides: Record<string, unknown> = {}): Promise<LoggedServer> {
  const { auth, ...rest } = overrides as { auth?: Record<string, unknown> }
  return await startLoggedServer({ ...rest, auth: { api_keys: [KEY, `sha256:${sha256Hex(OTHER_KEY)}`], token_secret: SECRET, ...auth } })
}

/** A token signed with `secret`, with any claims: expired, for another key, ... */
export function craftToken (claims: { keyId?: string, expiresAt?: number, mode?: 'segmented' | 'simple', sessionId?: string }, secret = SECRET): string {
  return new TokenSigner(secret).issue({ keyId: claims.keyId ?? keyId(KEY), expiresAt: claims.expiresAt ?? Math.floor(Date.now() / 1000) + 60, ...(claims.mode !== undefined ? { mode: claims.mode } : {}), ...(claims.sessionId !== undefined ? { sessionId: claims.sessionId } : {}) })
}

/** A token from the server's own POST /api/v1/tokens. */
export async function tokenFrom (server: TestServer, body: Record<string, unknown> = {}, key = KEY): Promise<string> {
  const response = await fetch(`${server.http}/api/v1/tokens`, { method: 'POST', headers: { ...bearer(key), 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (response.status !== 200) throw new Error(`POST /api/v1/tokens: ${response.status} ${await response.text()}`)
  return (await response.json() as { token: string }).token
}

export type UpgradeResult =
  | { opened: true, socket: WebSocket, protocol: string }
  | { opened: false, status: number, body: Record<string, unknown>, headers: IncomingMessage['headers'], frames: number }

/** Tries the upgrade: the open socket, or the HTTP refusal the server answered it with. */
export function tryUpgrade (url: string, options: { protocols?: string[], headers?: Record<string, string> } = {}): Promise<UpgradeResult> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, options.protocols, { headers: options.headers })
    let frames = 0
    socket.on('message', () => { frames++ })
    socket.once('open', () => { resolve({ opened: true, socket, protocol: socket.protocol }) })
    socket.once('unexpected-response', (_request, response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.once('close', () => {
        let body: Record<string, unknown> = {}
        try { body = JSON.parse(text) as Record<string, unknown> } catch {}
        resolve({ opened: false, status: response.statusCode ?? 0, body, headers: response.headers, frames })
        socket.terminate()
      })
    })
    // After a refusal, terminate() reports an error too: the promise is settled by then.
    socket.on('error', reject)
  })
}
