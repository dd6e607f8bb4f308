import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ApiError } from '../../schemas/error-codes.ts'
import type { Mode } from '../../schemas/messages.ts'
import type { StartRequest } from '../../src/core/start-request.ts'
import { keyIdOf } from '../auth/index.ts'
import { toApiError } from '../errors.ts'
import { openEventStream } from '../event-stream.ts'
import { BodyReader } from './body-reader.ts'
import { stopUpload } from './stop-upload.ts'
import { bodyKindOf, checkDeclaredLength, startBody, uploadQuerySchema, type UploadQuery } from './upload-request.ts'

// The HTTP streaming upload: `POST` (or `PUT`, curl -T's default) /api/v1/segmented and
// /api/v1/simple. The request body is the audio, read as it arrives; the response is
// text/event-stream and starts at once, so results flow while the upload goes on (full duplex
// on HTTP/2; HTTP/1.1 chunked uploads work too, Node answers before the body ends). The end
// of the body is the stop. Errors found before the stream starts are plain HTTP (400, 413,
// 415, 503 with {code, message, field}); after, an `error` event and the stream ends.

type UploadRequest = FastifyRequest<{ Querystring: UploadQuery }>

export default async function httpStreamTransport (app: FastifyInstance): Promise<void> {
  const streamer = app.streamer
  const limits = streamer.config.limits
  const querystring = uploadQuerySchema(limits.max_channels, limits.max_utterance_seconds)

  // The body is the audio stream: no parser may buffer it. Every content type reaches the
  // route, whose onRequest answers 415 itself (naming what is accepted). bodyLimit does not
  // apply to a stream handed through, so BodyReader counts bytes against limits.max_upload_bytes.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })

  for (const mode of ['segmented', 'simple'] as const) {
    app.route<{ Querystring: UploadQuery }>({
      method: ['POST', 'PUT'],
      url: `/api/v1/${mode}`,
      schema: { querystring },
      // A key or a token (for this mode), checked before the content type or any body byte.
      config: { auth: 'stream', authMode: mode },
      // Content type and declared length are refused before anything else is read.
      onRequest: async (request) => {
        bodyKindOf(request)
        checkDeclaredLength(request, limits.max_upload_bytes)
      },
      errorHandler: (error: FastifyError, request, reply) => { refuse(request, reply, toApiError(error, request)) },
      handler: async (request, reply) => {
        const kind = bodyKindOf(request)
        // A raw body's format is all in the query: a bad one is refused before capacity is.
        const rawStart = kind === 'raw' ? queryNamed(() => streamer.startParser.parse(startBody(request, null))) : null
        streamer.admit(request.ip, keyIdOf(request.auth))
        // In a cluster the limits count every instance's streams; the slot is held until it opens.
        const settle = await app.cluster?.admit(keyIdOf(request.auth))
        const body = new BodyReader(request.raw, limits.max_upload_bytes)
        try {
          let wavDataBytes: number | null = null
          let start: StartRequest
          if (rawStart === null) {
            // Wait for the header so a bad WAV is a plain 400, not an event after a 200.
            const header = await body.readWavHeader()
            start = streamer.startParser.parse(startBody(request, header.format))
            body.skip(header.dataOffset)
            wavDataBytes = header.dataBytes
          } else {
            start = rawStart
          }
          stream(request, reply, mode, start, body, wavDataBytes)
        } catch (error) {
          body.stop()
          throw error
        } finally {
          settle?.()
        }
        return reply
      }
    })
  }

  function stream (request: UploadRequest, reply: FastifyReply, mode: Mode, start: StartRequest, body: BodyReader, wavDataBytes: number | null): void {
    // Checked again before the 200 goes out (openStream checks too, in the same tick): waiting
    // for a WAV header may have let other sessions fill the server, or shutdown begin.
    streamer.admit(request.ip, keyIdOf(request.auth))
    const events = openEventStream(request, reply)
    let nextId = 0
    const stream = streamer.openStream({
      transport: 'http',
      mode,
      start,
      client: request.ip,
      key: keyIdOf(request.auth),
      sink: {
        send: (event) => { events.send(event, nextId++) },
        // Flow control: a paused request stops reading, and TCP (or HTTP/2's window) tells the client.
        pause: () => { request.raw.pause() },
        resume: () => { request.raw.resume() },
        outboundBytes: () => events.bufferedBytes(),
        // The server ended the stream (a limit, shutdown): the error event was the last; the
        // response ends and the rest of the upload is refused.
        close: () => {
          events.end()
          body.stop()
          stopUpload(request.raw, reply)
        }
      }
    })
    // The client went away (reset, disconnect, response closed): free the stream at once.
    // After a normal end the stream is already over and abort() does nothing.
    void events.done.then(() => {
      stream.abort()
      body.stop()
    })

    let audioLeft = wavDataBytes ?? Infinity // a WAV's trailing chunks (LIST...) are not audio
    body.consume({
      data: (chunk) => {
        if (audioLeft <= 0) return
        const audio = chunk.length > audioLeft ? chunk.subarray(0, audioLeft) : chunk
        audioLeft -= audio.length
        stream.pushAudio(audio)
      },
      end: () => {
        stream.finish().then(() => { events.end() }, (error: unknown) => {
          request.log.error({ err: error }, 'finishing the stream failed')
          stream.fail(toApiError(error, request))
        })
      },
      fail: (error) => { stream.fail(error) },
      aborted: () => {
        stream.abort()
        events.end()
      }
    })
  }
}

// For raw bodies the format comes from the query: a format field is named as the query
// parameter the client wrote (`channels`, not `format.channels`).
function queryNamed<T> (parse: () => T): T {
  try {
    return parse()
  } catch (error) {
    if (error instanceof ApiError && error.field?.startsWith('format.') === true) {
      const field = error.field.slice('format.'.length)
      throw new ApiError(error.code, error.message.replaceAll(`format.${field}`, field), { field })
    }
    if (error instanceof ApiError && error.field?.startsWith('vad.') === true) {
      const field = `vad_${error.field.slice('vad.'.length)}`
      throw new ApiError(error.code, error.message.replaceAll(error.field, field), { field })
    }
    throw error
  }
}

// A refusal before the stream started: the documented JSON body, then the client is asked to
// stop sending (an unread upload is not worth reading).
function refuse (request: FastifyRequest, reply: FastifyReply, error: ApiError): void {
  request.log.debug({ code: error.code, field: error.field }, 'upload refused')
  // HTTP/1.1: the rest of an unread upload cannot be skipped; HTTP/2 resets the stream instead.
  if (request.raw.httpVersionMajor < 2) reply.header('connection', 'close')
  if (error.retryAfter !== undefined) reply.header('retry-after', String(error.retryAfter))
  void reply.code(error.statusCode).type('application/json; charset=utf-8').send(error.toResponse())
  stopUpload(request.raw, reply)
}
