import { constants as h2constants, type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AudioFormat } from '../schemas/audio-format.ts'
import { ApiError } from '../schemas/error-codes.ts'
import type { StreamEvent } from '../schemas/events.ts'
import type { Mode } from '../schemas/messages.ts'
import { MAX_WAV_HEADER_BYTES, parseWavHeader } from '../src/audio/wav-header.ts'
import { isTraceparent, parseStartRequest, type StartRequest } from '../src/core/start-request.ts'
import { openEventStream } from './event-stream.ts'

// The HTTP streaming upload: `POST` (or `PUT`, curl -T's default) /api/v1/segmented and
// /api/v1/simple. The request body is the audio, read as it arrives; the response is
// text/event-stream and starts at once, so results flow while the upload goes on (full duplex
// on HTTP/2; HTTP/1.1 chunked uploads work too, Node answers before the body ends). The end
// of the body is the stop. Errors found before the stream starts are plain HTTP (400, 413,
// 415, 503 with {code, message, field}); after, an `error` event and the stream ends.

const WAV_TYPES = ['audio/wav', 'audio/wave', 'audio/x-wav', 'audio/vnd.wave']
const RAW_TYPES = ['application/octet-stream']

// Query parameters are named like the start message's fields.
const FORMAT_PARAMS = ['sample_rate', 'channels', 'bit_depth', 'is_float', 'encoding'] as const
const OTHER_PARAMS = ['interim_results', 'trace_id'] as const
const QUERY_PARAMS: readonly string[] = [...FORMAT_PARAMS, ...OTHER_PARAMS]
const INTEGER_PARAMS = ['sample_rate', 'channels', 'bit_depth']
const BOOLEAN_PARAMS = ['is_float', 'interim_results']

type BodyKind = 'raw' | 'wav'
type Query = Record<string, string | string[] | undefined>

interface Upload {
  kind: BodyKind
  params: Record<string, unknown> // the query, coerced
  traceparent: string | undefined
}

