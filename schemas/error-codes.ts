// The one catalogue of error codes a client can see. Codes are stable snake_case strings:
// clients branch on them, so never rename one.
export const ERROR_CODES = {
  invalid_json: 'a text frame or body was not valid JSON',
  invalid_message: 'a control message did not match the protocol',
  unsupported_format: 'the declared audio format is not supported',
  audio_before_start: 'audio arrived before a start message',
  stop_without_start: 'a stop arrived with no stream running',
  frame_too_large: 'a frame or body exceeded the configured size',
  events_lost: 'a reconnecting reader asked for events older than the replay buffer keeps',
  audio_lost: 'chunks held behind a missing seq were discarded when the stream ended',
  truncated_audio: 'the stream ended inside a frame: trailing bytes that were not a whole frame',
  inference_failed: 'the model returned an error for one segment; the stream goes on',
  internal: 'a server fault (for example a crashed worker); the stream goes on where it can',
  not_ready: 'the server is starting or shutting down',
  not_found: 'no such session',
  conflict: 'the request conflicts with the session state',
  unsupported_media_type: 'the content type is not accepted',
  too_many_sessions: 'the server is at its session limit'
} as const
export type ErrorCode = keyof typeof ERROR_CODES

// An error that is safe to show a client: `message` names what was wrong and what is accepted.
export class ApiError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly field: string | undefined
  constructor (code: ErrorCode, message: string, options: { statusCode?: number, field?: string } = {}) {
    super(message)
    this.name = 'ApiError'
    this.code = code
    this.statusCode = options.statusCode ?? 400
    this.field = options.field
  }
}
