import type { FastifyInstance, FastifyBaseLogger } from 'fastify'
import websocket from '@fastify/websocket'
import type { WebSocket, RawData } from 'ws'
import { ApiError, closeCodeOf } from '../../schemas/error-codes.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import type { Mode } from '../../schemas/messages.ts'
import type { StartRequest } from '../../src/core/start-request.ts'
import type { Stream } from '../../src/core/stream.ts'
import { keyIdOf, selectSubprotocol } from '../auth/index.ts'

// RFC 6455 close codes this transport uses itself; errors carry theirs in the catalogue.
const CLOSE_NORMAL = 1000
const CLOSE_SERVER_ERROR = 1011
const CLOSE_SERVICE_RESTART = 1012
const CLOSE_TRY_AGAIN_LATER = 1013

// Refusals of a start that say "come back later": the error event, then close 1013.
const RETRY_LATER = new Set(['not_ready', 'too_many_sessions', 'shutting_down'])

// The WebSocket transport: text frames carry control messages and events, binary frames carry
// audio. Frames over the configured size are refused by ws itself with close code 1009.
export default async function websocketTransport (app: FastifyInstance): Promise<void> {
  const limits = app.streamer.config.limits
  const connections = new Set<Connection>()
  await app.register(websocket, {
    // A browser sends its token as the subprotocols ['token', <token>] (the auth hook checks it
    // before the upgrade); the handshake must then name `token`, or the browser drops the socket.
    options: { maxPayload: limits.max_frame_bytes, handleProtocols: selectSubprotocol },
    // Shutdown: the core drains the streams (each closes its socket); sockets with no stream
    // running are closed here.
    preClose: async () => {
      for (const connection of connections) connection.socket.close(CLOSE_SERVICE_RESTART, 'Server restarting')
    }
  })

  // Liveness: every socket is pinged; one that did not answer the previous ping is a half-open
  // connection (a client that vanished without a FIN) and is dropped.
  const pinger = setInterval(() => {
    for (const connection of connections) connection.ping()
  }, limits.ping_interval_seconds * 1000)
  pinger.unref()
  app.addHook('onClose', async () => { clearInterval(pinger) })

  for (const mode of ['segmented', 'simple'] as const) {
    app.route({
      method: 'GET',
      url: `/api/v1/${mode}`,
      schema: { hide: true },
      // The upgrade needs a key or a token (for this mode); a refusal is the HTTP answer to it.
      config: { auth: 'stream', authMode: mode },
      // A plain GET (a browser, curl without the upgrade): say what this route is.
      handler: async () => {
        throw new ApiError('upgrade_required', `/api/v1/${mode} is a WebSocket route: connect with a WebSocket client (ws://host/api/v1/${mode}), or stream audio over HTTP with POST /api/v1/${mode}`)
      },
      wsHandler: (socket, request) => {
        const connection = new Connection(app, socket, mode, request.log, request.ip, keyIdOf(request.auth))
        connections.add(connection)
        socket.once('close', () => connections.delete(connection))
      }
    })
  }
}

// A close reason is at most 123 bytes (RFC 6455 5.5).
const closeReason = (text: string): string => Buffer.from(text).subarray(0, 123).toString()

// One WebSocket connection: any number of streams one after another, control messages and
// audio handled strictly in arrival order.
class Connection {
  readonly socket: WebSocket
  readonly #app: FastifyInstance
  readonly #mode: Mode
  readonly #log: FastifyBaseLogger
  readonly #client: string
  readonly #key: string | undefined // the API key's id, for the per-key limits
  #current: Stream | null = null
  #discardedBytes = 0
  #alive = true
  // Audio after a new start must reach the new stream, which exists only once the previous one
  // has sent its `end`: messages wait for the one before.
  #queue: Promise<void> = Promise.resolve()
  // A socket with no stream holds a connection too: it is closed after the idle limit.
  readonly #idle: NodeJS.Timeout

