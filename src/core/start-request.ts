import { Value } from '@sinclair/typebox/value'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import { ApiError } from '../../schemas/error-codes.ts'
import { StopMessage } from '../../schemas/messages.ts'
import { describeFormatProblem } from '../audio/format-support.ts'

export interface StartRequest {
  format: AudioFormat
  interimResults: boolean
  traceId: string | undefined
}

export type ParsedClientMessage =
  | { request: 'start', start: StartRequest }
  | { request: 'stop', disconnect: boolean }

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/

// A W3C traceparent, whether from a start message's trace_id or an HTTP `traceparent` header.
export const isTraceparent = (value: unknown): value is string => typeof value === 'string' && TRACEPARENT.test(value)

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

function describeType (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'string' ? `"${value.slice(0, 40)}"` : `${typeof value} ${JSON.stringify(value)}`
}

// Validates a start request from any transport (a WebSocket start message, HTTP query
// parameters already coerced, a paired session's create body). Every refusal names the field
// and what is accepted.
export function parseStartRequest (body: unknown, maxChannels: number): StartRequest {
  if (!isObject(body)) throw new ApiError('invalid_message', 'The start request must be a JSON object with a "format" object', { field: 'format' })
  const format = body.format
  if (!isObject(format)) {
    throw new ApiError('invalid_message', 'Missing "format": expected {"channels": 1, "sample_rate": 16000, "bit_depth": 16, "is_float": false}', { field: 'format' })
  }
  for (const field of ['channels', 'sample_rate', 'bit_depth'] as const) {
    const value = format[field]
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      throw new ApiError('unsupported_format', `format.${field} must be an integer, got ${value === undefined ? 'nothing' : describeType(value)}`, { field: `format.${field}` })
    }
  }
  if (format.is_float !== undefined && typeof format.is_float !== 'boolean') {
    throw new ApiError('unsupported_format', `format.is_float must be true or false, got ${describeType(format.is_float)}`, { field: 'format.is_float' })
  }
  if (format.encoding !== undefined && !['pcm', 'mulaw', 'alaw'].includes(format.encoding as string)) {
    throw new ApiError('unsupported_format', `format.encoding ${describeType(format.encoding)} is not supported: accepted "pcm", "mulaw", "alaw"`, { field: 'format.encoding' })
  }
  const unknown = Object.keys(format).filter((key) => !['channels', 'sample_rate', 'bit_depth', 'is_float', 'encoding'].includes(key))
  if (unknown.length > 0) {
    throw new ApiError('unsupported_format', `Unknown format field "${unknown[0]}": accepted channels, sample_rate, bit_depth, is_float, encoding`, { field: `format.${unknown[0]}` })
  }
  const parsed: AudioFormat = {
    channels: format.channels as number,
    sample_rate: format.sample_rate as number,
    bit_depth: format.bit_depth as number,
    is_float: (format.is_float as boolean | undefined) ?? false
  }
  if (format.encoding !== undefined) parsed.encoding = format.encoding as AudioFormat['encoding']
  const problem = describeFormatProblem(parsed, maxChannels)
  if (problem !== null) throw new ApiError('unsupported_format', problem.message, { field: problem.field })
  if (body.interim_results !== undefined && typeof body.interim_results !== 'boolean') {
    throw new ApiError('invalid_message', `interim_results must be true or false, got ${describeType(body.interim_results)}`, { field: 'interim_results' })
  }
  const traceId = body.trace_id
  if (traceId !== undefined && traceId !== null && !isTraceparent(traceId)) {
    throw new ApiError('invalid_message', 'trace_id must be a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>', { field: 'trace_id' })
  }
  return { format: parsed, interimResults: body.interim_results === true, traceId: typeof traceId === 'string' ? traceId : undefined }
}

// A WebSocket text frame: the Rust original's {"request": "start" | "stop", ...}.
export function parseClientMessage (text: string, maxChannels: number): ParsedClientMessage {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (error) {
    throw new ApiError('invalid_json', `Text frames must be JSON control messages: ${(error as Error).message}`)
  }
  if (!isObject(body)) throw new ApiError('invalid_message', 'A control message must be a JSON object with "request": "start" or "stop"', { field: 'request' })
  if (body.request === 'start') return { request: 'start', start: parseStartRequest(body, maxChannels) }
  if (body.request === 'stop') {
    if (!Value.Check(StopMessage, body)) throw new ApiError('invalid_message', 'stop accepts only {"request": "stop", "disconnect": true | false}', { field: 'disconnect' })
    return { request: 'stop', disconnect: body.disconnect === true }
  }
  throw new ApiError('invalid_message', `Unknown request ${describeType(body.request)}: accepted "start", "stop"`, { field: 'request' })
}