export default async function httpStreamTransport (app: FastifyInstance): Promise<void> {
  const streamer = app.streamer
  const limits = streamer.config.limits
  // Streams open right now; shutdown tells each one and ends it.
  const open = new Set<(reason: ApiError) => void>()

  // The body is the audio stream: no parser may buffer it. Every content type reaches the
  // handler, which answers 415 itself (naming what is accepted). bodyLimit does not apply to a
  // stream handed through, so the handler counts bytes against limits.max_upload_bytes.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })

  app.addHook('preClose', async () => {
    const shutdown = new ApiError('not_ready', 'Server shutting down: the stream was ended before its body did')
    for (const stop of open) stop(shutdown)
  })

  for (const mode of ['segmented', 'simple'] as const) {
    app.route({
      method: ['POST', 'PUT'],
      url: `/api/v1/${mode}`,
      handler: async (request, reply) => {
        let upload: Upload | null = null
        let body: BodyReader | null = null
        try {
          upload = checkRequest(request, limits.max_upload_bytes)
          streamer.admit()
          body = new BodyReader(request.raw, limits.max_upload_bytes)
          let start: StartRequest
          let wavDataBytes: number | null = null
          if (upload.kind === 'wav') {
            // Wait for the header so a bad WAV is a plain 400, not an event after a 200.
            const header = await body.readWavHeader()
            start = parseStartRequest(startBody(upload, header.format), limits.max_channels)
            body.skip(header.dataOffset)
            wavDataBytes = header.dataBytes
          } else {
            start = parseStartRequest(startBody(upload, null), limits.max_channels)
          }
          // Checked again in the same tick as the session opens: waiting for a WAV header may
          // have let other sessions fill the server.
          streamer.admit()
          stream(request, reply, mode, start, body, wavDataBytes)
        } catch (error) {
          if (!(error instanceof ApiError)) throw error
          body?.stop()
          // A format field from the query is named as the query parameter the client wrote.
          refuse(request, reply, error, upload?.kind === 'raw')
        }
        return reply
      }
    })
  }

  function stream (request: FastifyRequest, reply: FastifyReply, mode: Mode, start: StartRequest, body: BodyReader, wavDataBytes: number | null): void {
    const events = openEventStream(request, reply)
    let nextId = 0
    const entry = streamer.openSession({
      transport: 'http',
      mode,
      start,
      emit: (event: StreamEvent) => { events.send(event, nextId++) },
      onFault: (error) => { request.log.error({ err: error }, 'stream fault') }
    })
    const { session } = entry
    request.log.info({ session: entry.id, mode, format: start.format, http: request.raw.httpVersion }, 'http stream started')

    // An error after the stream started: told as an event, then the stream ends and the
    // rest of the upload is refused.
    const stopWith = (error: ApiError): void => {
      if (events.closed) return
      events.send({ type: 'error', channel: null, code: error.code, message: error.message }, nextId++)
      session.abort()
      events.end()
      body.stop()
      stopUpload(request.raw, reply)
    }
    open.add(stopWith)
    // The client went away (reset, disconnect, response closed): free the session at once.
    // After a normal end the session is already ended and abort() does nothing.
    void events.done.then(() => {
      open.delete(stopWith)
      session.abort()
      body.stop()
      request.log.info({ session: entry.id, state: session.state }, 'http stream closed')
    })

    let audioLeft = wavDataBytes ?? Infinity // a WAV's trailing chunks (LIST...) are not audio
    body.consume({
      data: (chunk) => {
        if (audioLeft <= 0) return
        const audio = chunk.length > audioLeft ? chunk.subarray(0, audioLeft) : chunk
        audioLeft -= audio.length
        session.pushAudio(audio)
      },
      end: () => {
        session.finish().then(() => { open.delete(stopWith); events.end() }, (error: unknown) => {
          request.log.error({ err: error }, 'finishing the stream failed')
          stopWith(new ApiError('internal', 'Internal server error'))
        })
      },
      fail: stopWith,
      aborted: () => { session.abort(); events.end() }
    })
  }
}

// Content type, declared length and query, all checked before any body byte is read.
function checkRequest (request: FastifyRequest, maxUploadBytes: number): Upload {
  const type = (request.headers['content-type'] ?? 'application/octet-stream').split(';')[0]?.trim().toLowerCase() ?? ''
  // A body with no content type is taken as raw bytes (RFC 9110 8.3).
  const kind: BodyKind | null = WAV_TYPES.includes(type) ? 'wav' : RAW_TYPES.includes(type) ? 'raw' : null
  if (kind === null) {
    throw new ApiError('unsupported_media_type', `Content-Type '${type}' is not accepted: send raw PCM as ${RAW_TYPES.join(', ')} (format in the query) or a WAV file as ${WAV_TYPES.join(', ')}`, { statusCode: 415, field: 'content-type' })
  }
  const length = request.headers['content-length']
  if (length !== undefined && Number(length) > maxUploadBytes) throw tooLarge(maxUploadBytes, 'content-length')

  const query = request.query as Query
  const params: Record<string, unknown> = {}
  for (const [name, raw] of Object.entries(query)) {
    if (!QUERY_PARAMS.includes(name)) {
      throw new ApiError('invalid_message', `Unknown query parameter "${name}": accepted ${QUERY_PARAMS.join(', ')}`, { field: name })
    }
    if (Array.isArray(raw)) throw new ApiError('invalid_message', `Query parameter "${name}" is given more than once`, { field: name })
    if (raw !== undefined) params[name] = coerce(name, raw)
  }
  const header = request.headers.traceparent
  const traceparent = isTraceparent(header) ? header : undefined
  return { kind, params, traceparent }
}

