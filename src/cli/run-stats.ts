import type { EndEvent, StreamEvent } from '../../schemas/events.ts'
import type { TransportName } from './transports/transport.ts'

// Wall-clock timings of one run, in milliseconds from performance.now(), and what they mean
// against the audio's own duration.
export interface RunSummary {
  transport: TransportName // canonical: an alias given on the command line is never reported
  mode: string
  audioSeconds: number
  format: string // e.g. "16000 Hz, 1 ch, s16"
  finals: number[] // final segments per channel (simple mode: every segment)
  interims: number
  errors: number
  errorCodes: ErrorCount[] // the error events by code, in the order each code first arrived
  sessionId: string | null // from `started` (null: an older server sent none)
  // With --acks: the audio bytes sent and the last `ack` (null: none arrived).
  acks: { sentBytes: number, ackedBytes: number | null } | null
  firstResultSeconds: number | null // first audio sent -> first segment or data event
  endAfterUploadSeconds: number | null // upload ended (stop sent) -> `end` received
  wallSeconds: number // first audio sent -> `end` received
  realTimeFactor: number | null // wall time / audio time: below 1 is faster than real time
}

// Error events of one code: how many, and the first one's message.
export interface ErrorCount {
  code: string
  count: number
  message: string
  segment: boolean // a failed inference: one segment lost, the stream went on
}

// Codes of an error event about one segment (the model failed it); with a channel, `internal`
// is one too (a crashed worker).
const SEGMENT_FAILURES = new Set(['inference_failed', 'inference_timeout'])

export class RunStats {
  #audioStart: number | null = null
  #uploadEnd: number | null = null
  #firstResult: number | null = null
  #end: number | null = null
  #interims = 0
  #errors = 0
  readonly #errorCodes = new Map<string, ErrorCount>()
  #sessionId: string | null = null
  #ackedBytes: number | null = null

