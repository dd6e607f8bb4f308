import { createHash, type Hash } from 'node:crypto'
import { MODEL_SAMPLE_RATE, type AudioFormat } from '../../schemas/audio-format.ts'
import type { EndEvent, ErrorEvent, StreamEvent } from '../../schemas/events.ts'
import type { Mode } from '../../schemas/messages.ts'
import { bytesPerFrame } from '../audio/format-support.ts'
import { PcmDecoder } from '../audio/pcm-decoder.ts'
import { StreamingResampler } from '../audio/resampler.ts'
import type { ChannelRunner } from './channel-runner.ts'
import { SegmentedRunner } from './segmented-runner.ts'
import type { SessionServices } from './services.ts'
import { SimpleRunner } from './simple-runner.ts'

export interface SessionOptions {
  mode: Mode
  format: AudioFormat // already validated (see start-request.ts)
  interimResults: boolean
  services: SessionServices
  emit: (event: StreamEvent) => void
  onFault?: (error: unknown) => void
  /**
   * Whether the client has left too many events unread (see limits.max_outbound_bytes): then
   * interim segments are dropped (counted in `end`), and a final calls `onOverflow` instead of
   * being sent, so the stream can end with `slow_consumer`.
   */
  outboundFull?: () => boolean
  onOverflow?: () => void
  /** Whether the stream holds so much work that optional work (interim results) is skipped. */
  underPressure?: () => boolean
}

export type SessionState = 'streaming' | 'finishing' | 'ended' | 'aborted'

// One stream, fed by any transport: bytes in, events out. Decoding and resampling happen
// here on the caller's thread (cheap); VAD and the model run in worker pools behind the
// runners. The session never knows which transport feeds it.
export class Session {
  readonly mode: Mode
  readonly format: AudioFormat
  readonly #decoder: PcmDecoder
  readonly #resamplers: StreamingResampler[]
  readonly #runners: ChannelRunner[]
  readonly #abort = new AbortController()
  readonly #emit: (event: StreamEvent) => void
  readonly #services: SessionServices
  readonly #segments: number[]
  readonly #interims: number[]
  readonly #interimsDropped: number[]
  readonly #outboundFull: (() => boolean) | undefined
  readonly #onOverflow: (() => void) | undefined
  #errors = 0
  // Proof of delivery: exactly the bytes taken, counted and hashed in order.
  readonly #hash: Hash = createHash('sha256')
  #bytesTaken = 0
  #bytesPastLimit = 0
  #state: SessionState = 'streaming'
  #finished: Promise<EndEvent> | null = null
  #onReleased: (() => void) | undefined
  readonly #closed = Promise.withResolvers<SessionState>()
  // Settles once the session has ended or was aborted: its resources are free.
  readonly closed: Promise<SessionState> = this.#closed.promise

