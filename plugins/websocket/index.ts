import type { FastifyInstance, FastifyBaseLogger } from 'fastify'
import websocket from '@fastify/websocket'
import type { WebSocket, RawData } from 'ws'
import { ApiError, closeCodeOf } from '../../schemas/error-codes.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import type { Mode } from '../../schemas/messages.ts'
import type { Stream } from '../../src/core/stream.ts'

// RFC 6455 close codes this transport uses itself; errors carry theirs in the catalogue.
const CLOSE_NORMAL = 1000
const CLOSE_SERVER_ERROR = 1011
const CLOSE_GOING_AWAY = 1001

// The WebSocket transport: text frames carry control messages and events, binary frames carry
// audio. Frames over the configured size are refused by ws itself with close code 1009.
export default async function websocketTransport (app: FastifyInstance): Promise<void> {
  const connections = new Set<WebSocket>()
  await app.register(websocket, {
    options: { maxPayload: app.streamer.config.limits.max_frame_bytes },
    // Shutdown: the core ends the streams (each closes its socket); sockets with no stream
    // running are closed here.
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

// A close reason is at most 123 bytes (RFC 6455 5.5).
const closeReason = (text: string): string => Buffer.from(text).subarray(0, 123).toString()

function serveConnection (app: FastifyInstance, socket: WebSocket, mode: Mode, log: FastifyBaseLogger): void {
  const streamer = app.streamer
  let current: Stream | null = null
  let discardedBytes = 0
  // Messages are handled strictly in arrival order: audio after a new start must reach the new
  // stream, which exists only once the previous one has sent its `end`.
  let queue: Promise<void> = Promise.resolve()

  const send = (event: StreamEvent): void => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(event))
  }

  const finishCurrent = async (): Promise<void> => {
    const stream = current
    if (stream === null) return
    await stream.finish()
    if (current === stream) current = null
  }

  const handle = async (data: RawData, isBinary: boolean): Promise<void> => {
    if (isBinary) {
      const bytes = toBytes(data)
      if (current === null) {
        // Told once per gap, not once per frame; the count shows how much was dropped.
        if (discardedBytes === 0) send(new ApiError('audio_before_start', 'Audio arrived before a start message and is discarded until {"request":"start","format":{...}} is sent').toEvent())
        discardedBytes += bytes.length
        return
      }
      current.pushAudio(bytes)
      return
    }
    const message = streamer.startParser.parseClientMessage(data.toString())
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
    current = streamer.openStream({
      transport: 'websocket',
      mode,
      start: message.start,
      sink: {
        send,
        close: (error) => { socket.close(closeCodeOf(error.code) ?? CLOSE_SERVER_ERROR, closeReason(error.message)) }
      }
    })
  }

  socket.on('message', (data, isBinary) => {
    queue = queue.then(() => handle(data, isBinary)).catch((error: unknown) => {
      if (error instanceof ApiError) {
        send(error.toEvent())
        return
      }
      log.error({ err: error }, 'websocket handler failed')
      send(new ApiError('internal', 'Internal server error').toEvent())
      socket.close(CLOSE_SERVER_ERROR, 'Internal server error')
    })
  })
  // A client that goes away mid-stream frees its stream at once.
  socket.on('close', () => { current?.abort() })
  socket.on('error', (error) => { log.warn({ err: error }, 'websocket error') })
}

function toBytes (data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return data
}
