import { Type, type Static } from '@sinclair/typebox'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import { ApiError } from '../../schemas/error-codes.ts'
import { FinalizeMessage, KeepaliveMessage, StopMessage, streamStartWithLimit, TRACEPARENT_PATTERN, StreamStart, type VadSettings } from '../../schemas/messages.ts'
import { compileValidator, type Validator } from '../../schemas/validation.ts'
import { describeFormatProblem } from '../audio/format-support.ts'

/** A stream's start as the core takes it, whichever transport carried it. */
export interface StartRequest {
  format: AudioFormat
  interimResults: boolean
  traceId: string | undefined
  acks: boolean
  vad: VadSettings | undefined // the stream's own VAD settings, within the server's bounds
}

export type ParsedClientMessage =
  | { request: 'start', start: StartRequest }
  | { request: 'stop', disconnect: boolean }
  | { request: 'keepalive' }
  | { request: 'finalize' }

const TRACEPARENT = new RegExp(TRACEPARENT_PATTERN)

/** A W3C traceparent, whether from a start message's trace_id or an HTTP `traceparent` header. */
export const isTraceparent = (value: unknown): value is string => typeof value === 'string' && TRACEPARENT.test(value)

/**
 * Checks starts against the schemas (types, required and unknown fields, ranges) and then the
 * rules no schema states: the format combinations the decoder reads (format-support.ts).
 */
export class StartParser {
  readonly maxChannels: number
  /** The start fields, with the server's channel limit: transports derive their message schemas from it. */
  readonly schema: typeof StreamStart
  readonly #start: Validator<typeof StreamStart>
  readonly #message: Validator<ReturnType<typeof startMessageSchema>>
  readonly #stop = compileValidator(StopMessage)
  readonly #keepalive = compileValidator(KeepaliveMessage)
  readonly #finalize = compileValidator(FinalizeMessage)

  constructor (maxChannels: number, maxUtteranceSeconds: number) {
    this.maxChannels = maxChannels
    this.schema = streamStartWithLimit(maxChannels, maxUtteranceSeconds)
    this.#start = compileValidator(this.schema)
    this.#message = compileValidator(startMessageSchema(this.schema))
  }

  /** A start from a body that was not validated yet (an HTTP upload's query made into a start). */
  parse (body: unknown): StartRequest {
    return this.fromValidated(this.#start(body))
  }

  /** A start whose fields a route schema derived from `schema` has already validated. */
  fromValidated (start: Static<typeof StreamStart>): StartRequest {
    const problem = describeFormatProblem(start.format, this.maxChannels)
    if (problem !== null) throw new ApiError('unsupported_format', problem.message, { field: problem.field })
    return {
      format: start.format,
      interimResults: start.interim_results === true,
      traceId: start.trace_id ?? undefined,
      acks: start.acks === true,
      vad: start.vad
    }
  }

  /** A WebSocket text frame: the Rust original's {"request": "start" | "stop", ...}. */
  parseClientMessage (text: string): ParsedClientMessage {
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch (error) {
      throw new ApiError('invalid_json', `Text frames must be JSON control messages: ${(error as Error).message}`)
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new ApiError('invalid_message', 'A control message must be a JSON object with "request": "start", "stop", "keepalive" or "finalize"', { field: 'request' })
    }
    const request = (body as Record<string, unknown>).request
    if (request === 'start') {
      const { request: _request, ...start } = this.#message(body)
      return { request: 'start', start: this.fromValidated(start) }
    }
    if (request === 'stop') return { request: 'stop', disconnect: this.#stop(body).disconnect === true }
    if (request === 'keepalive') {
      this.#keepalive(body)
      return { request: 'keepalive' }
    }
    if (request === 'finalize') {
      this.#finalize(body)
      return { request: 'finalize' }
    }
    const hint = 'type' in body ? ' (this protocol names the message in "request", not "type")' : ''
    const got = request === undefined ? 'The message has no "request" field' : `Unknown request ${JSON.stringify(request).slice(0, 40)}`
    throw new ApiError('invalid_message', `${got}: accepted "start", "stop", "keepalive", "finalize"${hint}`, { field: 'request' })
  }
}

function startMessageSchema (start: typeof StreamStart) {
  return Type.Composite([Type.Object({ request: Type.Literal('start') }), start], { additionalProperties: false })
}
