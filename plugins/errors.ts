import type { Socket } from 'node:net'
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { TSchema } from '@sinclair/typebox'
import { ApiError } from '../schemas/error-codes.ts'
import { compileValidator } from '../schemas/validation.ts'

// Every refusal of every route in the one documented body, {code, message, field}, with the
// catalogue's status: our own ApiErrors, schema violations (this is Fastify's validator, so the
// route schemas are the rules), and Fastify's and Node's own refusals (content types, bodies
// too large, unknown routes, malformed requests).

/** Any error a route ends with, as a catalogue error: Fastify's own by their code. */
export function toApiError (thrown: unknown, request: FastifyRequest | undefined): ApiError {
  if (thrown instanceof ApiError) return thrown
  const error = thrown as Partial<FastifyError>
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': {
      const limit = request?.routeOptions.bodyLimit
      return new ApiError('frame_too_large', `The request body is larger than this route's limit${limit === undefined ? '' : ` of ${limit} bytes`} (limits.max_frame_bytes for audio chunks); send smaller chunks`, { field: 'body' })
    }
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('invalid_json', `The body must be JSON: ${error.message ?? ''}`, { field: 'body' })
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('unsupported_media_type', `Content-Type '${String(request?.headers['content-type'])}' is not accepted by this route`, { field: 'content-type' })
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('malformed_request', 'Content-Length does not match the body', { field: 'content-length' })
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new ApiError('uri_too_long', 'A path segment of the URL is longer than the server accepts (100 characters)', { field: 'url' })
    case 'FST_ERR_BAD_URL':
      return new ApiError('malformed_request', 'The URL is not valid (bad percent-encoding?)', { field: 'url' })
  }
  const status = error.statusCode ?? 500
  if (status === 414) return new ApiError('uri_too_long', 'The URL is longer than the server accepts', { field: 'url' })
  if (status >= 400 && status < 500) return new ApiError('invalid_message', error.message ?? 'The request was refused')
  return new ApiError('internal', 'Internal server error')
}

function send (reply: FastifyReply, error: ApiError): FastifyReply {
  if (error.retryAfter !== undefined) reply.header('retry-after', String(error.retryAfter))
  return reply.code(error.statusCode).type('application/json; charset=utf-8').send(error.toResponse())
}

async function errors (app: FastifyInstance): Promise<void> {
  // The route schemas validate, through the one validator that names the field and what is
  // accepted (query strings are converted to the schema's numbers and booleans first).
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const validate = compileValidator(schema as TSchema, { query: httpPart === 'querystring' })
    return (data: unknown) => {
      try {
        return { value: validate(data) }
      } catch (error) {
        return { error: error as Error }
      }
    }
  })

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const refusal = toApiError(error, request)
    if (refusal.code === 'internal') request.log.error({ err: error }, 'request failed')
    else request.log.debug({ code: refusal.code, field: refusal.field }, 'request refused')
    return send(reply, refusal)
  })

  app.setNotFoundHandler((request, reply) => {
    return send(reply, new ApiError('not_found', `No route ${request.method} ${request.url.split('?')[0] ?? ''}: the API is described at /docs`))
  })
}

export default fp(errors, { name: 'errors' })

/**
 * Fastify options for refusals that happen before routing: a bad URL, and requests Node's HTTP
 * parser cannot read (bad framing, headers too large). Passed to Fastify() in app.ts.
 */
export const frameworkErrorOptions: Pick<FastifyServerOptions, 'frameworkErrors' | 'clientErrorHandler'> = {
  frameworkErrors: (error, request, reply) => {
    void send(reply, toApiError(error, request))
  },
  clientErrorHandler: (error: NodeJS.ErrnoException, socket: Socket) => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    const refusal = error.code === 'HPE_HEADER_OVERFLOW'
      ? new ApiError('headers_too_large', 'The request headers are larger than the server accepts (16 KiB)')
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ApiError('request_timeout', 'The request line and headers did not arrive in time')
        : new ApiError('malformed_request', `The HTTP request could not be parsed (${error.code ?? 'bad request'})`)
    if (socket.writable) {
      const body = JSON.stringify(refusal.toResponse())
      socket.write(`HTTP/1.1 ${refusal.statusCode} ${STATUS_CODES[refusal.statusCode] ?? ''}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`)
    }
    socket.destroy(error)
  }
}
