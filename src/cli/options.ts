import { parseArgs } from 'node:util'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import type { Mode } from '../../schemas/messages.ts'
import { CliError, EXIT_USAGE } from './cli-error.ts'
import { RAW_FORMAT_FLAGS, rawFormat, SAMPLE_FORMATS } from './raw-format.ts'
import { TRANSPORT_ALIASES, TRANSPORTS, transportNamed, type TransportName } from './transports/transport.ts'

// The file argument that means "read the audio from stdin".
export const STDIN = '-'

export interface CliOptions {
  file: string // a WAV file's path, or STDIN
  // Raw PCM on stdin: its format from --sample-rate, --channels and --sample-format (null: none
  // given; stdin must then be a WAV stream).
  rawFormat: AudioFormat | null
  transport: TransportName
  url: URL
  mode: Mode
  realTime: boolean
  interimResults: boolean
  acks: boolean
  chunkMs: number
  json: boolean
  quiet: boolean
  insecure: boolean
  apiKey: string | undefined // sent as Authorization: Bearer on every request and the WebSocket upgrade
}

export const USAGE = `Usage: streamer-client [options] <file.wav>
       streamer-client [options] -            (a WAV stream on stdin)
       streamer-client [options] --sample-rate <hz> --channels <n> --sample-format <format> -
                                              (raw PCM on stdin)

Streams a WAV file, or audio piped on stdin, to a streamer server and prints the results as
they arrive, e.g. sox -d -t raw -r 16000 -e signed -b 16 -c 1 - | streamer-client \\
  --sample-rate 16000 --channels 1 --sample-format s16le -

Options:
  -t, --transport <websocket|http|paired>
                                   websocket: WebSocket; http: HTTP/2 streaming upload answered
                                   with SSE; paired: paired session, POSTed chunks + SSE
                                   (default websocket; aliases: ${[...TRANSPORT_ALIASES.keys()].join(', ')})
  -u, --url <url>                  server base URL (default http://localhost:8080; https:// for TLS)
  -m, --mode <segmented|simple>    VAD-segmented utterances, or all audio through the model (default segmented)
  -r, --real-time                  pace the upload at the audio's own speed (default: as fast as accepted)
  -i, --interim-results            ask for interim results during speech (segmented mode)
  -a, --acks                       ask the server to acknowledge the audio it takes (ack events): the
                                   progress line and the summary show bytes acknowledged against sent
  -c, --chunk-ms <ms>              audio per chunk sent, in milliseconds (default 100)
  -j, --json                       print each event as one JSON line on stdout (summary goes to stderr)
  -q, --quiet                      no progress line and no summary
  -k, --insecure                   accept a TLS certificate that does not verify (self-signed)
      --sample-rate <hz>           raw PCM on stdin: samples per second per channel
      --channels <n>               raw PCM on stdin: interleaved channels
      --sample-format <format>     raw PCM on stdin, little-endian: ${Object.keys(SAMPLE_FORMATS).join(', ')}
                                   (all three are needed for raw PCM; a WAV, file or stdin, has a
                                   header that says its format, and takes none of them)
      --api-key <key>              the server's API key, sent as Authorization: Bearer <key> (default:
                                   the STREAMER_API_KEY environment variable; a server without
                                   auth.api_keys needs none)
  -h, --help                       show this help

Reads 8-bit (unsigned), 16/24/32-bit integer, 32/64-bit float, mu-law and A-law WAV files,
including WAVE_FORMAT_EXTENSIBLE headers and float files with a fact chunk. On stdin (\`-\`) a
stream that starts with a RIFF/WAVE header is read as a WAV (sox writes one with an unknown
length to a pipe: it is read to the end); anything else is raw PCM and needs the three flags.

The audio sent is hashed: at the end the CLI checks the server's count and SHA-256 of the audio
it took against it and prints "sha256 matches: all N bytes arrived" (or a MISMATCH line).

Exit codes: 0 the stream ended normally; 1 the server refused or broke off the stream (a
shutdown before all the audio was taken too); 2 bad arguments or an unreadable WAV file; 3 the
server could not be reached; 4 the audio the server took is not the audio sent (sha256
mismatch); 130 interrupted.
`

const MODES: readonly string[] = ['segmented', 'simple']

