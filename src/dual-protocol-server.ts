import http from 'node:http'
import http2 from 'node:http2'
import type { Socket } from 'node:net'

// One listening port for every transport: HTTP/1.1 (with the WebSocket upgrade), cleartext
// HTTP/2 with prior knowledge (h2c, what `curl --http2-prior-knowledge` speaks), and, with a TLS
// key and certificate, TLS with ALPN offering h2 and http/1.1.
//
// Cleartext: an http.Server owns the port; each new connection's first bytes are read before
// any protocol sees them. If they are the HTTP/2 connection preface the socket goes to an
// http2 server that never listens itself; otherwise to the http.Server's own connection
// handler. TLS needs no peeking: ALPN chooses, and `allowHTTP1` serves HTTP/1.1 (and its
// upgrades) on the same secure server.
//
// A server from a Fastify serverFactory gets none of Fastify's timeout defaults, so they are
// set here. Node's 300 s `requestTimeout` would cut a long streaming upload, so it is off; a
// headers timeout still bounds slow or silent clients.

// RFC 9113 section 3.4: every prior-knowledge HTTP/2 connection starts with these 24 bytes.
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

export interface DualProtocolOptions {
  tls?: { key: string | Buffer, cert: string | Buffer }
  keepAliveTimeoutMs?: number // idle HTTP/1.1 keep-alive connections (Fastify's default: 72 s)
  headersTimeoutMs?: number // request headers (and, cleartext, the first bytes) must arrive within this
  http2SessionTimeoutMs?: number // an HTTP/2 session idle this long is closed gracefully
  shutdownGraceMs?: number // on close, HTTP/2 sessions still open after this are destroyed
  maxConcurrentStreams?: number // HTTP/2 streams one connection may have open (SETTINGS, enforced by nghttp2)
}

export type RequestHandler = (request: http.IncomingMessage, response: http.ServerResponse) => void

// What Fastify closes: besides close(), it calls closeIdleConnections() (HTTP/1.1 keep-alive)
// and closeHttp2Sessions() (so app.close() does not hang on open HTTP/2 sessions).
export interface DualProtocolServer extends http.Server {
  closeHttp2Sessions: () => void
}

const DEFAULTS = { keepAliveTimeoutMs: 72000, headersTimeoutMs: 60000, http2SessionTimeoutMs: 72000, shutdownGraceMs: 5000, maxConcurrentStreams: 100 }

// Returns a Fastify `serverFactory`. Fastify decides per request (httpVersionMajor) whether it
// talks to an HTTP/2 compat response, so one handler serves both protocols.
export function dualProtocolServerFactory (options: DualProtocolOptions = {}): (handler: RequestHandler) => DualProtocolServer {
  return (handler) => createDualProtocolServer(handler, options)
}

export function createDualProtocolServer (handler: RequestHandler, options: DualProtocolOptions = {}): DualProtocolServer {
  const settings = { ...DEFAULTS, ...options }
  return options.tls === undefined ? createCleartext(handler, settings) : createSecure(handler, options.tls, settings)
}

type Settings = typeof DEFAULTS

function applyHttp1Settings (server: http.Server, settings: Settings): void {
  server.requestTimeout = 0 // a streaming upload may last hours while it keeps moving
  server.headersTimeout = settings.headersTimeoutMs
  server.keepAliveTimeout = settings.keepAliveTimeoutMs
  // Only WebSocket upgrades are taken. Node's default takes every `Upgrade:` request once
  // anyone listens for 'upgrade', so `curl --http2` (Upgrade: h2c) would reach a route with its
  // body left unread; served as plain HTTP/1.1 instead, as RFC 9110 7.8 allows.
  // (A property on the server, as Node's http and http2-with-allowHTTP1 servers read it.)
  const upgradable = server as http.Server & { shouldUpgradeCallback: (request: http.IncomingMessage) => boolean }
  upgradable.shouldUpgradeCallback = (request) => /(^|,)\s*websocket\s*(,|$)/i.test(request.headers.upgrade ?? '')
}