  constructor (options: SessionOptions) {
    this.mode = options.mode
    this.format = options.format
    this.#services = options.services
    this.#emit = options.emit
    const channels = options.format.channels
    // The decoder's arrays are reused from push to push: whoever gets them copies them at once.
    // The resampler does; at the model's rate it hands the decoder's arrays on as they are, and
    // both runners copy them in push (the segmented runner into its AudioStore, the simple runner
    // into its queue). A new array per 20 ms push was ~9 % of the main thread at 300 streams.
    this.#decoder = new PcmDecoder(options.format, { reuseOutput: true })
    this.#resamplers = Array.from({ length: channels }, () => new StreamingResampler(options.format.sample_rate, MODEL_SAMPLE_RATE, { reuseOutput: true }))
    this.#segments = new Array<number>(channels).fill(0)
    this.#interims = new Array<number>(channels).fill(0)
    this.#interimsDropped = new Array<number>(channels).fill(0)
    this.#outboundFull = options.outboundFull
    this.#onOverflow = options.onOverflow
    const Runner = options.mode === 'segmented' ? SegmentedRunner : SimpleRunner
    this.#runners = Array.from({ length: channels }, (_, channel) => new Runner({
      channel,
      services: options.services,
      interimResults: options.interimResults,
      emit: (event) => {
        this.#send(event)
        // A result out is work released (an inference ended): flow control may look again.
        this.#onReleased?.()
      },
      signal: this.#abort.signal,
      onFault: options.onFault,
      underPressure: options.underPressure
    }))
  }

  get state (): SessionState { return this.#state }

  /** Audio bytes taken so far. */
  get bytesTaken (): number { return this.#bytesTaken }

  /** Seconds of audio decoded so far, per channel (every channel has the same). */
  get secondsDecoded (): number[] {
    return new Array<number>(this.format.channels).fill(this.#decoder.framesDecoded / this.format.sample_rate)
  }

  /** Bytes the client sent past limits.max_stream_seconds, not taken: reported in `end`. */
  notePastLimit (bytes: number): void {
    this.#bytesPastLimit += bytes
  }

  /** Seconds of audio received that the pipeline still holds (not yet through the VAD and the model), on the busiest channel. */
  get heldSeconds (): number {
    let held = 0
    for (const runner of this.#runners) held = Math.max(held, runner.heldSamples)
    return held / MODEL_SAMPLE_RATE
  }

  // Audio bytes as they arrived: any length, frames may be split across calls.
  pushAudio (bytes: Uint8Array): void {
    if (this.#state !== 'streaming') return
    this.#hash.update(bytes)
    this.#bytesTaken += bytes.length
    this.#services.observer?.received?.(bytes.length)
    const started = performance.now()
    const channels = this.#decoder.push(bytes)
    const frames = channels[0]?.length ?? 0
    if (frames === 0) return
    const resampled: Float32Array[] = []
    for (let channel = 0; channel < channels.length; channel++) resampled.push((this.#resamplers[channel] as StreamingResampler).push(channels[channel] as Float32Array))
    this.#services.observer?.stage('decode', frames / this.format.sample_rate, (performance.now() - started) / 1000)
    for (let channel = 0; channel < resampled.length; channel++) (this.#runners[channel] as ChannelRunner).push(resampled[channel] as Float32Array)
  }

  /**
   * `listener` is told whenever work held for this stream may have been released (a result went
   * out), so flow control can resume reading at once rather than at its next look. One listener.
   */
  onReleased (listener: () => void): void {
    this.#onReleased = listener
  }

  // The stop: finalise open speech, send every result for the audio received, then `end`.
  // `reason`, when the server ends the stream (a limit), is sent just before `end`.
  finish (reason?: ErrorEvent): Promise<EndEvent> {
    this.#finished ??= this.#finish(reason)
    return this.#finished
  }

  async #finish (reason: ErrorEvent | undefined): Promise<EndEvent> {
    this.#state = 'finishing'
    const leftover = this.#decoder.pendingBytes
    if (leftover > 0) {
      // Never silently lost: the client is told exactly what could not be decoded.
      this.#send({
        type: 'error',
        channel: null,
        code: 'truncated_audio',
        message: `The stream ended with ${leftover} byte(s) that are not a whole frame (a frame is ${bytesPerFrame(this.format)} bytes: channels x bytes per sample); they were discarded`
      })
    }
    this.#resamplers.forEach((resampler, channel) => { (this.#runners[channel] as ChannelRunner).push(resampler.flush()) })
    await Promise.all(this.#runners.map(async (runner) => { await runner.finish() }))
    if (reason !== undefined) this.#send(reason)
    const frames = this.#decoder.framesDecoded
    const end: EndEvent = {
      type: 'end',
      channel: null,
      seconds_received: new Array<number>(this.format.channels).fill(frames / this.format.sample_rate),
      samples_received: new Array<number>(this.format.channels).fill(frames),
      segments: this.#segments,
      interim_segments: this.#interims,
      interim_segments_dropped: this.#interimsDropped,
      bytes_received: this.#bytesTaken,
      sha256: this.#hash.digest('hex'),
      dropped: { truncated_audio: leftover, max_duration: this.#bytesPastLimit },
      errors: this.#errors
    }
    if (this.#state === 'finishing') {
      this.#state = 'ended'
      this.#emit(end)
      this.#closed.resolve('ended')
    }
    return end
  }

  // An event about the stream as a whole from the core (shutdown, acknowledgements...): sent in
  // order with the results, not counted as one.
  notify (event: StreamEvent): void {
    this.#send(event)
  }

  // Every channel finalises the audio it has received (ChannelRunner.finalize); resolves once
  // all their results for it were emitted. The stream stays open. Audio the decoder or the
  // resamplers still hold (a partial frame, the resampler's filter delay) has not reached the
  // runners yet and is not part of it.
  async finalizeRunners (): Promise<void> {
    await Promise.all(this.#runners.map(async (runner) => { await runner.finalize() }))
  }

  // The client's finalize: every open utterance up to the audio received now is finalised, its
  // final sent, then `finalized` (also when there was nothing to finalise); the stream goes on.
  async finalize (): Promise<void> {
    if (this.#state !== 'streaming') return
    const seconds = this.secondsDecoded
    await this.finalizeRunners()
    this.notify({ type: 'finalized', channel: null, seconds })
  }

  // The server ends the stream: `error` is its last event, then as abort().
  failWith (error: ErrorEvent): void {
    this.#send(error)
    this.abort()
  }

  // The client went away: cancel queued work, emit nothing more.
  abort (): void {
    if (this.#state === 'ended' || this.#state === 'aborted') return
    this.#state = 'aborted'
    this.#abort.abort()
    for (const runner of this.#runners) runner.abort()
    this.#closed.resolve('aborted')
  }

  #send (event: StreamEvent): void {
    if (this.#state === 'aborted' || this.#state === 'ended') return
    if (event.type === 'segment' && event.channel !== null) {
      const interim = event.is_final === false
      if (this.#outboundFull?.() === true) {
        // The client is not reading: interims are worth the least and go first; a final is
        // never dropped, the stream ends instead (slow_consumer).
        if (interim) {
          this.#interimsDropped[event.channel] = (this.#interimsDropped[event.channel] ?? 0) + 1
          return
        }
        this.#onOverflow?.()
        return
      }
      const counts = interim ? this.#interims : this.#segments
      counts[event.channel] = (counts[event.channel] ?? 0) + 1
    } else if (event.type === 'error') {
      this.#errors++
    }
    this.#emit(event)
  }
}
