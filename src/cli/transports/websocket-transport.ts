import WebSocket from 'ws'
import type { EndEvent, StreamEvent } from '../../../schemas/events.ts'
import { CliError, unreachable } from '../cli-error.ts'
import { parseServerEvent } from '../server-event.ts'
import { StreamOutcome } from './stream-outcome.ts'
import { httpRefusal } from './http-transport.ts'
import { authHeaders, routeUrl, type StreamRequest } from './transport.ts'

// WebSocket: a start message, binary frames of audio, a stop message; events come back as
// text frames. http(s) URLs are mapped to ws(s).
export async function websocketTransport (request: StreamRequest): Promise<EndEvent> {
  const url = routeUrl(request.base, `/api/v1/${request.mode}`)
  url.protocol = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:'
  // The key goes on the upgrade request: the server refuses a bad one before the socket opens.
  const socket = new WebSocket(url, { rejectUnauthorized: !request.insecure, headers: authHeaders(request) })

  const outcome = new StreamOutcome(request, {
    afterFail: () => { socket.terminate() },
    afterEnd: () => { socket.close(1000) }
  })
  let opened = false

  // The refusal's body says why ({code, message, field}), as on the other transports.
  socket.on('unexpected-response', (_req, response) => {
    const body: Buffer[] = []
    response.on('data', (chunk: Buffer) => { body.push(chunk) })
    // 'close' follows the end of the body, or a connection cut short: whatever arrived is used.
    response.once('close', () => {
      const refusal = httpRefusal(response.statusCode ?? 0, Buffer.concat(body).toString())
      outcome.fail(new CliError(refusal.message.replace('The server refused the stream', `The server refused the WebSocket upgrade at ${url.href}`)))
    })
  })
  socket.on('error', (error) => {
    outcome.fail(opened ? new CliError(`WebSocket error: ${error.message}`) : unreachable(url, error))
  })
  socket.on('message', (data, isBinary) => {
    if (isBinary || outcome.settled) return
    let event: StreamEvent | null
    try {
      event = parseServerEvent(data.toString(), 'a text frame')
    } catch (error) {
      outcome.fail(error instanceof CliError ? error : new CliError(String(error)))
      return
    }
    if (event !== null) outcome.receive(event)
  })
  socket.on('close', (code, reason) => {
    const why = reason.toString()
    outcome.fail(new CliError(`The server closed the connection before the stream ended (close code ${code}${why === '' ? '' : `: ${why}`})`))
  })

  await new Promise<void>((resolve) => {
    socket.once('open', () => { opened = true; resolve() })
    // A failed connect settles `result`; stop waiting for 'open'.
    outcome.result.catch(() => resolve())
  })

  if (!outcome.settled) {
    const send = async (data: string | Uint8Array): Promise<void> => {
      // Waiting for each write keeps memory flat and the progress honest.
      await new Promise<void>((resolve) => { socket.send(data, () => { resolve() }) })
    }
    await send(JSON.stringify({ request: 'start', format: request.format, interim_results: request.interimResults, ...(request.acks ? { acks: true } : {}) }))
    for await (const chunk of request.audio) {
      if (outcome.settled || socket.readyState !== WebSocket.OPEN) break
      await send(chunk)
    }
    if (!outcome.settled && socket.readyState === WebSocket.OPEN) {
      // disconnect: the server closes with 1000 after `end`.
      await send(JSON.stringify({ request: 'stop', disconnect: true }))
      request.onUploadEnd()
    }
  }
  return await outcome.result
}