  audioStarted (): void { this.#audioStart ??= performance.now() }
  get sessionId (): string | null { return this.#sessionId }
  get ackedBytes (): number | null { return this.#ackedBytes }
  uploadEnded (): void { this.#uploadEnd ??= performance.now() }

  event (event: StreamEvent): void {
    const now = performance.now()
    if (event.type === 'segment' || event.type === 'data') this.#firstResult ??= now
    if (event.type === 'segment') {
      if (event.is_final === false) this.#interims++
    } else if (event.type === 'error') {
      this.#errors++
      const code = String(event.code)
      const counted = this.#errorCodes.get(code)
      if (counted !== undefined) counted.count++
      else {
        const segment = SEGMENT_FAILURES.has(code) || (code === 'internal' && event.channel !== null)
        this.#errorCodes.set(code, { code, count: 1, message: String(event.message), segment })
      }
    } else if (event.type === 'started') {
      if (typeof event.session_id === 'string') this.#sessionId = event.session_id
    } else if (event.type === 'ack') {
      // Monotonic by the protocol; the largest is kept all the same.
      if (typeof event.bytes === 'number') this.#ackedBytes = Math.max(this.#ackedBytes ?? 0, event.bytes)
    } else if (event.type === 'end') {
      this.#end = now
    }
  }

  summary (info: { transport: TransportName, mode: string, audioSeconds: number, format: string, end: EndEvent, acks: { sentBytes: number } | null }): RunSummary {
    const start = this.#audioStart
    const since = (from: number | null, to: number | null): number | null => from === null || to === null ? null : (to - from) / 1000
    const wall = since(start, this.#end) ?? 0
    return {
      transport: info.transport,
      mode: info.mode,
      audioSeconds: info.audioSeconds,
      format: info.format,
      // The server's own count, per channel.
      finals: info.end.segments,
      interims: this.#interims,
      errors: this.#errors,
      errorCodes: [...this.#errorCodes.values()].map((counted) => ({ ...counted })),
      sessionId: this.#sessionId,
      acks: info.acks === null ? null : { sentBytes: info.acks.sentBytes, ackedBytes: this.#ackedBytes },
      firstResultSeconds: since(start, this.#firstResult),
      endAfterUploadSeconds: since(this.#uploadEnd, this.#end),
      wallSeconds: wall,
      realTimeFactor: info.audioSeconds > 0 ? wall / info.audioSeconds : null
    }
  }
}

const seconds = (value: number | null, what: string): string => value === null ? `none (${what})` : `${value.toFixed(3)} s`

export function formatSummary (summary: RunSummary): string {
  const total = summary.finals.reduce((a, b) => a + b, 0)
  const perChannel = summary.finals.length > 1 ? `  (${summary.finals.map((n, channel) => `ch${channel}: ${n}`).join(', ')})` : ''
  const rows: Array<[string, string]> = [
    ['audio', `${summary.audioSeconds.toFixed(2)} s (${summary.format}) over ${summary.transport}, ${summary.mode} mode`],
    // The started event's field name: the server's logs and traces know the stream by it.
    ...(summary.sessionId === null ? [] : [['session_id', summary.sessionId] as [string, string]]),
    ['segments', `${total} ${summary.mode === 'segmented' ? 'final' : 'results'}${summary.mode === 'segmented' ? `, ${summary.interims} interim` : ''}${perChannel}`],
    ['errors', describeErrors(summary)],
    ...(summary.acks === null ? [] : [['acked', describeAcks(summary.acks)] as [string, string]]),
    ['first result', `${seconds(summary.firstResultSeconds, 'no result')}${summary.firstResultSeconds === null ? '' : ' after the first audio was sent'}`],
    ['end', `${seconds(summary.endAfterUploadSeconds, 'upload not ended')}${summary.endAfterUploadSeconds === null ? '' : ' after the upload ended'}`],
    ['real-time factor', summary.realTimeFactor === null
      ? 'n/a (no audio)'
      : `${summary.realTimeFactor.toFixed(3)} (${summary.wallSeconds.toFixed(2)} s for ${summary.audioSeconds.toFixed(2)} s of audio)`]
  ]
  return rows.map(([name, value]) => `${name.padEnd(17)} ${value}`).join('\n') + '\n'
}

const plural = (count: number, one: string, many = `${one}s`): string => `${count} ${count === 1 ? one : many}`

// "0", or the count and what it was: failed segments first, with why, then the other codes.
function describeErrors (summary: RunSummary): string {
  if (summary.errors === 0) return '0'
  const failures = summary.errorCodes.filter((counted) => counted.segment)
  const others = summary.errorCodes.filter((counted) => !counted.segment)
  const parts: string[] = []
  if (failures.length > 0) {
    const failed = failures.reduce((sum, counted) => sum + counted.count, 0)
    // One code: its count is the segments'; several: each says its own.
    const reasons = failures.map((counted) => `${failures.length > 1 ? `${counted.count} ` : ''}${counted.code}: ${whySegmentFailed(counted)}`)
    parts.push(`${plural(failed, 'segment')} failed (${reasons.join('; ')})`)
  }
  if (others.length > 0) parts.push(others.map((counted) => `${counted.count} ${counted.code}`).join(', '))
  return `${summary.errors}: ${parts.join('; ')}`
}

// The dummy model says `dummy model failure (failure_rate 0.01)` (after the server's own
// "Inference failed: "): a newcomer running the default configuration should learn that the
// failure is made on purpose, and where it is set.
const DUMMY_FAILURE = /dummy model failure \(failure_rate ([\d.e+-]+)\)/
const DEFAULT_FAILURE_RATE = 0.01

function whySegmentFailed (counted: ErrorCount): string {
  const text = counted.message.replace(/^inference failed:\s*/i, '')
  const message = text.length > 120 ? `${text.slice(0, 119)}…` : text
  switch (counted.code) {
    case 'inference_failed': {
      const dummy = DUMMY_FAILURE.exec(counted.message)
      if (dummy === null) return `the model returned an error: ${message}`
      const rate = Number(dummy[1])
      const percent = Number((rate * 100).toPrecision(3))
      return `the model returned an error; the dummy model fails ${percent} % of calls${rate === DEFAULT_FAILURE_RATE ? ' by default' : ''}, see model.options.failure_rate`
    }
    case 'inference_timeout':
      // The server's words: "The model did not answer within 30 s (model.timeout_seconds)".
      if (message === '') return 'the model did not answer in time, see model.timeout_seconds'
      return `${message.charAt(0).toLowerCase()}${message.slice(1)}${message.includes('model.timeout_seconds') ? '' : ', see model.timeout_seconds'}`
    default:
      return `a server fault: ${message}`
  }
}

// Bytes acknowledged against sent; the lag must be 0 once `end` arrived.
function describeAcks (acks: { sentBytes: number, ackedBytes: number | null }): string {
  if (acks.ackedBytes === null) return `none of ${plural(acks.sentBytes, 'byte')} sent (the server sent no ack event: does it support "acks"?)`
  return `${acks.ackedBytes} of ${plural(acks.sentBytes, 'byte')} sent (lag ${plural(acks.sentBytes - acks.ackedBytes, 'byte')})`
}