// Query strings are text; the start request has numbers and booleans. A value that does not
// coerce is passed on as text, so the validator names the field and shows what was sent.
function coerce (name: string, value: string): unknown {
  if (INTEGER_PARAMS.includes(name) && /^-?\d+$/.test(value)) return Number(value)
  if (BOOLEAN_PARAMS.includes(name)) {
    if (value === 'true' || value === '1') return true
    if (value === 'false' || value === '0') return false
  }
  return value
}

// The start request as the WebSocket's start message would carry it. For a WAV body the
// header is the format; a query format field that contradicts it is refused.
function startBody (upload: Upload, wavFormat: AudioFormat | null): Record<string, unknown> {
  const { params } = upload
  let format: Record<string, unknown> = {}
  for (const name of FORMAT_PARAMS) if (params[name] !== undefined) format[name] = params[name]
  if (wavFormat !== null) {
    const declared: Record<string, unknown> = { ...wavFormat, encoding: wavFormat.encoding ?? 'pcm' }
    for (const [name, value] of Object.entries(format)) {
      if (declared[name] !== value) {
        throw new ApiError('unsupported_format', `Query parameter ${name}=${String(value)} contradicts the WAV header (${name} ${String(declared[name])}); leave it out for WAV bodies`, { field: name })
      }
    }
    format = { ...wavFormat }
  }
  const body: Record<string, unknown> = { format }
  if (params.interim_results !== undefined) body.interim_results = params.interim_results
  const traceId = params.trace_id ?? upload.traceparent
  if (traceId !== undefined) body.trace_id = traceId
  return body
}

function tooLarge (max: number, field: string): ApiError {
  return new ApiError('frame_too_large', `The upload is larger than the server's limit of ${max} bytes (limits.max_upload_bytes)`, { statusCode: 413, field })
}

// A refusal before the stream started: plain HTTP with {code, message, field}. For query
// fields the field is the query parameter's name.
function refuse (request: FastifyRequest, reply: FastifyReply, error: ApiError, queryFormat: boolean): void {
  const field = queryFormat ? error.field?.replace(/^format\./, '') : error.field
  reply.code(error.statusCode)
  // HTTP/1.1: the rest of an unread upload is not worth reading; HTTP/2 resets the stream instead.
  if (request.raw.httpVersionMajor < 2) reply.header('connection', 'close')
  void reply.send({ code: error.code, message: error.message, ...(field !== undefined ? { field } : {}) })
  stopUpload(request.raw, reply)
}

// Once a complete response is sent, the client is asked to stop sending the body: on HTTP/2
// RST_STREAM with NO_ERROR (RFC 9113 8.1), which curl and Node treat as a normal end; on
// HTTP/1.1 the connection closes (an unread body cannot be skipped to reach a next request).
function stopUpload (raw: IncomingMessage, reply: FastifyReply): void {
  if (raw.httpVersionMajor === 2) {
    resetWhenSent((raw as unknown as Http2ServerRequest).stream)
    return
  }
  const close = (): void => { if (!raw.complete) raw.socket.destroySoon() }
  if (reply.raw.writableFinished) close()
  else reply.raw.once('finish', close)
}

// Measured: Node's own close(NO_ERROR) waits only for the stream's 'finish', which comes before
// nghttp2 has sent the queued DATA; the RST_STREAM then overtakes them and the client loses
// the end of the response (curl: "(92) Stream error in the HTTP/2 framing layer"). nghttp2
// marks the stream closed locally once the END_STREAM frame went out, so that is awaited.
function resetWhenSent (stream: ServerHttp2Stream, waitedMs = 0): void {
  if (stream.closed || stream.destroyed) return
  if (stream.writableEnded && stream.state.localClose === 1) {
    stream.close(h2constants.NGHTTP2_NO_ERROR)
    return
  }
  // A client that stops reading the response is not waited for long.
  if (waitedMs > RESET_WAIT_MS) {
    stream.close(h2constants.NGHTTP2_CANCEL)
    return
  }
  setTimeout(() => { resetWhenSent(stream, waitedMs + RESET_POLL_MS) }, RESET_POLL_MS).unref()
}
const RESET_POLL_MS = 5
const RESET_WAIT_MS = 30000

