import { MODEL_SAMPLE_RATE } from '../../schemas/audio-format.ts'
import { VAD_FRAME_SAMPLES } from '../audio/silero-vad.ts'
import { cutWindowSamples, quietestPause, RecentProbabilities, recentFramesFor } from '../audio/utterance-cut.ts'
import { VadSegmenter } from '../audio/vad-segmenter.ts'
import { AudioStore } from './audio-store.ts'
import type { ChannelRunner, RunnerOptions } from './channel-runner.ts'
import { inferenceErrorEvent, segmentEvent, type SegmentSpan } from './inference-result.ts'
import { OrderedEvents } from './ordered-events.ts'
import type { VadStreamLike } from './services.ts'

const VAD_FRAME = VAD_FRAME_SAMPLES // Silero v5 frame at 16 kHz (32 ms)
// Frames sent to the VAD worker in one request (2 s of audio): a stream ahead of real time (a
// file, a client catching up) waits for one worker round trip per request, and its frames are
// sequential (the LSTM state), so the request size sets its pace. One 48 kHz stereo stream sent
// as fast as possible, 60 s, median of 3, two interleaved rounds: 32 frames 106x / 111x real
// time, 64 frames 125x / 148x (128: 134x / 125x), measured with upstream's one-frame-per-run
// Silero graph. The VAD pool caps a task's frames over all streams (VAD_TASK_FRAMES), so many
// such streams at once do not make longer tasks for the requests that wait behind them; a
// request of 64 is one run of the sequence graph, ~2.5 ms of one thread (it was ~9 ms).
const MAX_VAD_FRAMES_PER_TASK = 64
// A worker round trip costs about as much CPU as two frames of Silero, so a live stream's 20 ms
// frames are gathered into tasks of at least this many VAD frames (96 ms of audio)...
const MIN_VAD_FRAMES_PER_TASK = 3
// ...unless audio stops arriving: then what is there is decided once no audio has come for
// this long. The wait restarts with every push: a fixed deadline from the first pending frame
// expired at ~2 frames for a real-time stream (20 ms frames), so tasks carried ~2 frames, not 3.
const VAD_GATHER_MS = 40

// A finalize's point in the stream (samples received when it was called) and its promise.
interface FinalizePoint { sample: number, resolve: (drained: Promise<void>) => void }

// Segmented mode: Silero VAD splits the channel into utterances; the model runs on each
// utterance when it ends (final) and, if asked, every interim interval of ongoing speech.
export class SegmentedRunner implements ChannelRunner {
  readonly #options: RunnerOptions
  readonly #events: OrderedEvents
  readonly #vad: VadStreamLike
  readonly #segmenter: VadSegmenter
  readonly #audio = new AudioStore()
  readonly #padSamples: number
  readonly #interimSamples: number
  readonly #maxUtteranceSamples: number
  readonly #threshold: number
  readonly #cutWindow: number
  // The last cut window's probabilities: where a too-long utterance is cut (utterance-cut.ts).
  readonly #recent: RecentProbabilities
  #vadDone = 0 // samples the VAD has decided on
  #vadBusy = false
  #gatherTimer: NodeJS.Timeout | null = null
  #gatherExpired = false
  #finishing = false
  #aborted = false
  #broken = false
  #utteranceStart: number | null = null
  // Whether `active` was sent for the utterance from #utteranceStart. Only false after a cut with
  // no speech frame since: the piece is announced when speech comes, or dropped if none does.
  #announced = true
  #finalizing: FinalizePoint[] = []
  #nextInterimAt = 0
  #interimInFlight = false
  // Audio of this channel's final inferences queued or running: the backlog flow control bounds.
  // Interims are left out: they re-read audio an utterance holds anyway, at most one at a time,
  // and are skipped under pressure.
  #inferringSamples = 0
  #idle: (() => void) | null = null
  // The frames of the VAD request in flight (one at a time), reused: a new array per request was
  // a steady churn of buffers, which V8 pays for in full collections (see VadBatcher's buffers).
  #vadFrames = new Float32Array(0)

