import { VAD_FRAME_SAMPLES, VAD_SAMPLE_RATE } from './silero-vad.ts'

export interface VadSegmenterSettings {
  /** Probability at or above which a frame is speech. */
  threshold: number
  /** Silence (below threshold - 0.15) that must pass before an utterance ends. */
  minSilenceMs: number
  /** Audio kept before each start and after each end. */
  speechPadMs: number
}

export type VadBoundary = { kind: 'start', sample: number } | { kind: 'end', sample: number }

// Silero's VADIterator ends speech only below threshold - 0.15: hysteresis, so a probability
// between the two neither starts speech nor counts as silence.
const NEGATIVE_THRESHOLD_GAP = 0.15
const SAMPLES_PER_MS = VAD_SAMPLE_RATE / 1000

/**
 * Speech start/end from per-frame speech probabilities, as Silero's VADIterator does it, in
 * 16 kHz sample units. Frame i covers samples [i*512, (i+1)*512).
 * - start: the first speech frame's start minus the pad (not below 0, nor below the previous end);
 * - end: the start of the first silent frame of a silence run plus the pad, emitted once the run
 *   has lasted minSilenceMs (counted, as in VADIterator, from the end of that first silent frame);
 *   a speech frame inside the run cancels it, a frame between the two thresholds does not;
 *   unlike VADIterator the end is never past the audio seen so far (a pad longer than
 *   minSilenceMs would otherwise point into audio not yet received).
 */
export class VadSegmenter {
  readonly #threshold: number
  readonly #negativeThreshold: number
  readonly #minSilenceSamples: number
  readonly #padSamples: number
  #speaking = false
  #frames = 0
  // Start sample of the first silent frame of the current silence run while speaking, or -1.
  #silenceStart = -1
  #lastEnd = 0

  constructor (settings: VadSegmenterSettings) {
    this.#threshold = settings.threshold
    this.#negativeThreshold = settings.threshold - NEGATIVE_THRESHOLD_GAP
    this.#minSilenceSamples = settings.minSilenceMs * SAMPLES_PER_MS
    this.#padSamples = Math.round(settings.speechPadMs * SAMPLES_PER_MS)
  }

  get speaking (): boolean {
    return this.#speaking
  }

  /**
   * While speaking: how many more frames, all silent, would end the utterance (null when not
   * speaking). The caller uses it to send those frames to the VAD at once instead of gathering
   * more: the end of speech is the one boundary whose latency a client waits on.
   */
  get framesUntilEnd (): number | null {
    if (!this.#speaking) return null
    const silenceStart = this.#silenceStart >= 0 ? this.#silenceStart : this.#frames * VAD_FRAME_SAMPLES
    // The first frame whose end satisfies frameEnd - (silenceStart + frame) >= minSilence.
    const endSample = silenceStart + VAD_FRAME_SAMPLES + this.#minSilenceSamples
    return Math.max(1, Math.ceil(endSample / VAD_FRAME_SAMPLES) - this.#frames)
  }

  push (probabilities: Float32Array): VadBoundary[] {
    const boundaries: VadBoundary[] = []
    for (const p of probabilities) {
      const frameStart = this.#frames * VAD_FRAME_SAMPLES
      const frameEnd = frameStart + VAD_FRAME_SAMPLES
      this.#frames++
      if (p >= this.#threshold) {
        this.#silenceStart = -1
        if (!this.#speaking) {
          this.#speaking = true
          boundaries.push({ kind: 'start', sample: Math.max(0, this.#lastEnd, frameStart - this.#padSamples) })
        }
      } else if (p < this.#negativeThreshold && this.#speaking) {
        if (this.#silenceStart < 0) this.#silenceStart = frameStart
        // VADIterator measures silence from the END of the first silent frame (its temp_end).
        if (frameEnd - (this.#silenceStart + VAD_FRAME_SAMPLES) >= this.#minSilenceSamples) {
          const end = Math.min(frameEnd, this.#silenceStart + this.#padSamples)
          boundaries.push({ kind: 'end', sample: end })
          this.#lastEnd = end
          this.#speaking = false
          this.#silenceStart = -1
        }
      }
    }
    return boundaries
  }

  /**
   * End of stream. totalSamples: every sample seen, including a tail shorter than a frame. Open
   * speech ends there, or earlier if a silence run had already begun (its padded start, as push
   * would have given once minSilenceMs passed).
   */
  flush (totalSamples: number): VadBoundary[] {
    if (!this.#speaking) return []
    const end = this.#silenceStart >= 0 ? Math.min(totalSamples, this.#silenceStart + this.#padSamples) : totalSamples
    this.#speaking = false
    this.#silenceStart = -1
    this.#lastEnd = end
    return [{ kind: 'end', sample: end }]
  }

  /**
   * A finalize mid-stream: everything up to `sample` (every sample seen, including a tail shorter
   * than a frame that push has not judged yet) is decided now. Open speech ends as flush ends it,
   * and no later start may reach back before `sample`, so an utterance after it holds only audio
   * received after it. Pushing goes on afterwards with the next frames, as if nothing happened:
   * the frame count (the sample timeline) is untouched.
   */
  finalize (sample: number): VadBoundary[] {
    const boundaries = this.flush(sample)
    this.#lastEnd = Math.max(this.#lastEnd, sample)
    return boundaries
  }
}
