// Test audio built from plain parts: silence and tones, as 16-bit PCM or floats.
export type Part = { seconds: number, tone?: number, amplitude?: number }

export function synth (parts: Part[], rate: number): Float32Array {
  const total = parts.reduce((n, p) => n + Math.round(p.seconds * rate), 0)
  const out = new Float32Array(total)
  let at = 0
  for (const part of parts) {
    const n = Math.round(part.seconds * rate)
    if (part.tone !== undefined) {
      const amplitude = part.amplitude ?? 0.5
      for (let i = 0; i < n; i++) out[at + i] = amplitude * Math.sin(2 * Math.PI * part.tone * (at + i) / rate)
    }
    at += n
  }
  return out
}

// Interleaves channels into little-endian s16 bytes.
export function toS16 (channels: Float32Array[]): Uint8Array {
  const frames = channels[0]?.length ?? 0
  const view = new DataView(new ArrayBuffer(frames * channels.length * 2))
  for (let i = 0; i < frames; i++) {
    channels.forEach((samples, c) => {
      const v = Math.max(-1, Math.min(1, samples[i] as number))
      view.setInt16((i * channels.length + c) * 2, Math.round(v * 32767), true)
    })
  }
  return new Uint8Array(view.buffer)
}

// Splits bytes into chunks of random sizes (odd ones included) to exercise reassembly.
export function * randomChunks (bytes: Uint8Array, max = 4096, seed = 1): Generator<Uint8Array> {
  let state = seed
  let at = 0
  while (at < bytes.length) {
    state = (state * 1103515245 + 12345) & 0x7fffffff
    const size = 1 + (state % max)
    yield bytes.subarray(at, at + size)
    at += size
  }
}
