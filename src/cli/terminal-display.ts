import { styleText } from 'node:util'
import type { StreamEvent } from '../../schemas/events.ts'
import { refusalOf } from './cli-error.ts'
import { formatSummary, type RunSummary } from './run-stats.ts'

type Out = NodeJS.WritableStream & { isTTY?: boolean, columns?: number }

export interface DisplayOptions {
  json: boolean // stdout: one event per line, nothing else
  quiet: boolean // no progress line, no summary
  acks: boolean // the progress line shows the bytes acknowledged against those sent
  stdout: Out
  stderr: Out
}

// Redraws at most this often: a fast upload reports progress thousands of times a second.
const REDRAW_MS = 50
const CLEAR_LINE = '\r\x1b[2K'
// Fields of a segment that are not model output.
const EVENT_FIELDS = new Set(['type', 'channel', 'start_time', 'end_time', 'is_final'])

// What the user sees. stdout carries results (JSON lines with --json, readable lines
// otherwise); stderr carries the live status line (on a terminal only), warnings and, with
// --json, the summary, so `--json | jq` sees pure JSON.
export class TerminalDisplay {
  readonly #options: DisplayOptions
  readonly #live: boolean
  #status = ''
  #sent = 0
  #total: number | null = 0
  #sentBytes = 0
  #ackedBytes = 0
  #lastDraw = 0
  #interims = new Map<number, string>()

  constructor (options: DisplayOptions) {
    this.#options = options
    this.#live = !options.quiet && options.stderr.isTTY === true
  }

