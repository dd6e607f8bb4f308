import type { StreamEvent } from '../../schemas/events.ts'

// After a failover the new owner replays the session's audio into a fresh pipeline, and must
// not send again what the previous owner already published. Segmentation is deterministic, but
// not all of the event stream is: how many interim results and acks came out depended on timing
// (an interim is skipped while another is in flight, acks go out at most every ~100 ms), and a
// failing model may fail other inferences the second time. So ids cannot be matched one to one;
// an event is recognised as published by what it is about:
//
// - Results of a channel come out in audio order (core/ordered-events.ts). A final result (a
//   final segment, or the error of a failed final inference) was published if it starts before
//   the end of the last final published on its channel: it is that utterance or an earlier one,
//   whichever way its inference went.
// - Speech start/end (active, inactive): at or before the last one of its type published on its
//   channel, within a VAD frame.
// - An interim result: its audio ends at or before the channel's horizon, the latest audio time
//   any published event of the channel reached.
// - An ack: its byte count is at or below the last published ack's.
// - Events with no audio time (started, finalized, shutdown, data, errors such as audio_lost):
//   the k-th of its kind (type, channel, code) was published if k of that kind were. The
//   published entries carry their kind's count (`k`), so this holds after the events stream was
//   trimmed to paired.replay_events, as long as the last one of that kind is still kept.
//
// Everything not recognised is new and gets the next id after the last published one.

const FRAME_SECONDS = 0.05 // a little over one 32 ms VAD frame

export interface PublishedEntry { event: StreamEvent, kindCount: number | undefined }

interface ChannelMarks {
  finalEnd: number // end of the last published final result
  horizon: number // latest audio time of any published event
  active: number
  inactive: number
}

type Timed = { start: number, end: number, final: boolean }

// The audio span of a result (segment, or error of an inference), if it has one.
function resultSpan (event: StreamEvent): Timed | null {
  if (event.type !== 'segment' && event.type !== 'error') return null
  if (typeof event.start_time !== 'number' || typeof event.end_time !== 'number') return null
  return { start: event.start_time, end: event.end_time, final: event.is_final !== false }
}

export function kindOf (event: StreamEvent): string {
  return `${event.type}:${String(event.channel)}:${event.type === 'error' ? event.code : ''}`
}

export class ReplayFilter {
  readonly #channels = new Map<number, ChannelMarks>()
  readonly #published = new Map<string, number>() // kind -> how many were published
  readonly #seen = new Map<string, number>() // kind -> how many the new pipeline made
  #ackBytes = -1

  constructor (published: PublishedEntry[]) {
    const counted = new Map<string, number>()
    for (const { event, kindCount } of published) {
      const kind = kindOf(event)
      const count = kindCount ?? (counted.get(kind) ?? 0) + 1
      counted.set(kind, count)
      this.#published.set(kind, Math.max(this.#published.get(kind) ?? 0, count))
      if (event.type === 'ack') this.#ackBytes = Math.max(this.#ackBytes, event.bytes)
      if (typeof event.channel !== 'number') continue
      const marks = this.#marks(event.channel)
      const span = resultSpan(event)
      if (span !== null) {
        if (span.final) marks.finalEnd = Math.max(marks.finalEnd, span.end)
        marks.horizon = Math.max(marks.horizon, span.end)
      } else if (event.type === 'active' || event.type === 'inactive') {
        marks[event.type] = Math.max(marks[event.type], event.time)
        marks.horizon = Math.max(marks.horizon, event.time)
      }
    }
  }

  #marks (channel: number): ChannelMarks {
    let marks = this.#channels.get(channel)
    if (marks === undefined) {
      marks = { finalEnd: -Infinity, horizon: -Infinity, active: -Infinity, inactive: -Infinity }
      this.#channels.set(channel, marks)
    }
    return marks
  }

  // Whether the previous owner already published this event (call once per event, in order).
  published (event: StreamEvent): boolean {
    const kind = kindOf(event)
    const count = (this.#seen.get(kind) ?? 0) + 1
    this.#seen.set(kind, count)
    if (event.type === 'end') return false
    if (event.type === 'ack') return event.bytes <= this.#ackBytes
    const marks = typeof event.channel === 'number' ? this.#channels.get(event.channel) : undefined
    const span = resultSpan(event)
    if (span !== null) {
      if (marks === undefined) return false
      return span.final ? span.start < marks.finalEnd : span.end <= marks.horizon
    }
    if (event.type === 'active' || event.type === 'inactive') {
      return marks !== undefined && event.time <= marks[event.type] + FRAME_SECONDS
    }
    return count <= (this.#published.get(kind) ?? 0)
  }

  // The count of its kind to store with a new event (see `k` above).
  countOf (event: StreamEvent): number {
    return this.#seen.get(kindOf(event)) ?? 0
  }
}
