import { Type, type Static } from '@sinclair/typebox'

/**
 * The one catalogue of error codes a client can see, on every transport. Codes are stable
 * snake_case strings: clients branch on them, so never rename one.
 *
 * - `status`: the HTTP status of a refusal with this code (absent: the code only ever arrives as
 *   an `error` event inside a running stream).
 * - `close`: the WebSocket close code the server closes with after this error (absent: the
 *   connection stays open).
 * - `ends_stream`: whether a running stream ends after this error event (false: it goes on).
 * - `retry_after`: for refusals a client should retry, the seconds it should wait (Retry-After).
 */
export interface ErrorSpec {
  readonly status?: number
  readonly close?: number
  readonly ends_stream: boolean
  readonly meaning: string
  /** Seconds a refused client should wait before retrying: sent as Retry-After. */
  readonly retry_after?: number
}

const CATALOGUE = {
  invalid_json: { status: 400, ends_stream: false, meaning: 'A text frame or request body was not valid JSON.' },
  invalid_message: { status: 400, ends_stream: false, meaning: 'A control message, query or request did not match the protocol; `field` names the part at fault.' },
  unsupported_format: { status: 400, ends_stream: false, meaning: 'The declared audio format is not supported (channels, sample rate, bit depth, encoding, or a bad WAV header).' },
  audio_before_start: { ends_stream: false, meaning: 'Audio arrived on a WebSocket before a start message; it is discarded until a start arrives.' },
  stop_without_start: { ends_stream: false, meaning: 'A stop arrived with no stream running.' },
  frame_too_large: { status: 413, close: 1009, ends_stream: true, meaning: 'A frame, chunk or upload exceeded the configured size (limits.max_frame_bytes, limits.max_upload_bytes). A WebSocket closes with 1009 and an HTTP upload ends; a refused paired chunk leaves the session open.' },
  upgrade_required: { status: 426, ends_stream: false, meaning: 'A plain HTTP request reached a WebSocket route: connect with a WebSocket (Upgrade: websocket), or use the HTTP upload with POST.' },
  rate_limited: { status: 429, ends_stream: false, retry_after: 1, meaning: 'Too much, too fast; wait Retry-After seconds. A paired chunk: the stream is sending audio faster than the server works through it (limits.max_buffered_seconds), so the chunk was not taken: send it again. A new session: its API key opened auth.sessions_per_minute_per_key sessions in the last minute. Any request: this address sent auth.max_failures requests with bad credentials within auth.failure_window_seconds.' },
  unauthorized: { status: 401, ends_stream: false, meaning: 'The server requires credentials (auth.api_keys is set) and the request had none, or they are not valid: a wrong API key, or a token that is malformed, forged, expired or issued by a key no longer accepted. Send Authorization: Bearer <key>, or a token from POST /api/v1/tokens as ?token= or as the WebSocket subprotocol pair ["token", <token>]. A WebSocket upgrade is refused with this status before any frame.' },
  forbidden: { status: 403, ends_stream: false, meaning: 'The credentials are valid but do not cover this request: a token scoped to another mode or to another paired session, or a token where only an API key is accepted (POST /api/v1/tokens, /metrics, /docs and the API descriptions, the session count of /api/v1/health).' },
  idle_timeout: { close: 1008, ends_stream: true, meaning: 'No audio and no keepalive for limits.idle_timeout_seconds: the results for the audio received were sent, then the stream ended.' },
  max_duration: { close: 1008, ends_stream: true, meaning: 'The stream carried limits.max_stream_seconds of audio: the results for that audio were sent, audio past the limit was not taken, and the stream ended.' },
  slow_consumer: { close: 1008, ends_stream: true, meaning: 'The client left more than limits.max_outbound_bytes of events unread and a final result could not be delivered: the stream ended.' },
  uri_too_long: { status: 414, ends_stream: false, meaning: 'The request URL (or one path parameter) is longer than the server accepts.' },
  unsupported_media_type: { status: 415, ends_stream: false, meaning: 'The Content-Type is not accepted by this route; the message lists what is.' },
  malformed_request: { status: 400, ends_stream: false, meaning: 'The HTTP request itself could not be parsed (bad request line, headers or framing).' },
  request_timeout: { status: 408, ends_stream: false, meaning: 'The request line and headers did not arrive in time.' },
  headers_too_large: { status: 431, ends_stream: false, meaning: 'The request headers are larger than the server accepts.' },
  not_found: { status: 404, ends_stream: false, meaning: 'No such route, or no such paired session (unknown id, expired, or ended and no longer kept).' },
  conflict: { status: 409, ends_stream: false, meaning: 'The request conflicts with the session state (a chunk too far ahead, audio after stop, too many readers).' },
  events_lost: { ends_stream: false, meaning: 'A reconnecting paired-session reader asked for events older than the replay buffer keeps.' },
  audio_lost: { ends_stream: false, meaning: 'Paired-session chunks held behind a missing seq were discarded when the stream ended.' },
  truncated_audio: { ends_stream: false, meaning: 'The stream ended inside a frame: the trailing bytes that were not a whole frame were discarded.' },
  inference_failed: { ends_stream: false, meaning: 'The model returned an error for one segment; the stream goes on.' },
  inference_timeout: { ends_stream: false, meaning: 'The model did not answer for one segment within model.timeout_seconds; its worker thread was replaced and the stream goes on.' },
  internal: { status: 500, close: 1011, ends_stream: false, meaning: 'A server fault (for example a crashed worker). Inside a stream it concerns one segment and the stream goes on; a fault of the transport itself ends the connection.' },
  not_ready: { status: 503, close: 1013, retry_after: 5, ends_stream: false, meaning: 'The server is starting, or every model thread is stuck, and takes no streams; retry shortly.' },
  shutting_down: { status: 503, close: 1012, retry_after: 5, ends_stream: true, meaning: 'The server is shutting down: new streams are refused, and a stream still open when the drain deadline (shutdown.drain_seconds) passes is ended.' },
  cluster_unavailable: { status: 503, close: 1013, retry_after: 2, ends_stream: false, meaning: 'This instance is in a cluster (cluster.redis_url) and cannot reach its Redis now, so it cannot serve paired sessions; retry shortly (another instance may answer).' },
  audio_retention_exceeded: { status: 410, close: 1011, ends_stream: true, meaning: 'The instance that ran this paired session stopped, and its audio was no longer all kept in Redis (cluster.audio_retention_chunks), so no other instance could rebuild it; start a new session.' },
  too_many_sessions: { status: 503, close: 1013, retry_after: 2, ends_stream: false, meaning: 'The server (limits.max_sessions), this client address (limits.max_sessions_per_ip) or this API key (limits.max_sessions_per_key) is at its limit of open sessions; retry shortly.' }
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof CATALOGUE
export const ERRORS: Readonly<Record<ErrorCode, ErrorSpec>> = CATALOGUE
export const ERROR_CODE_LIST = Object.keys(ERRORS) as ErrorCode[]

/** The `code` field of every error event and error body: the catalogue's codes, each documented. */
export const ErrorCodeSchema = Type.Union(
  ERROR_CODE_LIST.map((code) => Type.Literal(code, { description: ERRORS[code].meaning })),
  { $id: 'ErrorCode', description: 'Stable snake_case error code: see the error catalogue' }
)

/** The body of every HTTP refusal, on every route (Fastify's own refusals included). */
export const ErrorResponse = Type.Object({
  code: ErrorCodeSchema,
  message: Type.String({ description: 'What was wrong and what is accepted' }),
  field: Type.Optional(Type.String({ description: 'The field, header or query parameter at fault' }))
}, { $id: 'ErrorResponse', description: 'A refusal: a stable code, a message naming what was wrong and what is accepted, and the field at fault' })
export type ErrorResponse = Static<typeof ErrorResponse>

/** An error that is safe to show a client: `message` names what was wrong and what is accepted. */
export class ApiError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly field: string | undefined
  /** Seconds to wait before retrying (Retry-After): the catalogue's, unless this refusal knows better. */
  readonly retryAfter: number | undefined
  constructor (code: ErrorCode, message: string, options: { field?: string, retryAfter?: number } = {}) {
    super(message)
    this.name = 'ApiError'
    this.code = code
    this.statusCode = ERRORS[code].status ?? 500
    this.field = options.field
    this.retryAfter = options.retryAfter ?? ERRORS[code].retry_after
  }

  /** The error as an HTTP refusal body. */
  toResponse (): ErrorResponse {
    return { code: this.code, message: this.message, ...(this.field !== undefined ? { field: this.field } : {}) }
  }

  /** The error as a stream's `error` event (WebSocket text frame or SSE event). */
  toEvent (): { type: 'error', channel: null, code: ErrorCode, message: string } {
    return { type: 'error', channel: null, code: this.code, message: this.message }
  }
}

/** The WebSocket close code that follows an error with this code, if the connection closes. */
export function closeCodeOf (code: ErrorCode): number | undefined {
  return ERRORS[code].close
}

/** Seconds a client refused with this code should wait before retrying (Retry-After), if any. */
export function retryAfterOf (code: ErrorCode): number | undefined {
  return ERRORS[code].retry_after
}