// Tracks HTTP/2 sessions so shutdown can close them: gracefully (GOAWAY, open streams may
// finish), then destroyed after the grace period so close() always completes.
function trackSessions (server: http2.Http2Server | http2.Http2SecureServer, settings: Settings): () => void {
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('session', (session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
    session.setTimeout(settings.http2SessionTimeoutMs, () => { session.close() })
  })
  return () => {
    for (const session of sessions) session.close()
    if (sessions.size === 0) return
    const timer = setTimeout(() => { for (const session of sessions) session.destroy() }, settings.shutdownGraceMs)
    timer.unref()
  }
}

function createCleartext (handler: RequestHandler, settings: Settings): DualProtocolServer {
  const server = http.createServer(handler) as DualProtocolServer
  applyHttp1Settings(server, settings)
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: settings.maxConcurrentStreams } }, handler as unknown as (request: http2.Http2ServerRequest, response: http2.Http2ServerResponse) => void)
  const closeSessions = trackSessions(h2, settings)
  server.closeHttp2Sessions = closeSessions

  // The http.Server's own connection handler (the HTTP/1.1 parser) runs only for connections
  // that are not HTTP/2.
  const http1Listeners = server.listeners('connection') as Array<(socket: Socket) => void>
  server.removeAllListeners('connection')
  server.on('connection', (socket: Socket) => {
    peekPreface(socket, settings.headersTimeoutMs, (isHttp2) => {
      if (isHttp2) {
        // http.Server accepts sockets half-open; an HTTP/2 session must close with its peer.
        socket.allowHalfOpen = false
        h2.emit('connection', socket)
      } else {
        for (const listener of http1Listeners) listener.call(server, socket)
      }
    })
  })
  // The inner http2 server never listens; closing it closes its sessions.
  server.once('close', () => { h2.close() })
  return server
}

function createSecure (handler: RequestHandler, tls: { key: string | Buffer, cert: string | Buffer }, settings: Settings): DualProtocolServer {
  const server = http2.createSecureServer({ key: tls.key, cert: tls.cert, allowHTTP1: true, settings: { maxConcurrentStreams: settings.maxConcurrentStreams } }, handler as unknown as (request: http2.Http2ServerRequest, response: http2.Http2ServerResponse) => void)
  // allowHTTP1 gives the secure server Node's HTTP/1.1 settings (300 s requestTimeout among them).
  applyHttp1Settings(server as unknown as http.Server, settings)
  const closeSessions = trackSessions(server, settings)
  // The secure server answers HTTP/1.1 through Node's http machinery ('request', 'upgrade',
  // closeIdleConnections) and stands in for an http.Server everywhere Fastify and
  // @fastify/websocket use one.
  const dual = server as unknown as DualProtocolServer
  dual.closeHttp2Sessions = closeSessions
  return dual
}

// Reads the first bytes of a connection without starting the flow of data (never resume():
// neither parser would see what was already read), decides, and puts the bytes back.
function peekPreface (socket: Socket, timeoutMs: number, decide: (isHttp2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0)
  const cleanup = (): void => {
    socket.removeListener('readable', onReadable)
    socket.removeListener('error', onError)
    socket.removeListener('end', onEnd)
    socket.setTimeout(0)
    socket.removeListener('timeout', onTimeout)
  }
  // A connection that errors or goes silent before saying anything is simply dropped.
  const onError = (): void => { cleanup(); socket.destroy() }
  const onEnd = (): void => { cleanup(); socket.destroy() }
  const onTimeout = (): void => { cleanup(); socket.destroy() }
  const onReadable = (): void => {
    let chunk: Buffer | null
    while ((chunk = socket.read() as Buffer | null) !== null) seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk])
    const n = Math.min(seen.length, PREFACE.length)
    const matches = seen.subarray(0, n).equals(PREFACE.subarray(0, n))
    if (matches && seen.length < PREFACE.length) return // a prefix of the preface: wait for more
    cleanup()
    if (seen.length > 0) socket.unshift(seen)
    decide(matches)
  }
  socket.on('error', onError)
  socket.on('end', onEnd)
  socket.setTimeout(timeoutMs)
  socket.on('timeout', onTimeout)
  socket.on('readable', onReadable)
}
