import type { AudioFormat } from '../../../schemas/audio-format.ts'
import type { EndEvent, StreamEvent } from '../../../schemas/events.ts'
import type { Mode, Transport as ServerTransport } from '../../../schemas/messages.ts'

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
  acks: boolean // ask for `ack` events (sent only when true, so an older server is not asked)
  insecure: boolean // TLS: accept a certificate that does not verify (self-signed)
  apiKey?: string | undefined // sent as Authorization: Bearer on every request (--api-key)
  audio: AsyncIterable<Uint8Array>
  onEvent: (event: StreamEvent) => void
  onUploadEnd: () => void // the stop was sent (end of body / stop message / stop request)
}

export type Transport = (request: StreamRequest) => Promise<EndEvent>

// The server's own words (its Transport union, metrics labels and logs), so that the CLI's
// summary and the server's metrics and logs of the same stream name it alike. In the order
// --help and errors list them.
export const TRANSPORTS = ['websocket', 'http', 'paired'] as const satisfies readonly ServerTransport[]
export type TransportName = typeof TRANSPORTS[number]

// The CLI's earlier names, still accepted so that existing scripts keep working; never printed.
export const TRANSPORT_ALIASES: ReadonlyMap<string, TransportName> = new Map([
  ['ws', 'websocket'],
  ['h2', 'http'],
  ['session', 'paired']
])

// A --transport value, alias or canonical, as its canonical name; undefined if it is neither.
// (A Map, not an object, so that names like `constructor` are not found on a prototype.)
export function transportNamed (name: string): TransportName | undefined {
  const canonical = TRANSPORT_ALIASES.get(name) ?? name
  return TRANSPORTS.find((transport) => transport === canonical)
}

// A route under the base URL, keeping any path prefix (a server behind a proxy at /speech/).
export function routeUrl (base: URL, path: string): URL {
  const url = new URL(base)
  url.pathname = base.pathname.replace(/\/+$/, '') + path
  url.search = ''
  url.hash = ''
  return url
}

// The Authorization header for an API key, or nothing (a server without keys needs none).
export function authHeaders (request: StreamRequest): Record<string, string> {
  return request.apiKey === undefined ? {} : { authorization: `Bearer ${request.apiKey}` }
}