  constructor (app: FastifyInstance, socket: WebSocket, mode: Mode, log: FastifyBaseLogger, client: string, key: string | undefined) {
    this.socket = socket
    this.#app = app
    this.#mode = mode
    this.#log = log
    this.#client = client
    this.#key = key
    const seconds = app.streamer.config.limits.idle_timeout_seconds
    this.#idle = setTimeout(() => {
      if (this.#current !== null) return // the stream's own idle limit applies
      this.#send(new ApiError('idle_timeout', `No start message for ${seconds} s (limits.idle_timeout_seconds): the connection was closed`).toEvent())
      socket.close(closeCodeOf('idle_timeout'), 'No stream started')
    }, seconds * 1000)
    this.#idle.unref()
    socket.on('message', (data, isBinary) => {
      this.#idle.refresh()
      // The client is active even while its message waits behind a slow one (a finalize).
      this.#current?.keepalive()
      this.#queue = this.#queue.then(() => this.#handle(data, isBinary)).catch((error: unknown) => { this.#onError(error) })
    })
    socket.on('pong', () => { this.#alive = true })
    // A client that goes away mid-stream frees its stream at once.
    socket.on('close', () => {
      clearTimeout(this.#idle)
      this.#current?.abort()
    })
    socket.on('error', (error) => { log.warn({ err: error }, 'websocket error') })
  }

  ping (): void {
    // While the server has paused reading this socket (flow control) its pongs wait unread: the
    // client is not dead, the server is not listening.
    if (this.#current?.paused === true) {
      this.#alive = true
      return
    }
    if (!this.#alive) {
      this.#log.info({ session: this.#current?.id }, 'websocket missed a ping: closed')
      this.socket.terminate()
      return
    }
    this.#alive = false
    this.socket.ping()
  }

  #send (event: StreamEvent): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(event))
  }

  async #finishCurrent (): Promise<void> {
    const stream = this.#current
    if (stream === null) return
    await stream.finish()
    if (this.#current === stream) this.#current = null
  }

  async #handle (data: RawData, isBinary: boolean): Promise<void> {
    if (isBinary) {
      const bytes = toBytes(data)
      if (this.#current === null) {
        // Told once per gap, not once per frame; the count shows how much was dropped.
        if (this.#discardedBytes === 0) this.#send(new ApiError('audio_before_start', 'Audio arrived before a start message and is discarded until {"request":"start","format":{...}} is sent').toEvent())
        this.#discardedBytes += bytes.length
        return
      }
      this.#current.pushAudio(bytes)
      return
    }
    const message = this.#app.streamer.startParser.parseClientMessage(data.toString())
    if (message.request === 'keepalive') {
      this.#current?.keepalive()
      return
    }
    if (message.request === 'finalize') {
      if (this.#current === null) throw new ApiError('stop_without_start', 'finalize received with no stream running: send {"request":"start",...} first')
      await this.#current.finalize()
      return
    }
    if (message.request === 'stop') {
      if (this.#current === null) {
        if (message.disconnect) {
          this.socket.close(CLOSE_NORMAL, 'No stream was running')
          return
        }
        throw new ApiError('stop_without_start', 'stop received with no stream running: send {"request":"start",...} first')
      }
      await this.#finishCurrent()
      if (message.disconnect) this.socket.close(CLOSE_NORMAL, 'Stream finished')
      return
    }
    // A start during a stream ends the current one first, as a stop would.
    await this.#finishCurrent()
    if (this.socket.readyState !== this.socket.OPEN) return
    // In a cluster the limits count every instance's streams (a refusal is thrown as openStream's).
    const settle = await this.#app.cluster?.admit(this.#key)
    try {
      if (this.socket.readyState !== this.socket.OPEN) return
      this.#open(message.start)
    } finally {
      settle?.()
    }
  }

  #open (start: StartRequest): void {
    this.#discardedBytes = 0
    const socket = this.socket
    const stream = this.#app.streamer.openStream({
      transport: 'websocket',
      mode: this.#mode,
      start,
      client: this.#client,
      key: this.#key,
      sink: {
        send: (event) => { this.#send(event) },
        close: (error) => {
          if (error === undefined) socket.close(CLOSE_SERVICE_RESTART, 'Server restarting: the stream was drained')
          else socket.close(closeCodeOf(error.code) ?? CLOSE_SERVER_ERROR, closeReason(error.message))
        },
        pause: () => { socket.pause() },
        resume: () => { socket.resume() },
        outboundBytes: () => socket.bufferedAmount
      }
    })
    this.#current = stream
    // However it ends (the stop, a limit, a fault), the connection's own idle clock starts then.
    void stream.closed.then(() => {
      if (this.#current === stream) this.#current = null
      this.#idle.refresh()
    })
  }

  #onError (error: unknown): void {
    if (error instanceof ApiError) {
      this.#send(error.toEvent())
      // A start refused for capacity: the client should come back later, maybe elsewhere.
      if (RETRY_LATER.has(error.code)) this.socket.close(CLOSE_TRY_AGAIN_LATER, closeReason(error.message))
      return
    }
    this.#log.error({ err: error }, 'websocket handler failed')
    this.#send(new ApiError('internal', 'Internal server error').toEvent())
    this.socket.close(CLOSE_SERVER_ERROR, 'Internal server error')
  }
}

function toBytes (data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return data
}
