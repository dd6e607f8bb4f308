import { ApiError, type ErrorCode } from '../../schemas/error-codes.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import { ChunkReorderer } from './chunk-reorderer.ts'
import { EventLog, type LoggedEvent } from './event-log.ts'

// A paired session is one stream fed by separate HTTP requests: audio chunks POSTed by `seq`,
// events read through one or more EventSource connections that may drop and resume. This file
// is the transport-free part: putting chunks back in order, numbering events and keeping a
// bounded replay buffer and the lifecycle (the idle limit is the core's, as on every transport). index.ts
// maps it onto routes; the tests drive it with no server at all.

export interface PairedLimits {
  linger_ms: number
  replay_events: number
  reorder_window: number
  reorder_max_bytes: number
  max_readers: number
}

// `Last-Event-ID` as EventSource sends it on a reconnect, or `?last_event_id=` (validated by the
// route's schema) for clients that cannot set headers. The header wins: EventSource keeps the URL
// it was opened with (query included) and puts the newest id in the header.
export function parseLastEventId (header: string | undefined, query: number | undefined): number | null {
  if (header === undefined || header === '') return query ?? null
  const id = /^\d{1,15}$/.test(header.trim()) ? Number(header.trim()) : Number.NaN
  if (!Number.isSafeInteger(id)) throw new ApiError('invalid_message', `Last-Event-ID must be the id of an event this session sent (a non-negative integer), got "${header.slice(0, 40)}"`, { field: 'Last-Event-ID' })
  return id
}

// The session core's side, as the paired session needs it (the core's Stream satisfies it).
export interface PairedSink {
  pushAudio (bytes: Uint8Array): void
  finish (): Promise<unknown>
  abort (): void
  keepalive (): void
  finalize (): Promise<void>
  // Whether the server stopped taking this stream's audio until its work drains.
  readonly paused: boolean
  // False once the server ended the stream itself (a limit, shutdown): no more audio is taken.
  readonly accepting: boolean
  // Why the server ended it (the error code; shutting_down for a restart).
  readonly endedBy: ErrorCode | undefined
}

// A connected events reader, as the transport implements it (an SSE response).
export interface EventReader {
  send (logged: LoggedEvent): void
  close (): void
}

export interface ReaderHandle {
  detach (): void
}

export interface Timers {
  setTimeout (fn: () => void, ms: number): unknown
  clearTimeout (handle: unknown): void
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const timer = setTimeout(fn, ms)
    timer.unref() // a pending linger never keeps the process alive
    return timer
  },
  clearTimeout: (handle) => { clearTimeout(handle as NodeJS.Timeout) }
}

// open: audio accepted. stopping: stop asked the core to finish; results still come.
// ended: `end` was logged; the events URL still replays for `linger_ms`. closed: gone (404).
export type PairedState = 'open' | 'stopping' | 'ended' | 'closed'
export type CloseReason = 'ended' | 'aborted'

export interface AudioAck {
  accepted_seq: number
  bytes: number // audio bytes applied to the stream so far, in total
  buffered?: number[]
  duplicate?: boolean
}

export interface StopAck {
  accepted_seq: number
  discarded?: number[]
}

export interface PairedSessionOptions {
  id: string
  limits: PairedLimits
  // Called once when the session is gone for good: the owner forgets the id.
  onClose: (session: PairedSession, reason: CloseReason) => void
  timers?: Timers
}

export class PairedSession {
  readonly id: string
  readonly log: EventLog
  readonly #limits: PairedLimits
  readonly #chunks: ChunkReorderer
  readonly #timers: Timers
  readonly #onClose: PairedSessionOptions['onClose']
  readonly #readers = new Set<EventReader>()
  #sink: PairedSink | null = null
  #state: PairedState = 'open'
  #timer: unknown = null
  #appliedBytes = 0

  constructor (options: PairedSessionOptions) {
    this.id = options.id
    this.#limits = options.limits
    this.log = new EventLog(options.limits.replay_events)
    this.#chunks = new ChunkReorderer({ window: options.limits.reorder_window, maxBytes: options.limits.reorder_max_bytes })
    this.#timers = options.timers ?? realTimers
    this.#onClose = options.onClose
  }

