import type { ApiError } from '../../schemas/error-codes.ts'
import type { EndEvent, StreamEvent } from '../../schemas/events.ts'
import type { Mode, Transport } from '../../schemas/messages.ts'
import type { Session, SessionState } from './session.ts'

/** What a transport gives the core for one stream: how to reach its client. */
export interface StreamSink {
  /** Writes one event to the client, in order. */
  send: (event: StreamEvent) => void
  /**
   * The server ended the stream with `error` (already sent as the last event): close the
   * transport's side (WebSocket close code from the error catalogue, end the SSE response, ...).
   */
  close: (error: ApiError) => void
}

export interface StreamOptions {
  id: string
  transport: Transport
  session: Session
  sink: StreamSink
}

/**
 * One open stream as its transport holds it: the session plus the way back to the client. The
 * transport pushes audio, asks for the stop, and reports the client leaving; the server side
 * ending a stream (a limit, a fault, shutdown) goes through `fail`, the same for every transport.
 */
export class Stream {
  readonly id: string
  readonly transport: Transport
  readonly session: Session
  readonly openedAt = Date.now()
  readonly #sink: StreamSink

  constructor (options: StreamOptions) {
    this.id = options.id
    this.transport = options.transport
    this.session = options.session
    this.#sink = options.sink
  }

  get mode (): Mode { return this.session.mode }
  get state (): SessionState { return this.session.state }
  /** Settles once the stream ended or was aborted: its resources are free. */
  get closed (): Promise<SessionState> { return this.session.closed }

  /** Audio bytes as they arrived: any length, frames may be split across calls. */
  pushAudio (bytes: Uint8Array): void {
    this.session.pushAudio(bytes)
  }

  /** The client's stop: every result for the audio received, then `end`. */
  finish (): Promise<EndEvent> {
    return this.session.finish()
  }

  /** The client went away: queued work is cancelled and nothing more is sent. */
  abort (): void {
    this.session.abort()
  }

  /**
   * The server ends the stream: `error` is sent as the stream's last event, queued work is
   * cancelled, and the transport closes its side. Does nothing once the stream is over.
   */
  fail (error: ApiError): void {
    if (this.session.state === 'ended' || this.session.state === 'aborted') return
    this.session.failWith(error.toEvent())
    this.#sink.close(error)
  }
}
