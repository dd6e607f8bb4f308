import { VAD_FRAME_SAMPLES, VAD_SAMPLE_RATE } from './silero-vad.ts'

// Where an utterance that reached limits.max_utterance_seconds is cut. Silero's own
// get_speech_timestamps (max_speech_duration_s) cuts a too-long segment at its last silence, or
// at the limit when there was none; we do the same within a window before the limit, so a cut
// lands between words instead of mid-word.

/**
 * How far before the limit a pause is looked for: 3 s, or half the limit when that is shorter,
 * so that every piece is at least half the limit long and a window never reaches back into the
 * previous piece. 3 s holds at least one pause between sentences or phrases in ordinary speech.
 */
export function cutWindowSamples (maxUtteranceSamples: number): number {
  return Math.min(3 * VAD_SAMPLE_RATE, Math.floor(maxUtteranceSamples / 2))
}

/**
 * The quietest place to cut within `probabilities` (consecutive VAD frames, oldest first), as a
 * position in frames from the start of the first: the middle of the longest run of frames below
 * `threshold` (the VAD's own line between speech and not), which may fall mid-frame (x.5).
 * Ties go to the run with the lowest mean probability, then to the later run (longer pieces).
 * A run may touch either end of the array: it is the part of a pause that lies in the window.
 * Null when no frame is below the threshold: a frame the VAD calls speech is no evidence of a
 * word boundary, so the caller cuts at the limit rather than guess at a dip.
 */
export function quietestPause (probabilities: ArrayLike<number>, threshold: number): number | null {
  let best: { start: number, length: number, mean: number } | null = null
  let i = 0
  while (i < probabilities.length) {
    if ((probabilities[i] as number) >= threshold) {
      i++
      continue
    }
    const start = i
    let sum = 0
    while (i < probabilities.length && (probabilities[i] as number) < threshold) sum += probabilities[i++] as number
    const length = i - start
    const mean = sum / length
    if (best === null || length > best.length || (length === best.length && mean <= best.mean)) best = { start, length, mean }
  }
  return best === null ? null : best.start + best.length / 2
}

/**
 * The probabilities of the last `capacity` VAD frames of a stream, by absolute frame index
 * (frame i covers samples [i * 512, (i + 1) * 512)): what quietestPause needs, in memory
 * bounded by the window rather than by the utterance.
 */
export class RecentProbabilities {
  readonly #ring: Float32Array
  #frames = 0 // frames pushed: the index of the next one

  constructor (capacity: number) {
    this.#ring = new Float32Array(Math.max(1, capacity))
  }

  /** Index of the next frame to be pushed. */
  get frames (): number {
    return this.#frames
  }

  push (probability: number): void {
    this.#ring[this.#frames % this.#ring.length] = probability
    this.#frames++
  }

  /** Frames [from, to) as an array; those no longer (or not yet) held are left out. */
  range (from: number, to: number): { first: number, probabilities: Float32Array } {
    const first = Math.max(from, this.#frames - this.#ring.length, 0)
    const last = Math.min(to, this.#frames)
    const out = new Float32Array(Math.max(0, last - first))
    for (let f = first; f < last; f++) out[f - first] = this.#ring[f % this.#ring.length] as number
    return { first, probabilities: out }
  }
}

/** Frames a window of `windowSamples` can touch, plus the frame that crosses the limit. */
export function recentFramesFor (windowSamples: number): number {
  return Math.ceil(windowSamples / VAD_FRAME_SAMPLES) + 2
}
