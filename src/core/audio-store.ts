// Append-only 16 kHz audio addressed by absolute sample index, with the front discarded once
// no utterance can reach back to it: per-stream memory stays bounded by the longest utterance.
export class AudioStore {
  #chunks: Float32Array[] = []
  #base = 0 // absolute index of #chunks[0][0]
  #length = 0 // absolute index one past the last stored sample

  get end (): number { return this.#length }
  get start (): number { return this.#base }

  append (samples: Float32Array): void {
    if (samples.length === 0) return
    this.#chunks.push(samples)
    this.#length += samples.length
  }

  // A copy of [from, to), zero-padded to `length` samples: it is handed to a worker and
  // transferred, so it must own its buffer.
  slice (from: number, to: number, length = to - from): Float32Array {
    const start = Math.max(from, this.#base)
    const stop = Math.min(to, this.#length)
    const out = new Float32Array(Math.max(0, stop - start, length))
    let chunkStart = this.#base
    for (const chunk of this.#chunks) {
      const chunkEnd = chunkStart + chunk.length
      if (chunkEnd > start && chunkStart < stop) {
        const a = Math.max(start, chunkStart) - chunkStart
        const b = Math.min(stop, chunkEnd) - chunkStart
        out.set(chunk.subarray(a, b), chunkStart + a - start)
      }
      if (chunkEnd >= stop) break
      chunkStart = chunkEnd
    }
    return out
  }

  discardBefore (sample: number): void {
    while (this.#chunks.length > 0) {
      const first = this.#chunks[0] as Float32Array
      if (this.#base + first.length > sample) break
      this.#base += first.length
      this.#chunks.shift()
    }
  }
}
