import { ApiError, type ErrorCode } from '../../schemas/error-codes.ts'
import type { LimitsConfig } from '../../schemas/config.ts'
import type { EndEvent, StreamEvent } from '../../schemas/events.ts'
import type { Mode, Transport } from '../../schemas/messages.ts'
import { bytesPerFrame } from '../audio/format-support.ts'
import type { Session, SessionState } from './session.ts'

/** What a transport gives the core for one stream: how to reach its client. */
export interface StreamSink {
  /** Writes one event to the client, in order. */
  send: (event: StreamEvent) => void
  /**
   * The server ended the stream: with `error` (already sent, the last event or just before
   * `end`), or, with none, drained for a restart (every result and `end` were sent). Close the
   * transport's side: WebSocket close code from the error catalogue (1012 after a drain), end
   * the SSE response, ...
   */
  close: (error: ApiError | undefined) => void
  /** Flow control: stop reading the client's audio (TCP backpressure reaches it) / read again. */
  pause?: () => void
  resume?: () => void
  /** Bytes of events written but not yet taken by the client (WebSocket bufferedAmount, SSE writableLength). */
  outboundBytes?: () => number
}

export interface StreamOptions {
  id: string
  transport: Transport
  session: Session
  sink: StreamSink
  limits: LimitsConfig
  client: string | undefined
  key?: string | undefined // the API key's id, for limits.max_sessions_per_key
  acks?: boolean // acknowledge audio as it is taken (ack events)
}

// Acknowledgements are sent at most this often while audio flows.
const ACK_INTERVAL_MS = 100

// While paused, how often the held work is looked at again (besides every result out).
const PRESSURE_POLL_MS = 20

/**
 * One open stream as its transport holds it: the session plus the way back to the client, and
 * the bounds every stream has whatever its transport: an idle limit, a duration limit, flow
 * control on the work held for it, and a bound on the events left unread. The transport pushes
 * audio, asks for the stop, and reports the client leaving; the server side ending a stream (a
 * limit, a fault, shutdown) goes through `end` (results first) or `fail` (at once).
 */
export class Stream {
  readonly id: string
  readonly transport: Transport
  readonly session: Session
  /** The client's address, for limits.max_sessions_per_ip. */
  readonly client: string | undefined
  /** The id of the API key it was opened with, for limits.max_sessions_per_key. */
  readonly key: string | undefined
  readonly openedAt = Date.now()
  readonly #sink: StreamSink
  readonly #limits: LimitsConfig
  readonly #maxBytes: number // audio bytes up to limits.max_stream_seconds
  #bytes = 0
  #idle: NodeJS.Timeout
  #pressure: NodeJS.Timeout | null = null
  #ending = false
  #endedBy: ErrorCode | undefined
  readonly #acks: boolean
  #ackTimer: NodeJS.Timeout | null = null
  #ackedBytes = -1

