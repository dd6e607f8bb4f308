import { connect, constants } from 'node:http2'
import type { EndEvent } from '../../../schemas/events.ts'
import { CliError, unreachable } from '../cli-error.ts'
import { createSseFeed } from '../sse-events.ts'
import { StreamOutcome } from './stream-outcome.ts'
import { authHeaders, routeUrl, type StreamRequest } from './transport.ts'

const { HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE } = constants

// The server's `http` transport, the streaming upload: one POST whose body is the audio (raw
// PCM, format in the query: the WAV data chunk only, never its header, so the server takes
// exactly the bytes sent, as on the other transports) and whose response is text/event-stream, read while the body is
// still being sent. The server takes it over HTTP/1.1 too; this client always speaks HTTP/2:
// http:// as cleartext HTTP/2 with prior knowledge (h2c), https:// as TLS with ALPN h2.
export async function httpTransport (request: StreamRequest): Promise<EndEvent> {
  const url = routeUrl(request.base, `/api/v1/${request.mode}`)
  const { format } = request
  const query = new URLSearchParams({
    sample_rate: String(format.sample_rate),
    channels: String(format.channels),
    bit_depth: String(format.bit_depth),
    is_float: String(format.is_float),
    interim_results: String(request.interimResults)
  })
  if (format.encoding !== undefined && format.encoding !== 'pcm') query.set('encoding', format.encoding)
  if (request.acks) query.set('acks', 'true')

  const session = connect(url.origin, { rejectUnauthorized: !request.insecure })
  let connected = false
  // Requested before the listeners below are added: http2 queues it until the session connects,
  // and every event (connect, error, response) is emitted on a later tick.
  const upload = session.request({
    [HTTP2_HEADER_METHOD]: 'POST',
    [HTTP2_HEADER_PATH]: `${url.pathname}?${query}`,
    [HTTP2_HEADER_CONTENT_TYPE]: 'application/octet-stream',
    accept: 'text/event-stream',
    ...authHeaders(request)
  })
  const finish = (): void => {
    upload.close(constants.NGHTTP2_CANCEL)
    session.close()
    // A session that still has the refused stream open would keep the process alive.
    setTimeout(() => { session.destroy() }, 1000).unref()
  }
  const outcome = new StreamOutcome(request, { afterFail: finish, afterEnd: finish })
  session.once('connect', () => { connected = true })
  session.on('error', (error) => {
    outcome.fail(connected ? new CliError(`HTTP/2 connection error: ${error.message}`) : unreachable(url.origin, error))
  })

  upload.on('error', (error) => {
    outcome.fail(connected ? new CliError(`The HTTP/2 stream failed: ${error.message}`) : unreachable(url.origin, error))
  })
  upload.on('response', (headers) => {
    const status = Number(headers[HTTP2_HEADER_STATUS])
    if (status === 200) {
      const feed = createSseFeed((event) => { outcome.receive(event) })
      upload.on('data', (chunk: Buffer) => {
        try {
          feed.push(chunk)
        } catch (error) {
          outcome.fail(error instanceof CliError ? error : new CliError(String(error)))
        }
      })
      return
    }
    // A refusal before the stream started: {code, message, field} as JSON.
    const body: Buffer[] = []
    upload.on('data', (chunk: Buffer) => { body.push(chunk) })
    upload.once('end', () => { outcome.fail(httpRefusal(status, Buffer.concat(body).toString())) })
  })
  upload.on('close', () => {
    outcome.fail(new CliError(`The server ended the HTTP/2 stream before the stream's end event (RST code ${upload.rstCode ?? 'none'})`))
  })

  for await (const chunk of request.audio) {
    if (outcome.settled || upload.destroyed || upload.writableEnded) break
    // Backpressure: wait for the flow-control window rather than buffering the whole file.
    if (!upload.write(chunk)) {
      await new Promise<void>((resolve) => {
        upload.once('drain', resolve)
        upload.once('close', resolve)
      })
    }
  }
  if (!outcome.settled && !upload.destroyed) {
    // The end of the body is the stop.
    upload.end()
    request.onUploadEnd()
  }
  return await outcome.result
}

// A refusal by the server: its HTTP status and, when the body is one of the server's errors,
// the catalogue's code, for callers that treat some refusals as the stream's end.
export class HttpRefusal extends CliError {
  readonly status: number
  readonly code: string | undefined
  constructor (message: string, status: number, code: string | undefined) {
    super(message)
    this.status = status
    this.code = code
  }
}

export function httpRefusal (status: number, text: string): HttpRefusal {
  // A 401 is the one refusal the CLI's own options fix.
  const hint = status === 401 ? '; this server needs an API key: pass --api-key <key> or set STREAMER_API_KEY' : ''
  try {
    const body = JSON.parse(text) as { code?: unknown, message?: unknown, field?: unknown }
    if (typeof body.message === 'string') {
      const code = typeof body.code === 'string' ? body.code : undefined
      const field = typeof body.field === 'string' ? ` (field ${body.field})` : ''
      return new HttpRefusal(`The server refused the stream: HTTP ${status} ${code ?? ''}: ${body.message}${field}${hint}`, status, code)
    }
  } catch {}
  return new HttpRefusal(`The server refused the stream: HTTP ${status}${text === '' ? '' : `: ${text.slice(0, 200)}`}${hint}`, status, undefined)
}
