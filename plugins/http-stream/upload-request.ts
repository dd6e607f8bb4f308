import type { FastifyRequest } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { FormatFields, type AudioFormat } from '../../schemas/audio-format.ts'
import { ApiError } from '../../schemas/error-codes.ts'
import { StreamOptionFields, vadSettingsSchema } from '../../schemas/messages.ts'
import { ERROR_CODE_KEYWORD } from '../../schemas/validation.ts'
import { isTraceparent } from '../../src/core/start-request.ts'
import { tooLarge } from './body-reader.ts'

// What an upload request declares before its body: the content type (raw PCM or WAV), the
// declared length, and the query, which is the start message's fields flattened.

export const WAV_TYPES = ['audio/wav', 'audio/wave', 'audio/x-wav', 'audio/vnd.wave']
export const RAW_TYPES = ['application/octet-stream']

export type BodyKind = 'raw' | 'wav'

const FORMAT_PARAMS = ['sample_rate', 'channels', 'bit_depth', 'is_float', 'encoding'] as const
const VAD_PARAMS = ['threshold', 'min_silence_ms', 'speech_pad_ms', 'max_utterance_seconds'] as const

/**
 * The upload's query: the format fields (all optional: a WAV body declares them itself) and the
 * stream options. No defaults here: a parameter that was not given must stay absent, so a WAV
 * header is not contradicted by a default.
 */
export function uploadQuerySchema (maxChannels: number, maxUtteranceSeconds: number) {
  const vad = vadSettingsSchema(maxUtteranceSeconds).properties
  return Type.Object({
    sample_rate: Type.Optional(FormatFields.sample_rate),
    channels: Type.Optional(Type.Integer({ ...FormatFields.channels, maximum: maxChannels })),
    bit_depth: Type.Optional(FormatFields.bit_depth),
    is_float: Type.Optional(Type.Boolean({ description: FormatFields.is_float.description, [ERROR_CODE_KEYWORD]: 'unsupported_format' })),
    encoding: Type.Optional(FormatFields.encoding),
    interim_results: Type.Optional(Type.Boolean({ description: StreamOptionFields.interim_results.description })),
    acks: Type.Optional(Type.Boolean({ description: StreamOptionFields.acks.description })),
    trace_id: StreamOptionFields.trace_id,
    // The start message's `vad` object, flattened: vad_threshold=0.6 is "vad": {"threshold": 0.6}.
    vad_threshold: vad.threshold,
    vad_min_silence_ms: vad.min_silence_ms,
    vad_speech_pad_ms: vad.speech_pad_ms,
    vad_max_utterance_seconds: vad.max_utterance_seconds
  }, { additionalProperties: false, $id: 'UploadQuery' })
}
export type UploadQuery = Static<ReturnType<typeof uploadQuerySchema>>

/** The body's kind from Content-Type (none: raw bytes, RFC 9110 8.3), or a 415 naming what is accepted. */
export function bodyKindOf (request: FastifyRequest): BodyKind {
  const type = (request.headers['content-type'] ?? 'application/octet-stream').split(';')[0]?.trim().toLowerCase() ?? ''
  if (WAV_TYPES.includes(type)) return 'wav'
  if (RAW_TYPES.includes(type)) return 'raw'
  throw new ApiError('unsupported_media_type', `Content-Type '${type}' is not accepted: send raw PCM as ${RAW_TYPES.join(', ')} (format in the query) or a WAV file as ${WAV_TYPES.join(', ')}`, { field: 'content-type' })
}

/** A declared length over the limit is refused before any body byte is read. */
export function checkDeclaredLength (request: FastifyRequest, maxUploadBytes: number): void {
  const length = request.headers['content-length']
  if (length !== undefined && Number(length) > maxUploadBytes) throw tooLarge(maxUploadBytes, 'content-length')
}

/**
 * The start request as the WebSocket's start message would carry it. For a WAV body the header
 * is the format, and a query format field that contradicts it is refused.
 */
export function startBody (request: FastifyRequest<{ Querystring: UploadQuery }>, wavFormat: AudioFormat | null): Record<string, unknown> {
  const query = request.query
  let format: Record<string, unknown> = {}
  for (const name of FORMAT_PARAMS) if (query[name] !== undefined) format[name] = query[name]
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
  if (query.interim_results !== undefined) body.interim_results = query.interim_results
  if (query.acks !== undefined) body.acks = query.acks
  const vad: Record<string, unknown> = {}
  for (const name of VAD_PARAMS) {
    const value = query[`vad_${name}`]
    if (value !== undefined) vad[name] = value
  }
  if (Object.keys(vad).length > 0) body.vad = vad
  const header = request.headers.traceparent
  const traceId = query.trace_id ?? (isTraceparent(header) ? header : undefined)
  if (traceId !== undefined) body.trace_id = traceId
  return body
}