interface BodyConsumer {
  data: (chunk: Buffer) => void
  end: () => void
  fail: (error: ApiError) => void // the byte limit was passed
  aborted: () => void // the client reset or dropped the upload
}

// The request body as it arrives, counted against the upload limit. Before a consumer is
// attached (while the WAV header is awaited) bytes are held; then they are handed on as they
// come, with no buffering of our own.
class BodyReader {
  readonly #raw: IncomingMessage
  readonly #max: number
  #held: Buffer[] = []
  #received = 0
  #ended = false
  #aborted = false
  #stopped = false
  #consumer: BodyConsumer | null = null
  #wake: (() => void) | null = null

  constructor (raw: IncomingMessage, max: number) {
    this.#raw = raw
    this.#max = max
    raw.on('data', this.#onData)
    raw.once('end', () => {
      this.#ended = true
      this.#wakeUp()
      if (!this.#stopped) this.#consumer?.end()
    })
    // 'aborted' is the HTTP/1.1 and HTTP/2 compat signal of a client reset mid-body; a request
    // that closes before its end was dropped too.
    const onAbort = (): void => {
      if (this.#ended || this.#aborted) return
      this.#aborted = true
      this.#wakeUp()
      if (!this.#stopped) this.#consumer?.aborted()
    }
    raw.once('aborted', onAbort)
    raw.once('close', onAbort)
    raw.on('error', onAbort)
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#stopped) return
    this.#received += chunk.length
    if (this.#received > this.#max) {
      this.#stopped = true
      if (this.#consumer !== null) this.#consumer.fail(tooLarge(this.#max, 'body'))
      else this.#wakeUp()
      return
    }
    if (this.#consumer !== null) this.#consumer.data(chunk)
    else {
      this.#held.push(chunk)
      this.#wakeUp()
    }
  }

  #wakeUp (): void {
    const wake = this.#wake
    this.#wake = null
    wake?.()
  }

  // Waits for the front of the body to hold a whole WAV header (or to prove it is not one).
  async readWavHeader (): Promise<{ format: AudioFormat, dataOffset: number, dataBytes: number | null }> {
    while (true) {
      if (this.#stopped) throw tooLarge(this.#max, 'body')
      if (this.#held.length > 1) this.#held = [Buffer.concat(this.#held)]
      const front = this.#held[0] ?? Buffer.alloc(0)
      const header = parseWavHeader(front)
      if (header.status === 'ok') return header
      if (header.status === 'invalid') throw new ApiError('unsupported_format', header.message, { field: 'body' })
      if (this.#ended) throw new ApiError('unsupported_format', `The body ended after ${front.length} bytes, inside the WAV header`, { field: 'body' })
      if (this.#aborted) throw new ApiError('invalid_message', 'The upload was aborted')
      if (front.length > MAX_WAV_HEADER_BYTES) throw new ApiError('unsupported_format', `No WAV data chunk within the first ${MAX_WAV_HEADER_BYTES} bytes`, { field: 'body' })
      await new Promise<void>((resolve) => { this.#wake = resolve })
    }
  }

  // Drops the first `bytes` held bytes (the WAV header).
  skip (bytes: number): void {
    const all = Buffer.concat(this.#held)
    this.#held = [all.subarray(bytes)]
  }

  // From now on every chunk goes to the consumer, starting with what was held.
  consume (consumer: BodyConsumer): void {
    const held = this.#held
    this.#held = []
    for (const chunk of held) if (chunk.length > 0) consumer.data(chunk)
    this.#consumer = consumer
    if (this.#stopped) consumer.fail(tooLarge(this.#max, 'body'))
    else if (this.#aborted) consumer.aborted()
    else if (this.#ended) consumer.end()
  }

  // No more bytes are wanted (the stream ended early or the client left).
  stop (): void {
    this.#stopped = true
  }
}
