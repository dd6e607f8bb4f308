import type { FastifyInstance, FastifyBaseLogger } from 'fastify'
import websocket from '@fastify/websocket'
import type { WebSocket, RawData } from 'ws'
import { ApiError } from '../schemas/error-codes.ts'
import type { StreamEvent } from '../schemas/events.ts'
import type { Mode } from '../schemas/messages.ts'
import type { SessionEntry } from '../src/core/session-registry.ts'
import { parseClientMessage } from '../src/core/start-request.ts'

// RFC 6455 close codes this transport uses.
const CLOSE_NORMAL = 1000
const CLOSE_GOING_AWAY = 1001
const CLOSE_SERVER_ERROR = 1011

// The WebSocket transport: text frames carry control messages and events, binary frames carry
// audio. Frames over the configured size are refused by ws itself with close code 1009.
export default async function websocketTransport (app: FastifyInstance): Promise<void> {
  const connections = new Set<WebSocket>()
  await app.register(websocket, {
    options: { maxPayload: app.streamer.config.limits.max_frame_bytes },
    // Shutdown: open streams are aborted by the core; clients are told we are going away.
    preClose: async () => {
      for (const socket of connections) socket.close(CLOSE_GOING_AWAY, 'Server shutting down')
    }
  })

  for (const mode of ['segmented', 'simple'] as const) {
    app.get(`/api/v1/${mode}`, { websocket: true }, (socket, request) => {
      connections.add(socket)
      socket.once('close', () => connections.delete(socket))
      serveConnection(app, socket, mode, request.log)
    })
  }
}

function serveConnection (app: FastifyInstance, socket: WebSocket, mode: Mode, log: FastifyBaseLogger): void {
  const streamer = app.streamer
  const maxChannels = streamer.config.limits.max_channels
  let current: SessionEntry | null = null
  let discardedBytes = 0
  // Messages are handled strictly in arrival order: audio after a new start must reach the new
  // session, which exists only once the previous stream has sent its `end`.
  let queue: Promise<void> = Promise.resolve()

  const send = (event: StreamEvent): void => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(event))
  }
  const sendError = (error: ApiError): void => {
    send({ type: 'error', channel: null, code: error.code, message: error.message })
  }

  const finishCurrent = async (): Promise<void> => {
    const entry = current
    if (entry === null) return
    await entry.session.finish()
    if (current === entry) current = null
  }

  const handle = async (data: RawData, isBinary: boolean): Promise<void> => {
    if (isBinary) {
      const bytes = toBytes(data)
      if (current === null) {
        // Told once per gap, not once per frame; the count shows how much was dropped.
        if (discardedBytes === 0) sendError(new ApiError('audio_before_start', 'Audio arrived before a start message and is discarded until {"request":"start","format":{...}} is sent'))
        discardedBytes += bytes.length
        return
      }
      current.session.pushAudio(bytes)
      return
    }
    const message = parseClientMessage(data.toString(), maxChannels)
    if (message.request === 'stop') {
      if (current === null) throw new ApiError('stop_without_start', 'stop received with no stream running: send {"request":"start",...} first')
      await finishCurrent()
      if (message.disconnect) socket.close(CLOSE_NORMAL, 'Stream finished')
      return
    }
    // A start during a stream ends the current one first, as a stop would.
    await finishCurrent()
    if (socket.readyState !== socket.OPEN) return
    discardedBytes = 0
    const entry = streamer.openSession({
      transport: 'websocket',
      mode,
      start: message.start,
      emit: send,
      onFault: (error) => { log.error({ err: error }, 'stream fault') }
    })
    current = entry
    log.info({ session: entry.id, mode, format: message.start.format }, 'stream started')
  }

  socket.on('message', (data, isBinary) => {
    queue = queue.then(() => handle(data, isBinary)).catch((error: unknown) => {
      if (error instanceof ApiError) {
        sendError(error)
        return
      }
      log.error({ err: error }, 'websocket handler failed')
      send({ type: 'error', channel: null, code: 'internal', message: 'Internal server error' })
      socket.close(CLOSE_SERVER_ERROR, 'Internal server error')
    })
  })
  // A client that goes away mid-stream frees its session at once.
  socket.on('close', () => { current?.session.abort() })
  socket.on('error', (error) => { log.warn({ err: error }, 'websocket error') })
}

function toBytes (data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return data
}