  get state (): PairedState { return this.#state }
  get readers (): number { return this.#readers.size }
  get acceptedSeq (): number { return this.#chunks.acceptedSeq }

  // The core session is created with `record` as its emit, so it comes after the constructor.
  attach (sink: PairedSink): void {
    this.#sink = sink
  }

  // The session core's emit: number, keep, fan out. `end` closes every reader (nothing follows
  // it) and starts the linger period.
  record (event: StreamEvent): void {
    if (this.#state === 'closed') return
    // The server ended the stream itself (a limit): chunks held behind a gap never reached it.
    if (event.type === 'end' && this.#state === 'open') this.#reportHeldLost()
    const logged = this.log.append(event)
    for (const reader of this.#readers) reader.send(logged)
    if (event.type !== 'end') return
    this.#state = 'ended'
    for (const reader of [...this.#readers]) reader.close()
    this.#readers.clear()
    this.#clearTimer()
    if (this.#limits.linger_ms === 0) this.#close('ended')
    else this.#timer = this.#timers.setTimeout(() => { this.#close('ended') }, this.#limits.linger_ms)
  }

  // One audio POST. Retries of applied or held chunks are acknowledged and ignored, even after
  // stop, so a client can always retry safely.
  pushChunk (seq: number, bytes: Uint8Array): AudioAck {
    if (this.#state === 'closed') throw new ApiError('not_found', 'No such session')
    const ack = (extra: Partial<AudioAck> = {}): AudioAck => {
      const buffered = this.#chunks.heldSeqs
      return { accepted_seq: this.#chunks.acceptedSeq, bytes: this.#appliedBytes, ...(buffered.length > 0 ? { buffered } : {}), ...extra }
    }
    if (this.#state !== 'open') {
      if (seq <= this.#chunks.acceptedSeq) return ack({ duplicate: true })
      throw new ApiError('conflict', `The session was stopped after seq ${this.#chunks.acceptedSeq}; it accepts no more audio`, { field: 'seq' })
    }
    const sink = this.#requireSink()
    if (!sink.accepting) {
      if (seq <= this.#chunks.acceptedSeq) return ack({ duplicate: true })
      const why = `seq ${seq} was not taken: the server ended this stream after seq ${this.#chunks.acceptedSeq}`
      // A restart: the client should go on elsewhere (503, Retry-After), not treat it as its own mistake.
      if (sink.endedBy === 'shutting_down') throw new ApiError('shutting_down', `${why} because it is restarting; start a new session to send the rest`, { field: 'seq' })
      throw new ApiError('conflict', `${why} (${sink.endedBy ?? 'ended'}, see its events); it accepts no more audio`, { field: 'seq' })
    }
    // Any audio POST shows the client is there, an empty one included (a keepalive).
    sink.keepalive()
    // Flow control: while the stream holds too much work, a new chunk is not taken; the client
    // sends it again after Retry-After. A repeat is still acknowledged.
    if (sink.paused && seq > this.#chunks.acceptedSeq && !this.#chunks.heldSeqs.includes(seq)) {
      throw new ApiError('rate_limited', `Audio is arriving faster than the server works through it (limits.max_buffered_seconds): seq ${seq} was not taken; send it again after the Retry-After seconds`, { field: 'seq' })
    }
    const outcome = this.#chunks.offer(seq, bytes)
    if (outcome.status === 'duplicate') return ack({ duplicate: true })
    if (outcome.status === 'applied') {
      for (const chunk of outcome.ready) {
        sink.pushAudio(chunk)
        this.#appliedBytes += chunk.length
      }
    }
    return ack()
  }

  // The stop: whatever is contiguous was applied already; chunks held behind a gap cannot be
  // and are dropped (reported in the answer and as an error event, never silently). The core
  // then finalises open speech, sends every result, then `end`. Idempotent.
  stop (): StopAck {
    if (this.#state === 'closed') throw new ApiError('not_found', 'No such session')
    if (this.#state !== 'open') return { accepted_seq: this.#chunks.acceptedSeq }
    const discarded = this.#beginFinish()
    return { accepted_seq: this.#chunks.acceptedSeq, ...(discarded.length > 0 ? { discarded } : {}) }
  }

  // A new events reader, resuming after `lastEventId` (null: from the first event). Returns null
  // when there is nothing to send and nothing will come (the session ended and the reader has
  // its `end`): the transport answers 204, on which EventSource stops reconnecting. Otherwise
  // `open()` is called to start the response, the missed events are replayed into it at once,
  // and live events follow; on an ended session the reader is closed after the replay.
  openReader (lastEventId: number | null, open: () => EventReader): ReaderHandle | null {
    if (this.#state === 'closed') throw new ApiError('not_found', 'No such session')
    const after = lastEventId ?? 0
    if (after > this.log.lastId) {
      throw new ApiError('invalid_message', `Last-Event-ID ${after} is ahead of this session's last event (${this.log.lastId}); resume with an id this session sent`, { field: 'Last-Event-ID' })
    }
    if (this.#state === 'ended' && after >= this.log.lastId) return null
    if (this.#state !== 'ended' && this.#readers.size >= this.#limits.max_readers) {
      throw new ApiError('conflict', `This session already has ${this.#readers.size} events readers (the limit); close one first`)
    }
    const replay = this.log.since(after)
    const reader = open()
    if (replay.lost !== null) {
      // Stands in for the lost ids, so a later reconnect resumes after them.
      const [first, last] = replay.lost
      reader.send({
        id: last,
        event: { type: 'error', channel: null, code: 'events_lost', message: `Events ${first} to ${last} are no longer in the replay buffer (it keeps the last ${this.#limits.replay_events}) and were lost` }
      })
    }
    for (const logged of replay.events) reader.send(logged)
    if (this.#state === 'ended') {
      reader.close()
      return { detach: () => {} }
    }
    this.#readers.add(reader)
    return {
      detach: () => { this.#readers.delete(reader) }
    }
  }

  // The client says it is still there without sending audio: the core's idle clock starts over.
  keepalive (): void {
    if (this.#state === 'closed') throw new ApiError('not_found', 'No such session')
    if (this.#state === 'open') this.#requireSink().keepalive()
  }

  // The client's finalize: the core finalises the open utterances of the audio applied so far
  // and sends `finalized` on the events stream; the session stays open.
  finalize (): void {
    if (this.#state === 'closed') throw new ApiError('not_found', 'No such session')
    if (this.#state !== 'open') throw new ApiError('conflict', 'The session was stopped; there is nothing left to finalize')
    void this.#requireSink().finalize().catch(() => { this.abort() })
  }

  // Shutdown or a fault: free everything now, emit nothing more.
  abort (): void {
    if (this.#state === 'closed') return
    this.#sink?.abort()
    for (const reader of [...this.#readers]) reader.close()
    this.#readers.clear()
    this.#close('aborted')
  }

  #requireSink (): PairedSink {
    if (this.#sink === null) throw new Error('PairedSession used before attach()')
    return this.#sink
  }

  // Chunks held behind a gap cannot be applied once the stream ends: dropped, and said so.
  #reportHeldLost (): number[] {
    const discarded = this.#chunks.discardHeld()
    if (discarded.length > 0) {
      this.record({
        type: 'error',
        channel: null,
        code: 'audio_lost',
        message: `The stream ended with chunks ${discarded.join(', ')} held waiting for seq ${this.#chunks.acceptedSeq + 1}, which never arrived; they were discarded`
      })
    }
    return discarded
  }

  #beginFinish (): number[] {
    this.#state = 'stopping'
    this.#clearTimer()
    const discarded = this.#reportHeldLost()
    // finish() settles after `end` was emitted (see record) or the session was aborted.
    void this.#requireSink().finish().catch(() => { this.abort() })
    return discarded
  }

  #clearTimer (): void {
    if (this.#timer !== null) this.#timers.clearTimeout(this.#timer)
    this.#timer = null
  }

  #close (reason: CloseReason): void {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    this.#clearTimer()
    this.#onClose(this, reason)
  }
}

// The paired sessions by id. Ids come from the caller (SessionRegistry.newId: 128 random bits).
export class PairedSessions {
  readonly #sessions = new Map<string, PairedSession>()
  readonly #limits: PairedLimits
  readonly #timers: Timers | undefined
  readonly #onClose: ((session: PairedSession, reason: CloseReason) => void) | undefined

  constructor (options: { limits: PairedLimits, timers?: Timers, onClose?: (session: PairedSession, reason: CloseReason) => void }) {
    this.#limits = options.limits
    this.#timers = options.timers
    this.#onClose = options.onClose
  }

  create (id: string): PairedSession {
    const session = new PairedSession({
      id,
      limits: this.#limits,
      timers: this.#timers,
      onClose: (closed, reason) => {
        this.#sessions.delete(closed.id)
        this.#onClose?.(closed, reason)
      }
    })
    this.#sessions.set(id, session)
    return session
  }

  // Unknown, ended-by-idle and lingered-out ids alike: 404.
  get (id: string): PairedSession {
    const session = this.#sessions.get(id)
    if (session === undefined) throw new ApiError('not_found', 'No such session: the id is unknown, or the session ended and is no longer kept')
    return session
  }

  get size (): number { return this.#sessions.size }
}