  constructor (options: StreamOptions) {
    this.id = options.id
    this.transport = options.transport
    this.session = options.session
    this.client = options.client
    this.key = options.key
    this.#sink = options.sink
    this.#limits = options.limits
    this.#acks = options.acks === true
    const format = options.session.format
    this.#maxBytes = Math.floor(options.limits.max_stream_seconds * format.sample_rate) * bytesPerFrame(format)
    this.#idle = setTimeout(() => { this.#onIdle() }, options.limits.idle_timeout_seconds * 1000)
    this.#idle.unref()
    void this.session.closed.then(() => { this.#stopTimers() })
    // While paused, every result out is a chance to resume at once: a fast model drains the
    // held work in a millisecond or two, and waiting for the next poll left the stream idle.
    // Same test as the poll (below half the bound), so this changes when a paused stream
    // resumes, never how much it may hold: what a flooder can queue for the model, and so the
    // model's fairness between streams, is as before.
    this.session.onReleased(() => { if (this.#pressure !== null) this.#checkPressure() })
  }

  get mode (): Mode { return this.session.mode }
  get state (): SessionState { return this.session.state }
  /** Settles once the stream ended or was aborted: its resources are free. */
  get closed (): Promise<SessionState> { return this.session.closed }
  /** Why the server ended the stream, once it did: the error code (`shutting_down` for a drain). */
  get endedBy (): ErrorCode | undefined { return this.#endedBy }
  /** Whether audio is still taken: false once the stream finishes or the server ended it. */
  get accepting (): boolean { return this.session.state === 'streaming' && !this.#ending }
  /** Whether the server has stopped reading this stream's audio until its work drains. */
  get paused (): boolean { return this.#pressure !== null }

  /** Audio bytes as they arrived: any length, frames may be split across calls. */
  pushAudio (bytes: Uint8Array): void {
    if (this.session.state !== 'streaming' || this.#ending) {
      // Past the duration limit, until `end` goes out, what still arrives is counted as not taken.
      if (this.#endedBy === 'max_duration' && this.session.state === 'streaming') this.session.notePastLimit(bytes.length)
      return
    }
    if (bytes.length > 0) this.#idle.refresh()
    const room = this.#maxBytes - this.#bytes
    const taken = bytes.length > room ? bytes.subarray(0, room) : bytes
    this.#bytes += taken.length
    this.session.pushAudio(taken)
    if (this.#acks && this.#ackTimer === null) {
      this.#ackTimer = setTimeout(() => {
        this.#ackTimer = null
        this.#sendAck()
      }, ACK_INTERVAL_MS)
      this.#ackTimer.unref()
    }
    if (taken.length < bytes.length) {
      this.session.notePastLimit(bytes.length - taken.length)
      this.end(new ApiError('max_duration', `The stream reached its limit of ${this.#limits.max_stream_seconds} s of audio (limits.max_stream_seconds): ${bytes.length - taken.length} byte(s) past it were not taken; start a new stream to go on`))
      return
    }
    if (this.#pressure === null && this.session.heldSeconds > this.#limits.max_buffered_seconds) this.#pause()
  }

  /** The client is still there (a keepalive): the idle clock starts over, no audio is added. */
  keepalive (): void {
    if (this.session.state === 'streaming') this.#idle.refresh()
  }

  /** Whether the work held is past half its bound: optional work (interim results) is skipped. */
  underPressure (): boolean {
    return this.session.heldSeconds > this.#limits.max_buffered_seconds / 2
  }

  /** Whether the client has left more events unread than limits.max_outbound_bytes. */
  outboundFull (): boolean {
    return (this.#sink.outboundBytes?.() ?? 0) > this.#limits.max_outbound_bytes
  }

  /**
   * The client's finalize: the open utterance on every channel ends at the audio received so
   * far, its final is sent, then a `finalized` event; the stream goes on.
   */
  async finalize (): Promise<void> {
    if (this.session.state !== 'streaming' || this.#ending) return
    this.#sendAck()
    await this.session.finalize()
  }

  /** The client's stop: every result for the audio received, then `end`. */
  finish (): Promise<EndEvent> {
    this.#stopTimers()
    this.#sendAck()
    return this.session.finish()
  }

  /** The client went away: queued work is cancelled and nothing more is sent. */
  abort (): void {
    this.#stopTimers()
    this.session.abort()
  }

  /**
   * The server ends the stream because of a limit: no more audio is taken, the results for the
   * audio received are sent, then `error`, then `end`, then the transport closes its side.
   */
  end (error: ApiError): void {
    if (this.#ending || this.session.state !== 'streaming') return
    this.#ending = true
    this.#endedBy = error.code
    this.#stopTimers()
    this.#sendAck()
    this.session.finish(error.toEvent()).then(() => { this.#sink.close(error) }, () => { this.#sink.close(error) })
  }

  /**
   * The server is restarting: the client is told (a `shutdown` event with the seconds left, so it
   * can start a new stream elsewhere), no more audio is taken, the results for the audio received
   * are sent, then `end`, then the transport closes its side. Settles once the stream is over.
   */
  drain (deadlineSeconds: number): Promise<unknown> {
    if (this.#ending || this.session.state !== 'streaming') return this.session.closed
    this.#ending = true
    this.#endedBy = 'shutting_down'
    this.#stopTimers()
    this.#sendAck()
    this.session.notify({ type: 'shutdown', channel: null, deadline_seconds: deadlineSeconds })
    this.session.finish().then(() => { this.#sink.close(undefined) }, () => { this.#sink.close(undefined) })
    return this.session.closed
  }

  /**
   * The server ends the stream at once: `error` is its last event, queued work is cancelled,
   * and the transport closes its side. Does nothing once the stream is over.
   */
  fail (error: ApiError): void {
    if (this.session.state === 'ended' || this.session.state === 'aborted') return
    this.#endedBy = error.code
    this.#stopTimers()
    this.session.failWith(error.toEvent())
    this.#sink.close(error)
  }

  // The total taken so far, once per change; the last one before `end` carries the total.
  #sendAck (): void {
    const bytes = this.session.bytesTaken
    if (!this.#acks || bytes === this.#ackedBytes || this.session.state !== 'streaming') return
    this.#ackedBytes = bytes
    this.session.notify({ type: 'ack', channel: null, bytes, seconds: this.session.secondsDecoded })
  }

  #onIdle (): void {
    // While paused the server is the one not reading: the client is not idle.
    if (this.paused) {
      this.#idle.refresh()
      return
    }
    const seconds = this.#limits.idle_timeout_seconds
    this.end(new ApiError('idle_timeout', `No audio and no keepalive for ${seconds} s (limits.idle_timeout_seconds): the stream was ended; send audio or a keepalive more often`))
  }

  #pause (): void {
    this.#sink.pause?.()
    // Looked at again whenever the session releases work (see the constructor) and, for work
    // released without a result (the VAD moving on), every PRESSURE_POLL_MS.
    this.#pressure = setInterval(() => { this.#checkPressure() }, PRESSURE_POLL_MS)
    this.#pressure.unref()
  }

  // Resumed at half the bound, so a stream at the edge is not paused and resumed every frame.
  #checkPressure (): void {
    if (this.session.heldSeconds > this.#limits.max_buffered_seconds / 2) return
    this.#stopPressure()
    this.#sink.resume?.()
  }

  #stopPressure (): void {
    if (this.#pressure !== null) clearInterval(this.#pressure)
    this.#pressure = null
  }

  #stopTimers (): void {
    clearTimeout(this.#idle)
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer)
    this.#ackTimer = null
    if (this.#pressure === null) return
    // A stream that ends while paused leaves its connection readable again (its close
    // handshake, the next stream's start).
    this.#stopPressure()
    this.#sink.resume?.()
  }
}
