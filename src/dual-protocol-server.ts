import http from 'node:http'
import http2 from 'node:http2'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'

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
//
// close() must not wait for connections that serve nothing: server.close() resolves only once
// every accepted socket is gone, and a socket that sent nothing (still being peeked at, or still
// in its TLS handshake) or only part of a request is invisible to Node's closeIdleConnections()
// and, once close() stops Node's header-timeout checks, would stay open until the client leaves.
// So every connection is tracked, and close() destroys those with no request in progress.

// RFC 9113 section 3.4: every prior-knowledge HTTP/2 connection starts with these 24 bytes.
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

export interface DualProtocolOptions {
  tls?: { key: string | Buffer, cert: string | Buffer }
  keepAliveTimeoutMs?: number // idle HTTP/1.1 keep-alive connections (Fastify's default: 72 s)
  headersTimeoutMs?: number // request headers (and, cleartext, the first bytes) must arrive within this
  http2SessionTimeoutMs?: number // an HTTP/2 session idle this long is closed gracefully
  shutdownGraceMs?: number // on close, HTTP/2 sessions and upgraded sockets still open after this are destroyed
  maxConcurrentStreams?: number // HTTP/2 streams one connection may have open (SETTINGS, enforced by nghttp2)
}

export type RequestHandler = (request: http.IncomingMessage, response: http.ServerResponse) => void

// What Fastify closes: besides close(), it calls closeIdleConnections() (HTTP/1.1 keep-alive)
// and closeHttp2Sessions() (so app.close() does not hang on open HTTP/2 sessions). close()
// itself also ends every connection that serves nothing (see ConnectionTracker) and closes the
// HTTP/2 sessions, so it completes on its own too.
export interface DualProtocolServer extends http.Server {
  closeHttp2Sessions: () => void
  /** Open connections by what they do: for the log line of a shutdown that did not finish. */
  connectionCounts: () => ConnectionCounts
}

export interface ConnectionCounts {
  pending: number // accepted, protocol not known yet (peeking, TLS handshake)
  http1Idle: number // HTTP/1.1 with no request in progress (keep-alive, or a request not yet whole)
  http1Busy: number // HTTP/1.1 with a request in progress
  upgraded: number // taken over by the WebSocket server
  http2Sessions: number
}

// shutdownGraceMs stays under the 5 s src/server.ts gives app.close() after the drain deadline.
const DEFAULTS = { keepAliveTimeoutMs: 72000, headersTimeoutMs: 60000, http2SessionTimeoutMs: 72000, shutdownGraceMs: 3000, maxConcurrentStreams: 100 }

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

function applyHttp1Settings (server: http.Server, settings: Settings, tracker: ConnectionTracker): void {
  server.requestTimeout = 0 // a streaming upload may last hours while it keeps moving
  server.headersTimeout = settings.headersTimeoutMs
  server.keepAliveTimeout = settings.keepAliveTimeoutMs
  // Only WebSocket upgrades are taken. Node's default takes every `Upgrade:` request once
  // anyone listens for 'upgrade', so `curl --http2` (Upgrade: h2c) would reach a route with its
  // body left unread; served as plain HTTP/1.1 instead, as RFC 9110 7.8 allows.
  // (A property on the server, as Node's http and http2-with-allowHTTP1 servers read it.)
  const upgradable = server as http.Server & { shouldUpgradeCallback: (request: http.IncomingMessage) => boolean }
  upgradable.shouldUpgradeCallback = (request) => {
    const upgrade = /(^|,)\s*websocket\s*(,|$)/i.test(request.headers.upgrade ?? '')
    // From here the socket belongs to the 'upgrade' listener (the WebSocket server, which
    // closes its sockets at shutdown itself) or is destroyed by Node if there is none.
    if (upgrade) tracker.handOver(request.socket, 'upgraded')
    return upgrade
  }
  // Prepended: Fastify's handler may answer at once (its 503 while closing).
  server.prependListener('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
    // HTTP/2 requests (the TLS server's) belong to their session, tracked apart.
    if (request.httpVersionMajor < 2) tracker.request(request.socket, response)
  })
}

