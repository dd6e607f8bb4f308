import { MODEL_SAMPLE_RATE } from '../../schemas/audio-format.ts'
import { VAD_FRAME_SAMPLES } from '../audio/silero-vad.ts'
import { VadSegmenter } from '../audio/vad-segmenter.ts'
import { AudioStore } from './audio-store.ts'
import type { ChannelRunner, RunnerOptions } from './channel-runner.ts'
import { inferenceErrorEvent, segmentEvent, type SegmentSpan } from './inference-result.ts'
import { OrderedEvents } from './ordered-events.ts'
import type { VadStreamLike } from './services.ts'

const VAD_FRAME = VAD_FRAME_SAMPLES // Silero v5 frame at 16 kHz (32 ms)
// Frames sent to the VAD worker in one task: enough to amortise the hop, small enough that a
// burst of audio does not delay speech events by more than about a second.
const MAX_VAD_FRAMES_PER_TASK = 32
// A worker round trip costs about as much CPU as two frames of Silero, so a live stream's 20 ms
// frames are gathered into tasks of at least this many VAD frames (96 ms of audio)...
const MIN_VAD_FRAMES_PER_TASK = 3
// ...unless audio stops arriving: then what is there is decided once no audio has come for
// this long. The wait restarts with every push: a fixed deadline from the first pending frame
// expired at ~2 frames for a real-time stream (20 ms frames), so tasks carried ~2 frames, not 3.
const VAD_GATHER_MS = 40

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
  #vadDone = 0 // samples the VAD has decided on
  #vadBusy = false
  #gatherTimer: NodeJS.Timeout | null = null
  #gatherExpired = false
  #finishing = false
  #aborted = false
  #broken = false
  #utteranceStart: number | null = null
  #nextInterimAt = 0
  #interimInFlight = false
  #inferringSamples = 0 // audio of this channel's inferences queued or running
  #idle: (() => void) | null = null

  constructor (options: RunnerOptions) {
    this.#options = options
    this.#events = new OrderedEvents(options.emit)
    this.#vad = options.services.createVadStream()
    const vad = options.services.vad
    this.#segmenter = new VadSegmenter({ threshold: vad.threshold, minSilenceMs: vad.min_silence_ms, speechPadMs: vad.speech_pad_ms })
    this.#padSamples = Math.round(vad.speech_pad_ms * MODEL_SAMPLE_RATE / 1000)
    this.#interimSamples = Math.round(options.services.limits.interim_interval_ms * MODEL_SAMPLE_RATE / 1000)
    this.#maxUtteranceSamples = Math.round(options.services.limits.max_utterance_seconds * MODEL_SAMPLE_RATE)
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
      if (rest > 0) await this.#runVad(this.#vadDone, this.#audio.end, VAD_FRAME).catch((error: unknown) => { this.#fail(error) })
    }
    if (!this.#stopped()) {
      for (const boundary of this.#segmenter.flush(this.#audio.end)) this.#onBoundary(boundary.kind, boundary.sample)
    }
    await this.#events.drained()
  }

  get heldSamples (): number {
    return this.#audio.end - this.#vadDone + this.#inferringSamples
  }

  abort (): void {
    this.#aborted = true
    if (this.#gatherTimer !== null) clearTimeout(this.#gatherTimer)
    this.#events.close()
    this.#idle?.()
  }

  #stopped (): boolean {
    return this.#aborted || this.#broken
  }

  // Feeds whole VAD frames to the worker, one task at a time: the LSTM state is sequential.
  #pump (): void {
    if (this.#vadBusy) return
    const frames = this.#stopped() ? 0 : Math.min(Math.floor((this.#audio.end - this.#vadDone) / VAD_FRAME), MAX_VAD_FRAMES_PER_TASK)
    if (frames === 0) {
      this.#idle?.()
      return
    }
    if (frames < MIN_VAD_FRAMES_PER_TASK && !this.#finishing && !this.#gatherExpired) {
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
    this.#runVad(this.#vadDone, this.#vadDone + frames * VAD_FRAME, frames * VAD_FRAME).then(() => {
      this.#vadBusy = false
      this.#pump()
    }, (error: unknown) => {
      this.#vadBusy = false
      this.#fail(error)
      this.#pump()
    })
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
  async #runVad (from: number, to: number, length: number): Promise<void> {
    const input = this.#audio.slice(from, to, length)
    const started = performance.now()
    const probabilities = await this.#vad.process(input)
    this.#options.services.observer?.stage('vad', (to - from) / MODEL_SAMPLE_RATE, (performance.now() - started) / 1000)
    if (this.#stopped()) return
    for (let i = 0; i < probabilities.length; i++) {
      for (const boundary of this.#segmenter.push(probabilities.subarray(i, i + 1))) this.#onBoundary(boundary.kind, boundary.sample)
      this.#vadDone = Math.min(from + (i + 1) * VAD_FRAME, to)
      this.#duringSpeech()
    }
    this.#trimAudio()
  }

  #onBoundary (kind: 'start' | 'end', sample: number): void {
    const channel = this.#options.channel
    if (kind === 'start') {
      this.#utteranceStart = sample
      this.#nextInterimAt = sample + this.#interimSamples
      this.#events.enqueue({ type: 'active', channel, time: sample / MODEL_SAMPLE_RATE })
      return
    }
    const start = this.#utteranceStart
    if (start === null) return
    this.#utteranceStart = null
    this.#events.enqueue({ type: 'inactive', channel, time: sample / MODEL_SAMPLE_RATE })
    this.#infer({ channel, startSample: start, endSample: sample, isFinal: true })
  }

  // Interim results and the maximum utterance length, checked after every VAD frame.
  #duringSpeech (): void {
    const start = this.#utteranceStart
    if (start === null) return
    const channel = this.#options.channel
    if (this.#vadDone - start >= this.#maxUtteranceSamples) {
      // Memory stays bounded: the long utterance is finalised here and speech goes on as a new one.
      const cut = start + this.#maxUtteranceSamples
      this.#infer({ channel, startSample: start, endSample: cut, isFinal: true })
      this.#utteranceStart = cut
      this.#nextInterimAt = cut + this.#interimSamples
      return
    }
    if (this.#options.interimResults && this.#vadDone >= this.#nextInterimAt) {
      this.#nextInterimAt = this.#vadDone + this.#interimSamples
      // One interim in flight per channel: with a slow model a late interim is worth less than
      // the next, longer one. Under pressure none: the final replaces them.
      if (this.#interimInFlight || this.#options.underPressure?.() === true) return
      this.#interimInFlight = true
      this.#infer({ channel, startSample: start, endSample: this.#vadDone, isFinal: false }, () => { this.#interimInFlight = false })
    }
  }

  #infer (span: SegmentSpan, done?: () => void): void {
    const audio = this.#audio.slice(span.startSample, span.endSample)
    const samples = audio.length
    this.#inferringSamples += samples
    const result = this.#options.services.infer(audio, { signal: this.#options.signal }).then(
      (output) => segmentEvent(span, output),
      (error: unknown) => inferenceErrorEvent(span, error, this.#options.onFault)
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
}
