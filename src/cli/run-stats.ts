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
  firstResultSeconds: number | null // first audio sent -> first segment or data event
  endAfterUploadSeconds: number | null // upload ended (stop sent) -> `end` received
  wallSeconds: number // first audio sent -> `end` received
  realTimeFactor: number | null // wall time / audio time: below 1 is faster than real time
}

export class RunStats {
  #audioStart: number | null = null
  #uploadEnd: number | null = null
  #firstResult: number | null = null
  #end: number | null = null
  #interims = 0
  #errors = 0

  audioStarted (): void { this.#audioStart ??= performance.now() }
  uploadEnded (): void { this.#uploadEnd ??= performance.now() }

  event (event: StreamEvent): void {
    const now = performance.now()
    if (event.type === 'segment' || event.type === 'data') this.#firstResult ??= now
    if (event.type === 'segment') {
      if (event.is_final === false) this.#interims++
    } else if (event.type === 'error') {
      this.#errors++
    } else if (event.type === 'end') {
      this.#end = now
    }
  }

  summary (info: { transport: TransportName, mode: string, audioSeconds: number, format: string, end: EndEvent }): RunSummary {
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
    ['segments', `${total} ${summary.mode === 'segmented' ? 'final' : 'results'}${summary.mode === 'segmented' ? `, ${summary.interims} interim` : ''}${perChannel}`],
    ['errors', String(summary.errors)],
    ['first result', `${seconds(summary.firstResultSeconds, 'no result')}${summary.firstResultSeconds === null ? '' : ' after the first audio was sent'}`],
    ['end', `${seconds(summary.endAfterUploadSeconds, 'upload not ended')}${summary.endAfterUploadSeconds === null ? '' : ' after the upload ended'}`],
    ['real-time factor', summary.realTimeFactor === null
      ? 'n/a (no audio)'
      : `${summary.realTimeFactor.toFixed(3)} (${summary.wallSeconds.toFixed(2)} s for ${summary.audioSeconds.toFixed(2)} s of audio)`]
  ]
  return rows.map(([name, value]) => `${name.padEnd(17)} ${value}`).join('\n') + '\n'
}