type Owner = 'upgraded' | 'http2'

// Every connection the server accepted and what it is doing. The sockets are the ones the
// HTTP/1.1 parser reads (cleartext: the accepted socket; TLS: the TLS socket once secure);
// `pending` holds the accepted sockets not yet handed to a protocol.
class ConnectionTracker {
  readonly #pending = new Set<Socket>()
  readonly #http1 = new Map<Socket, number>() // requests in progress on each HTTP/1.1 connection
  readonly #owned = new Map<Socket, Owner>()
  readonly #graceMs: number
  #closing = false

  constructor (graceMs: number) {
    this.#graceMs = graceMs
  }

  // Accepted, protocol not yet known.
  accept (socket: Socket): void {
    this.#pending.add(socket)
    socket.once('close', () => { this.#pending.delete(socket) })
  }

  // The protocol is known: from `pending` (if it was there) to an HTTP/1.1 connection.
  http1 (socket: Socket, accepted: Socket = socket): void {
    this.#pending.delete(accepted)
    if (this.#closing) {
      socket.destroy()
      return
    }
    this.#http1.set(socket, 0)
    socket.once('close', () => { this.#http1.delete(socket) })
  }

  handOver (socket: Socket, owner: Owner, accepted: Socket = socket): void {
    this.#pending.delete(accepted)
    this.#http1.delete(socket)
    this.#owned.set(socket, owner)
    socket.once('close', () => { this.#owned.delete(socket) })
  }

  // An HTTP/1.1 request began on `socket`; it is in progress until its response is done.
  request (socket: Socket, response: http.ServerResponse): void {
    const count = this.#http1.get(socket)
    if (count === undefined) return // already closed, or handed over
    this.#http1.set(socket, count + 1)
    response.once('close', () => {
      const requests = this.#http1.get(socket)
      if (requests === undefined) return // the connection is gone (or was upgraded)
      const left = requests - 1
      this.#http1.set(socket, left)
      // Shutting down: an answered keep-alive connection would otherwise wait for its
      // keep-alive timeout. destroySoon: what is written is sent first.
      if (this.#closing && left === 0) socket.destroySoon()
    })
  }

  // Shutdown: every connection that serves nothing now is destroyed; busy HTTP/1.1 ones are
  // closed when their request is answered. HTTP/2 sessions are closeHttp2Sessions' business.
  // Upgraded sockets are left to the WebSocket server, which closes them with a close
  // handshake; one whose client never answers it (ws waits 30 s) is destroyed after the grace.
  close (): void {
    if (this.#closing) return
    this.#closing = true
    for (const socket of this.#pending) socket.destroy()
    for (const [socket, requests] of this.#http1) if (requests === 0) socket.destroy()
    setTimeout(() => {
      for (const [socket, owner] of this.#owned) if (owner === 'upgraded') socket.destroy()
    }, this.#graceMs).unref()
  }

  counts (http2Sessions: number): ConnectionCounts {
    let busy = 0
    for (const requests of this.#http1.values()) if (requests > 0) busy++
    let upgraded = 0
    for (const owner of this.#owned.values()) if (owner === 'upgraded') upgraded++
    return { pending: this.#pending.size, http1Idle: this.#http1.size - busy, http1Busy: busy, upgraded, http2Sessions }
  }
}

// Tracks HTTP/2 sessions so shutdown can close them: gracefully (GOAWAY; a session with no open
// stream closes at once, one with streams once they end), then destroyed after the grace
// period so close() always completes. A session that opens after shutdown began is closed too.
function trackSessions (server: http2.Http2Server | http2.Http2SecureServer, settings: Settings): { close: () => void, count: () => number } {
  const sessions = new Set<http2.ServerHttp2Session>()
  let closing = false
  let timer: NodeJS.Timeout | undefined
  const armGrace = (): void => {
    if (timer !== undefined || sessions.size === 0) return
    timer = setTimeout(() => { for (const session of sessions) session.destroy() }, settings.shutdownGraceMs)
    timer.unref()
  }
  server.on('session', (session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
    session.setTimeout(settings.http2SessionTimeoutMs, () => { session.close() })
    if (closing) {
      session.close()
      armGrace()
    }
  })
  return {
    close: () => {
      closing = true
      for (const session of sessions) session.close()
      armGrace()
    },
    count: () => sessions.size
  }
}

// close() stops listening and ends every connection that serves nothing, then closes the
// HTTP/2 sessions; Fastify calls closeHttp2Sessions() before it, calling it twice is harmless.
function closeConnectionsOnClose (server: DualProtocolServer, tracker: ConnectionTracker, sessions: { close: () => void }): void {
  const close = server.close.bind(server)
  server.close = (callback?: (error?: Error) => void): DualProtocolServer => {
    tracker.close()
    sessions.close()
    close(callback)
    return server
  }
}

function createCleartext (handler: RequestHandler, settings: Settings): DualProtocolServer {
  const server = http.createServer(handler) as DualProtocolServer
  const tracker = new ConnectionTracker(settings.shutdownGraceMs)
  applyHttp1Settings(server, settings, tracker)
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: settings.maxConcurrentStreams } }, handler as unknown as (request: http2.Http2ServerRequest, response: http2.Http2ServerResponse) => void)
  const sessions = trackSessions(h2, settings)
  server.closeHttp2Sessions = sessions.close
  server.connectionCounts = () => tracker.counts(sessions.count())
  closeConnectionsOnClose(server, tracker, sessions)

  // The http.Server's own connection handler (the HTTP/1.1 parser) runs only for connections
  // that are not HTTP/2.
  const http1Listeners = server.listeners('connection') as Array<(socket: Socket) => void>
  server.removeAllListeners('connection')
  server.on('connection', (socket: Socket) => {
    tracker.accept(socket)
    peekPreface(socket, settings.headersTimeoutMs, (isHttp2) => {
      if (isHttp2) {
        // http.Server accepts sockets half-open; an HTTP/2 session must close with its peer.
        socket.allowHalfOpen = false
        tracker.handOver(socket, 'http2')
        h2.emit('connection', socket)
      } else {
        tracker.http1(socket)
        if (socket.destroyed) return // shutdown began while it was peeked at
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
  const tracker = new ConnectionTracker(settings.shutdownGraceMs)
  // allowHTTP1 gives the secure server Node's HTTP/1.1 settings (300 s requestTimeout among them).
  applyHttp1Settings(server as unknown as http.Server, settings, tracker)
  const sessions = trackSessions(server, settings)
  // A TLS connection is pending until its handshake ends (Node's handshake timeout is 120 s).
  // The secure socket is a new object over the accepted one; the pair is matched by the
  // client's address and port, which identify one open connection to this port.
  const handshaking = new Map<string, Socket>()
  server.on('connection', (socket: Socket) => {
    tracker.accept(socket)
    const key = peerKey(socket)
    handshaking.set(key, socket)
    socket.once('close', () => { if (handshaking.get(key) === socket) handshaking.delete(key) })
  })
  server.on('secureConnection', (secure: TLSSocket) => {
    const key = peerKey(secure)
    const accepted = handshaking.get(key) ?? secure
    handshaking.delete(key)
    if (secure.alpnProtocol === 'h2') tracker.handOver(secure, 'http2', accepted)
    else tracker.http1(secure, accepted)
  })
  // The secure server answers HTTP/1.1 through Node's http machinery ('request', 'upgrade',
  // closeIdleConnections) and stands in for an http.Server everywhere Fastify and
  // @fastify/websocket use one.
  const dual = server as unknown as DualProtocolServer
  dual.closeHttp2Sessions = sessions.close
  dual.connectionCounts = () => tracker.counts(sessions.count())
  closeConnectionsOnClose(dual, tracker, sessions)
  return dual
}

const peerKey = (socket: Socket): string => `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`

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