// Returns null for --help. The environment is read for STREAMER_API_KEY: a key on the command
// line is visible to every user of the machine (ps), one in the environment is not.
export function parseOptions (argv: string[], env: NodeJS.ProcessEnv = process.env): CliOptions | null {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        transport: { type: 'string', short: 't', default: 'websocket' },
        url: { type: 'string', short: 'u', default: 'http://localhost:8080' },
        mode: { type: 'string', short: 'm', default: 'segmented' },
        'real-time': { type: 'boolean', short: 'r', default: false },
        'interim-results': { type: 'boolean', short: 'i', default: false },
        acks: { type: 'boolean', short: 'a', default: false },
        'chunk-ms': { type: 'string', short: 'c', default: '100' },
        json: { type: 'boolean', short: 'j', default: false },
        quiet: { type: 'boolean', short: 'q', default: false },
        insecure: { type: 'boolean', short: 'k', default: false },
        'api-key': { type: 'string' },
        'sample-rate': { type: 'string' },
        channels: { type: 'string' },
        'sample-format': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false }
      }
    })
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${USAGE}`, EXIT_USAGE)
  }
  const { values, positionals } = parsed
  if (values.help) return null
  if (positionals.length !== 1) {
    throw new CliError(`${positionals.length === 0 ? 'No WAV file given (or - for stdin)' : `One WAV file at a time, got ${positionals.length}`}\n\n${USAGE}`, EXIT_USAGE)
  }
  const file = positionals[0] as string
  // Aliases are resolved here, so everything after (summary, errors) sees only canonical names.
  const transport = transportNamed(values.transport)
  if (transport === undefined) {
    throw new CliError(`--transport '${values.transport}' is not one of ${TRANSPORTS.join(', ')}`, EXIT_USAGE)
  }
  if (!MODES.includes(values.mode)) throw new CliError(`--mode '${values.mode}' is not one of ${MODES.join(', ')}`, EXIT_USAGE)
  const chunkMs = Number(values['chunk-ms'])
  if (!Number.isFinite(chunkMs) || chunkMs <= 0 || chunkMs > 60000) {
    throw new CliError(`--chunk-ms '${values['chunk-ms']}' must be a number of milliseconds above 0 (at most 60000)`, EXIT_USAGE)
  }
  const apiKey = values['api-key'] ?? (env.STREAMER_API_KEY === '' ? undefined : env.STREAMER_API_KEY)
  // A header value cannot hold these: fetch and http2 would throw a less helpful error later.
  if (apiKey !== undefined && (apiKey.trim() === '' || /[\r\n\0]/.test(apiKey))) {
    throw new CliError(`--api-key${values['api-key'] === undefined ? ' (from STREAMER_API_KEY)' : ''} must be a non-empty key on one line`, EXIT_USAGE)
  }
  return {
    file,
    rawFormat: parseRawFormat(file, values['sample-rate'], values.channels, values['sample-format']),
    transport,
    url: parseUrl(values.url),
    mode: values.mode as Mode,
    realTime: values['real-time'],
    interimResults: values['interim-results'],
    acks: values.acks,
    chunkMs,
    json: values.json,
    quiet: values.quiet,
    insecure: values.insecure,
    apiKey
  }
}

// The raw-format flags: all three with `-`, or none at all.
function parseRawFormat (file: string, sampleRate: string | undefined, channels: string | undefined, sampleFormat: string | undefined): AudioFormat | null {
  const given = [sampleRate, channels, sampleFormat]
  const named = RAW_FORMAT_FLAGS.filter((_, i) => given[i] !== undefined)
  if (named.length === 0) return null
  if (file !== STDIN) {
    throw new CliError(`${named.join(', ')} describe${named.length === 1 ? 's' : ''} raw PCM on stdin (\`-\`); ${file} is a WAV file, whose header gives its format: drop ${named.length === 1 ? 'it' : 'them'}\n\n${USAGE}`, EXIT_USAGE)
  }
  const missing = RAW_FORMAT_FLAGS.filter((_, i) => given[i] === undefined)
  if (missing.length > 0) {
    throw new CliError(`raw PCM on stdin needs ${RAW_FORMAT_FLAGS.join(', ')}: ${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} missing\n\n${USAGE}`, EXIT_USAGE)
  }
  const rate = positiveInteger('--sample-rate', sampleRate as string)
  const count = positiveInteger('--channels', channels as string)
  const format = rawFormat(rate, count, sampleFormat as string)
  if (format === null) throw new CliError(`--sample-format '${sampleFormat}' is not one of ${Object.keys(SAMPLE_FORMATS).join(', ')}`, EXIT_USAGE)
  // The range (8000..192000 Hz, up to limits.max_channels) is the server's to state.
  return format
}

function positiveInteger (flag: string, text: string): number {
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value <= 0) throw new CliError(`${flag} '${text}' must be a whole number above 0`, EXIT_USAGE)
  return value
}

// ws(s):// is accepted too and means the same server.
function parseUrl (text: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new CliError(`--url '${text}' is not a URL: expected e.g. http://localhost:8080`, EXIT_USAGE)
  }
  const protocols: Record<string, string> = { 'http:': 'http:', 'https:': 'https:', 'ws:': 'http:', 'wss:': 'https:' }
  const protocol = protocols[url.protocol]
  if (protocol === undefined) throw new CliError(`--url '${text}' must be http://, https://, ws:// or wss://`, EXIT_USAGE)
  // Setting URL.protocol between special and non-special schemes is refused; build anew.
  return new URL(`${protocol}//${url.host}${url.pathname}`)
}