  constructor (options: RunnerOptions) {
    this.#options = options
    this.#events = new OrderedEvents(options.emit)
    this.#vad = options.services.createVadStream()
    const vad = options.services.vad
    this.#segmenter = new VadSegmenter({ threshold: vad.threshold, minSilenceMs: vad.min_silence_ms, speechPadMs: vad.speech_pad_ms })
    this.#padSamples = Math.round(vad.speech_pad_ms * MODEL_SAMPLE_RATE / 1000)
    this.#interimSamples = Math.round(options.services.limits.interim_interval_ms * MODEL_SAMPLE_RATE / 1000)
    this.#maxUtteranceSamples = Math.round(options.services.limits.max_utterance_seconds * MODEL_SAMPLE_RATE)
    this.#threshold = vad.threshold
    this.#cutWindow = cutWindowSamples(this.#maxUtteranceSamples)
    this.#recent = new RecentProbabilities(recentFramesFor(this.#cutWindow))
  }

  push (samples: Float32Array): void {
    if (this.#aborted || samples.length === 0) return
    this.#audio.append(samples)
    // Audio is still arriving: the gathering wait starts over (see VAD_GATHER_MS).
    this.#gatherTimer?.refresh()
    this.#pump()
  }

  async finish (): Promise<void> {
    this.#finishing = true
    this.#pump()
    await this.#whenVadIdle()
    if (!this.#stopped()) {
      // The last partial VAD frame is zero-padded so the tail of the stream is decided too.
      const rest = this.#audio.end - this.#vadDone
      if (rest > 0) await this.#runVad(this.#vadDone, this.#audio.end, VAD_FRAME, true).catch((error: unknown) => { this.#fail(error) })
    }
    if (!this.#stopped()) {
      for (const boundary of this.#segmenter.flush(this.#audio.end)) this.#onBoundary(boundary.kind, boundary.sample)
    }
    await this.#events.drained()
  }

  // The VAD decides every whole frame received so far, then open speech ends at the end of the
  // received audio. A last partial frame is not zero-padded as finish() does: its real samples
  // stay and are judged once the frame is complete, so the VAD's state and the frame timeline go
  // on exactly as if no finalize had happened. Its samples still belong to the finalised
  // utterance, and the next utterance starts no earlier than this point (VadSegmenter.finalize).
  finalize (): Promise<void> {
    if (this.#finishing || this.#stopped()) return this.#events.drained()
    const { promise, resolve } = Promise.withResolvers<void>()
    this.#finalizing.push({ sample: this.#audio.end, resolve })
    this.#pump()
    return promise
  }

  get heldSamples (): number {
    return this.#audio.end - this.#vadDone + this.#inferringSamples
  }

  abort (): void {
    this.#aborted = true
    if (this.#gatherTimer !== null) clearTimeout(this.#gatherTimer)
    this.#events.close()
    for (const point of this.#finalizing.splice(0)) point.resolve(Promise.resolve())
    this.#idle?.()
  }

  #stopped (): boolean {
    return this.#aborted || this.#broken
  }

  // Feeds whole VAD frames to the worker, one task at a time: the LSTM state is sequential.
  #pump (): void {
    if (this.#vadBusy) return
    // A finalize waits until every whole frame before its point is decided; the VAD goes no
    // further until it is done, so no later audio can slip into what it finalises.
    while (this.#finalizing.length > 0 && (this.#stopped() || this.#vadDone + VAD_FRAME > (this.#finalizing[0] as FinalizePoint).sample)) {
      this.#settleFinalize(this.#finalizing.shift() as FinalizePoint)
    }
    const until = this.#finalizing[0]?.sample ?? this.#audio.end
    const frames = this.#stopped() ? 0 : Math.min(Math.floor((until - this.#vadDone) / VAD_FRAME), MAX_VAD_FRAMES_PER_TASK)
    if (frames === 0) {
      this.#idle?.()
      return
    }
    // A finalize wants its frames decided now, not once more audio has been gathered; so does a
    // silence run these frames may complete (the end of speech: a client waits for its final).
    // The VAD pool may hold a request up to about one frame for a run shared with other streams
    // (vad-batcher.ts, gatherMs): a silence run that may end with the next frame is not held
    // either, or the frame that ends it would wait behind the held request.
    const ending = this.#segmenter.framesUntilEnd
    const urgent = this.#finishing || this.#finalizing.length > 0 || (ending !== null && frames + 1 >= ending)
    if (frames < MIN_VAD_FRAMES_PER_TASK && !urgent && !this.#gatherExpired) {
      this.#gatherTimer ??= setTimeout(() => {
        this.#gatherTimer = null
        this.#gatherExpired = true
        this.#pump()
      }, VAD_GATHER_MS)
      return
    }
    if (this.#gatherTimer !== null) {
      clearTimeout(this.#gatherTimer)
      this.#gatherTimer = null
    }
    this.#gatherExpired = false
    this.#vadBusy = true
    this.#runVad(this.#vadDone, this.#vadDone + frames * VAD_FRAME, frames * VAD_FRAME, urgent).then(() => {
      this.#vadBusy = false
      this.#pump()
    }, (error: unknown) => {
      this.#vadBusy = false
      this.#fail(error)
      this.#pump()
    })
  }

  #settleFinalize (point: FinalizePoint): void {
    if (!this.#stopped()) {
      for (const boundary of this.#segmenter.finalize(point.sample)) this.#onBoundary(boundary.kind, boundary.sample)
    }
    // Everything for the audio before the point is enqueued by now; later events are not waited for.
    point.resolve(this.#events.drained())
  }

  #whenVadIdle (): Promise<void> {
    if (!this.#vadBusy) return Promise.resolve()
    return new Promise((resolve) => {
      this.#idle = () => {
        this.#idle = null
        resolve()
      }
    })
  }

  // Runs the VAD over samples [from, to), zero-padded to `length` (a whole number of frames).
  // urgent: someone waits on the result (VadProcessOptions), so it is not held for a shared run.
  async #runVad (from: number, to: number, length: number, urgent: boolean): Promise<void> {
    if (this.#vadFrames.length < length) this.#vadFrames = new Float32Array(length)
    // Left unchanged until process() settles, as VadStream asks: the next request waits for it.
    const input = this.#audio.read(from, to, this.#vadFrames.subarray(0, length))
    const started = performance.now()
    const probabilities = await this.#vad.process(input, { urgent })
    this.#options.services.observer?.stage('vad', (to - from) / MODEL_SAMPLE_RATE, (performance.now() - started) / 1000)
    if (this.#stopped()) return
    for (let i = 0; i < probabilities.length; i++) {
      const probability = probabilities[i] as number
      this.#recent.push(probability)
      for (const boundary of this.#segmenter.push(probabilities.subarray(i, i + 1))) this.#onBoundary(boundary.kind, boundary.sample)
      this.#vadDone = Math.min(from + (i + 1) * VAD_FRAME, to)
      if (!this.#announced && probability >= this.#threshold) this.#announce()
      this.#duringSpeech()
    }
    this.#trimAudio()
  }

  #onBoundary (kind: 'start' | 'end', sample: number): void {
    const channel = this.#options.channel
    if (kind === 'start') {
      this.#utteranceStart = sample
      this.#announce()
      return
    }
    const start = this.#utteranceStart
    if (start === null) return
    this.#utteranceStart = null
    if (!this.#announced) {
      // Speech ended right at a cut: what followed the cut held no speech frame, so it is no
      // utterance and the client, never told it began, hears nothing of it.
      this.#announced = true
      return
    }
    this.#events.enqueue({ type: 'inactive', channel, time: sample / MODEL_SAMPLE_RATE })
    this.#infer({ channel, startSample: start, endSample: sample, isFinal: true })
  }

  // `active` for the utterance from #utteranceStart.
  #announce (): void {
    const start = this.#utteranceStart as number
    this.#announced = true
    this.#nextInterimAt = start + this.#interimSamples
    this.#events.enqueue({ type: 'active', channel: this.#options.channel, time: start / MODEL_SAMPLE_RATE })
  }

  // Interim results and the maximum utterance length, checked after every VAD frame.
  #duringSpeech (): void {
    const start = this.#utteranceStart
    if (start === null) return
    const channel = this.#options.channel
    if (this.#vadDone - start >= this.#maxUtteranceSamples) {
      if (this.#announced) this.#cut(start)
      // No speech frame since the last cut for a whole maximum length (the VAD hovering between
      // its two thresholds): nothing to finalise, but memory stays bounded.
      else this.#utteranceStart = Math.max(start, this.#vadDone - this.#padSamples)
      return
    }
    if (!this.#announced) return
    if (this.#options.interimResults && this.#vadDone >= this.#nextInterimAt) {
      this.#nextInterimAt = this.#vadDone + this.#interimSamples
      // One interim in flight per channel: with a slow model a late interim is worth less than
      // the next, longer one. Under pressure none: the final replaces them.
      if (this.#interimInFlight || this.#options.underPressure?.() === true) return
      this.#interimInFlight = true
      this.#infer({ channel, startSample: start, endSample: this.#vadDone, isFinal: false }, () => { this.#interimInFlight = false })
    }
  }

  // The utterance from `start` reached the maximum length. Memory stays bounded: it is finalised
  // at the quietest point of the cut window before the limit (utterance-cut.ts), or at the limit
  // if the window holds no pause, and the speech goes on as a new utterance from the cut. The
  // client sees the cut as any other boundary: inactive, the final, then active.
  #cut (start: number): void {
    const channel = this.#options.channel
    const limit = start + this.#maxUtteranceSamples
    // Whole frames inside [limit - window, limit]: the window is at most half the limit, so it
    // starts after `start` and never holds the previous piece's frames.
    const { first, probabilities } = this.#recent.range(Math.ceil((limit - this.#cutWindow) / VAD_FRAME), Math.floor(limit / VAD_FRAME))
    const pause = quietestPause(probabilities, this.#threshold)
    const cut = pause === null ? limit : Math.round((first + pause) * VAD_FRAME)
    this.#events.enqueue({ type: 'inactive', channel, time: cut / MODEL_SAMPLE_RATE })
    this.#infer({ channel, startSample: start, endSample: cut, isFinal: true })
    this.#utteranceStart = cut
    // The new utterance is announced at the cut once the VAD has heard speech after it: usually
    // already (the pause was followed by speech within the window). If the pause was still going
    // at the limit, speech may be ending there, and `active` waits for the next speech frame.
    this.#announced = false
    const after = this.#recent.range(Math.floor(cut / VAD_FRAME), this.#recent.frames)
    if (after.probabilities.some((p) => p >= this.#threshold)) this.#announce()
  }

  #infer (span: SegmentSpan, done?: () => void): void {
    const audio = this.#audio.slice(span.startSample, span.endSample)
    const samples = span.isFinal === false ? 0 : audio.length
    this.#inferringSamples += samples
    const result = this.#options.services.infer(audio, { signal: this.#options.signal }).then(
      (output) => segmentEvent(span, output),
      (error: unknown) => inferenceErrorEvent(span, error, this.#faultLog())
    ).finally(() => {
      this.#inferringSamples -= samples
      done?.()
    })
    this.#events.enqueue(result)
  }

  // Keep what an utterance may still need: from its start, or the speech pad before the
  // undecided audio when nobody is speaking.
  #trimAudio (): void {
    const keepFrom = this.#utteranceStart ?? this.#vadDone - this.#padSamples - VAD_FRAME
    this.#audio.discardBefore(keepFrom)
  }

  // The VAD worker failed: this channel can no longer find speech. Say so once; results already
  // under way are still delivered and the stream can still end cleanly.
  #fail (error: unknown): void {
    if (this.#broken) return
    this.#broken = true
    this.#options.onFault?.(error)
    this.#events.enqueue({ type: 'error', channel: this.#options.channel, code: 'internal', message: 'Internal server error' })
  }

  // Faults go to the log, except the aborts of a stream the client left (expected, not faults).
  #faultLog (): ((error: unknown) => void) | undefined {
    return this.#options.signal.aborted ? undefined : this.#options.onFault
  }
}
