// Append-only 16 kHz audio addressed by absolute sample index, with the front discarded once
// no utterance can reach back to it: per-stream memory stays bounded by the longest utterance.
//
// Samples are kept in fixed-size blocks, block k holding the absolute samples
// [k * BLOCK_SAMPLES, (k + 1) * BLOCK_SAMPLES): appending copies into the last block (no object
// per received frame), and discardBefore drops whole blocks. A quarter of a second per block: a
// stream in silence holds one or two (8-16 KB), a 30 s utterance 120, and a VAD task's slice
// (3+ frames of 32 ms) spans one or two.
//
// The samples are stored as 16-bit PCM (round(x * 32768), clamped to [-32768, 32767]; read back
// as v / 32768), half the memory of Float32. 16-bit PCM input at 16 kHz (the common case) comes
// in as int / 32768 and round-trips exactly; any other input (24/32-bit, float, resampled) loses
// at most half a step of 2^-15, an error below -90 dBFS, far under anything the VAD or a speech
// model can tell. Samples beyond full scale (the decoder clamps float input to [-1, 1], but a
// resampler can overshoot it slightly) are clipped to it.
const BLOCK_SAMPLES = 4000
const TO_INT = 32768
const TO_FLOAT = 1 / 32768 // a power of two: v * TO_FLOAT is exactly v / 32768

export class AudioStore {
  #blocks: Int16Array[] = []
  #first = 0 // block number of #blocks[0]
  #length = 0 // absolute index one past the last stored sample

  get end (): number { return this.#length }
  // Everything from here is held; its block is the first kept.
  get start (): number { return this.#first * BLOCK_SAMPLES }
  // The samples allocated (whole blocks), for tests of what discardBefore frees.
  get retainedSamples (): number { return this.#blocks.length * BLOCK_SAMPLES }

  append (samples: Float32Array): void {
    const n = samples.length
    let i = 0
    while (i < n) {
      const offset = this.#length % BLOCK_SAMPLES
      if (offset === 0) this.#blocks.push(new Int16Array(BLOCK_SAMPLES))
      const block = this.#blocks[this.#blocks.length - 1] as Int16Array
      const count = Math.min(BLOCK_SAMPLES - offset, n - i)
      for (let k = 0; k < count; k++) {
        const v = Math.round((samples[i + k] as number) * TO_INT)
        // NaN fails both tests and is stored as 0.
        block[offset + k] = v > 32767 ? 32767 : v < -32768 ? -32768 : v
      }
      i += count
      this.#length += count
    }
  }

  // A copy of [from, to), zero-padded to `length` samples, zeros where nothing is held (before
  // start, from end), in an array of its own (for a worker to take).
  slice (from: number, to: number, length = to - from): Float32Array {
    return this.read(from, to, new Float32Array(Math.max(0, Math.min(to, this.#length) - from, length)))
  }

  // Like slice, into `out` (every element written): the samples [from, from + out.length), those
  // from `to` on and any not held as zeros. For a caller that reuses one array.
  read (from: number, to: number, out: Float32Array): Float32Array {
    const stop = Math.max(from, Math.min(to, this.#length, from + out.length))
    let pos = Math.max(from, Math.min(this.start, stop))
    out.fill(0, 0, pos - from)
    while (pos < stop) {
      const number = Math.floor(pos / BLOCK_SAMPLES)
      const block = this.#blocks[number - this.#first] as Int16Array
      const offset = pos - number * BLOCK_SAMPLES
      const count = Math.min(BLOCK_SAMPLES - offset, stop - pos)
      const shift = pos - from - offset
      for (let k = offset, last = offset + count; k < last; k++) out[shift + k] = (block[k] as number) * TO_FLOAT
      pos += count
    }
    out.fill(0, stop - from)
    return out
  }

  // Frees the blocks wholly before `sample` (never past the end: appending goes on from there).
  discardBefore (sample: number): void {
    const drop = Math.floor(Math.min(sample, this.#length) / BLOCK_SAMPLES) - this.#first
    if (drop <= 0) return
    this.#blocks.splice(0, drop)
    this.#first += drop
  }
}