  event (event: StreamEvent): void {
    if (this.#options.json) {
      this.#print(this.#options.stdout, JSON.stringify(event))
    }
    // `started` is shown in the summary (the session id); an event type this CLI does not know
    // (a newer server) is passed through with --json and otherwise ignored.
    switch (event.type) {
      case 'segment':
        if (event.is_final === false) {
          this.#interims.set(event.channel, `ch${event.channel} ${span(event.start_time, event.end_time)} ${outputOf(event)}`)
          this.#draw(true)
          return
        }
        this.#interims.delete(event.channel)
        if (!this.#options.json) this.#print(this.#options.stdout, `ch${event.channel}  ${span(event.start_time, event.end_time)}  ${outputOf(event)}`)
        this.#draw(true)
        return
      case 'data':
        if (!this.#options.json) this.#print(this.#options.stdout, `${event.channel === null ? 'stream' : `ch${event.channel}`}  data  ${outputOf(event)}`)
        return
      case 'active':
        if (!this.#options.json) this.#print(this.#options.stdout, `ch${event.channel}  ${event.time.toFixed(2).padStart(7)} s  speech started`, 'dim')
        return
      case 'inactive':
        if (!this.#options.json) this.#print(this.#options.stdout, `ch${event.channel}  ${event.time.toFixed(2).padStart(7)} s  speech ended`, 'dim')
        return
      case 'error': {
        const where = event.channel === null ? 'stream' : `ch${event.channel}`
        const when = event.start_time !== undefined && event.end_time !== undefined ? ` ${span(event.start_time, event.end_time)}` : ''
        // A refusal is reported once, as the CLI's failure. With --json the event is already on
        // stdout; a human watching the terminal still wants to see it.
        if (refusalOf(event) !== null) return
        if (!this.#options.json || this.#live) this.#print(this.#options.stderr, `${where}${when}  error ${event.code}: ${event.message}`, 'yellow')
        return
      }
      case 'ack':
        if (typeof event.bytes === 'number') this.#ackedBytes = Math.max(this.#ackedBytes, event.bytes)
        this.#draw(false)
        return
      case 'shutdown':
        // Not a failure: what was taken is still answered, then `end`.
        this.#print(this.#options.stderr, 'the server is restarting: it takes no more audio on this stream; the results for the audio sent so far will follow', 'yellow')
        return
      case 'finalized': {
        // Never asked for by this CLI; shown should a server send one.
        const upTo = Array.isArray(event.seconds) && typeof event.seconds[0] === 'number' ? ` up to ${event.seconds[0].toFixed(2)} s` : ''
        if (!this.#options.json) this.#print(this.#options.stdout, `stream  finalized${upTo}`, 'dim')
        return
      }
      case 'end':
        this.#interims.clear()
        this.#draw(true)
    }
  }

  // totalSeconds null: a length not known yet (audio from a pipe), shown as the time sent only.
  progress (sentSeconds: number, totalSeconds: number | null, sentBytes: number): void {
    this.#sent = sentSeconds
    this.#total = totalSeconds
    this.#sentBytes = sentBytes
    this.#draw(totalSeconds !== null && sentSeconds >= totalSeconds)
  }

  summary (summary: RunSummary): void {
    this.#clear()
    if (this.#options.quiet) return
    this.#summaryOut.write(formatSummary(summary))
  }

  // The proof-of-delivery line, after the summary and with it; a mismatch is a failure and
  // always shown, on stderr, --quiet or not.
  delivery (line: string, ok: boolean): void {
    this.#clear()
    if (ok) {
      if (!this.#options.quiet) this.#summaryOut.write(`${line}\n`)
      return
    }
    this.#options.stderr.write(`${styleText('red', line, { stream: this.#options.stderr })}\n`)
  }

  get #summaryOut (): Out {
    return this.#options.json ? this.#options.stderr : this.#options.stdout
  }

  // A fatal error: one clear line on stderr.
  failure (message: string): void {
    this.#clear()
    this.#options.stderr.write(`${styleText('red', 'streamer-client:', { stream: this.#options.stderr })} ${message}\n`)
  }

  note (message: string): void {
    this.#print(this.#options.stderr, message, 'dim')
  }

  close (): void {
    this.#clear()
  }

  // A permanent line: the status line is taken down first and put back after.
  #print (stream: Out, line: string, style?: 'dim' | 'yellow'): void {
    const hadStatus = this.#status !== ''
    this.#clear()
    stream.write(`${style === undefined ? line : styleText(style, line, { stream })}\n`)
    if (hadStatus) this.#draw(true)
  }

  #draw (force: boolean): void {
    if (!this.#live) return
    const now = performance.now()
    if (!force && now - this.#lastDraw < REDRAW_MS) return
    this.#lastDraw = now
    const total = this.#total
    const percent = total === null ? 0 : total > 0 ? Math.floor(100 * this.#sent / total) : 100
    const sent = total === null
      ? `sent ${this.#sent.toFixed(1)} s`
      : `sent ${this.#sent.toFixed(1)}/${total.toFixed(1)} s ${String(percent).padStart(3)}%`
    const acked = this.#options.acks ? `, acked ${this.#ackedBytes}/${this.#sentBytes} bytes` : ''
    const parts = [`${sent}${acked}`, ...this.#interims.values()]
    const width = Math.max(20, (this.#options.stderr.columns ?? 80) - 1)
    let line = parts.join('  |  ')
    if (line.length > width) line = `${line.slice(0, width - 1)}…`
    this.#status = line
    this.#options.stderr.write(`${CLEAR_LINE}${styleText('cyan', line, { stream: this.#options.stderr })}`)
  }

  #clear (): void {
    if (this.#status === '') return
    this.#status = ''
    this.#options.stderr.write(CLEAR_LINE)
  }
}

const span = (start: number, end: number): string => `${start.toFixed(2).padStart(7)} - ${end.toFixed(2).padStart(7)} s`

// The model's output fields, flattened into the event: `count=36480`, or a `text` field as is.
function outputOf (event: Record<string, unknown>): string {
  if (typeof event.text === 'string') return JSON.stringify(event.text)
  return Object.entries(event)
    .filter(([key]) => !EVENT_FIELDS.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ')
}
