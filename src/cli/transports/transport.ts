import type { AudioFormat } from '../../../schemas/audio-format.ts'
import type { EndEvent, StreamEvent } from '../../../schemas/events.ts'
import type { Mode } from '../../../schemas/messages.ts'

// What every transport does with one stream: declare the format, send the audio as the
// iterator yields it (already paced), hand each event over as it arrives, end the upload,
// and resolve with the `end` event. A refusal, a dropped connection or a server that cannot
// be reached rejects with a CliError. Every socket, session and request is closed before the
// promise settles, so the process can exit.
export interface StreamRequest {
  base: URL // the server, e.g. http://localhost:8080 (a path prefix is kept)
  mode: Mode
  format: AudioFormat
  interimResults: boolean
  insecure: boolean // TLS: accept a certificate that does not verify (self-signed)
  audio: AsyncIterable<Uint8Array>
  onEvent: (event: StreamEvent) => void
  onUploadEnd: () => void // the stop was sent (end of body / stop message / stop request)
}

export type Transport = (request: StreamRequest) => Promise<EndEvent>

export const TRANSPORTS = ['ws', 'h2', 'session'] as const
export type TransportName = typeof TRANSPORTS[number]

// A route under the base URL, keeping any path prefix (a server behind a proxy at /speech/).
export function routeUrl (base: URL, path: string): URL {
  const url = new URL(base)
  url.pathname = base.pathname.replace(/\/+$/, '') + path
  url.search = ''
  url.hash = ''
  return url
}
