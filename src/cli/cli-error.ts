import type { StreamEvent } from '../../schemas/events.ts'

// Exit codes, documented in the README: scripts branch on them.
export const EXIT_OK = 0
export const EXIT_REFUSED = 1 // the server refused the stream or ended it with an error
export const EXIT_USAGE = 2 // bad arguments or an unreadable WAV file
export const EXIT_UNREACHABLE = 3 // no connection to the server
export const EXIT_MISMATCH = 4 // the stream ended, but the audio the server took is not the audio sent (sha256)
export const EXIT_INTERRUPTED = 130 // a second Ctrl-C (128 + SIGINT)

// An error the CLI reports as one clear line and an exit code, never as a stack trace.
export class CliError extends Error {
  readonly exitCode: number
  constructor (message: string, exitCode: number = EXIT_REFUSED) {
    super(message)
    this.name = 'CliError'
    this.exitCode = exitCode
  }
}

// Codes of stream-level errors after which the stream still reaches `end`.
const NON_FATAL_STREAM_ERRORS = new Set(['truncated_audio'])

// A failed inference names its channel and the stream goes on; an error about the whole
// stream (channel null) is a refusal: the server will not send `end` for this stream.
export function refusalOf (event: StreamEvent): CliError | null {
  if (event.type !== 'error' || event.channel !== null || NON_FATAL_STREAM_ERRORS.has(event.code)) return null
  return new CliError(`The server refused the stream: ${event.code}: ${event.message}`)
}

// Connection failures (refused, DNS, reset, TLS) as one line naming the address.
export function unreachable (url: URL | string, error: unknown): CliError {
  const cause = causeOf(error)
  // A self-signed test server is the usual reason; say how to accept it.
  const hint = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(cause) ? ' (--insecure accepts a certificate that does not verify)' : ''
  return new CliError(`Cannot reach the server at ${String(url)}: ${cause}${hint}`, EXIT_UNREACHABLE)
}

function causeOf (error: unknown): string {
  // fetch and http2 wrap the socket error as `cause`; AggregateError (IPv4 + IPv6 attempts)
  // lists several. The innermost error names the real problem (ECONNREFUSED, ENOTFOUND...).
  let current: unknown = error
  while (current instanceof Error && current.cause instanceof Error) current = current.cause
  if (current instanceof AggregateError && current.errors.length > 0) current = current.errors[0]
  if (current instanceof Error) {
    const code = (current as NodeJS.ErrnoException).code
    return code !== undefined && !current.message.includes(code) ? `${code} ${current.message}` : current.message
  }
  return String(current)
}
