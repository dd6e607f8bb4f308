import { MODEL_SAMPLE_RATE } from '../../schemas/audio-format.ts'

// Streaming sample-rate conversion of one channel (one instance per channel), by a polyphase
// Kaiser-windowed sinc evaluated at the exact rational output times.
//
// Timing: output sample k is the band-limited input signal at input time k / outputRate, so the
// filter's group delay is compensated (the resampler waits for `halfWidth` input samples of
// look-ahead instead of shifting its output). Before the first sample and after the last the
// input counts as silence. After flush() the stream has produced exactly
// Math.round(inputSamples * outputRate / inputRate) samples: no tail lost, no padding.
//
// Filter: pass band to 0.40 x min(inputRate, outputRate), stop band from 0.50 x (the lower
// Nyquist), so nothing aliases onto the output band when downsampling and no images survive when
// upsampling; Kaiser design for STOPBAND_DB attenuation. The filter is designed in input-sample
// time, so its length grows with inputRate / outputRate when downsampling (194 taps per output
// sample at 48 kHz, 772 at 192 kHz, 66 when upsampling 8 kHz). The look-ahead is half of that in
// input samples: about 2 ms when downsampling, 4 ms from 8 kHz.
//
// Chosen by measurement (bench/resampler.bench.ts): about 6 ms of CPU per second of 48 kHz audio
// per channel. The speex resampler's WASM build is about 3x cheaper at quality 8 but needs an
// async start-up, malloc'd state that must be destroyed by hand, and its own latency and tail
// handling; libsamplerate's WASM build cannot flush its tail and is 2-12x slower.

const STOPBAND_DB = 100
const PASSBAND_EDGE = 0.40 // x min(inputRate, outputRate)
const STOPBAND_EDGE = 0.50
// Exact polyphase tables (one row per output phase of the reduced ratio L/M) up to this many
// coefficients; beyond it (odd rates like 44099 Hz give L = 16000) a fixed grid of
// INTERPOLATED_PHASES rows is used with linear interpolation between neighbouring rows, whose
// error stays below -100 dB relative to full scale.
const MAX_EXACT_TABLE = 1 << 18
const INTERPOLATED_PHASES = 512
// Filter designs are shared by every channel and stream with the same rates; a few are kept.
const DESIGN_CACHE_SIZE = 8

interface FilterDesign {
  upFactor: number // L: output samples per ...
  downFactor: number // M: ... input samples, reduced (44.1 kHz -> 16 kHz is 160 / 441)
  halfWidth: number // W: taps on each side, in input samples (and the look-ahead)
  taps: number // 2W coefficients per row
  phases: number // rows in the table minus one: L when exact, INTERPOLATED_PHASES otherwise
  exact: boolean
  // Row p (p = 0..phases) holds h(p / phases + W - 1 - j) for j = 0..2W-1, to be applied to the
  // input samples x[n0 - W + 1 + j] for an output at input time n0 + p / phases.
  table: Float32Array
}

const designs = new Map<string, FilterDesign>()

function gcd (a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

// Zeroth-order modified Bessel function of the first kind (power series; converges fast for
// the beta values used here, about 10).
function besselI0 (x: number): number {
  let sum = 1
  let term = 1
  const q = (x * x) / 4
  for (let k = 1; k < 200; k++) {
    term *= q / (k * k)
    sum += term
    if (term < sum * 1e-17) break
  }
  return sum
}

function designFilter (inputRate: number, outputRate: number): FilterDesign {
  const key = `${inputRate}:${outputRate}`
  const cached = designs.get(key)
  if (cached !== undefined) {
    // Refresh its place in the least-recently-used order.
    designs.delete(key)
    designs.set(key, cached)
    return cached
  }

  const g = gcd(inputRate, outputRate)
  const upFactor = outputRate / g
  const downFactor = inputRate / g
  const lowerRate = Math.min(inputRate, outputRate)
  // Frequencies as cycles per input sample.
  const cutoff = ((PASSBAND_EDGE + STOPBAND_EDGE) / 2) * lowerRate / inputRate
  const transition = 2 * Math.PI * (STOPBAND_EDGE - PASSBAND_EDGE) * lowerRate / inputRate
  // Kaiser's formulas for the window length and shape that reach STOPBAND_DB.
  const length = Math.ceil((STOPBAND_DB - 7.95) / (2.285 * transition)) + 1
  const beta = 0.1102 * (STOPBAND_DB - 8.7)
  const halfWidth = Math.ceil(length / 2)
  const taps = 2 * halfWidth
  const exact = upFactor * taps <= MAX_EXACT_TABLE
  const phases = exact ? upFactor : INTERPOLATED_PHASES

  const table = new Float32Array((phases + 1) * taps)
  const i0Beta = besselI0(beta)
  for (let p = 0; p <= phases; p++) {
    for (let j = 0; j < taps; j++) {
      const t = p / phases + halfWidth - 1 - j
      const r = t / halfWidth
      if (r <= -1 || r >= 1) continue
      const x = 2 * cutoff * t
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x)
      const window = besselI0(beta * Math.sqrt(1 - r * r)) / i0Beta
      table[p * taps + j] = 2 * cutoff * sinc * window
    }
  }

  const design: FilterDesign = { upFactor, downFactor, halfWidth, taps, phases, exact, table }
  designs.set(key, design)
  if (designs.size > DESIGN_CACHE_SIZE) {
    const oldest = designs.keys().next().value
    if (oldest !== undefined) designs.delete(oldest)
  }
  return design
}

export class StreamingResampler {
  readonly inputRate: number
  readonly outputRate: number
  readonly #design: FilterDesign | null // null: same rate, samples pass through unchanged
  // Input history from absolute input index #bufStart; index < 0 is the silence before the stream.
  #buf: Float32Array
  #bufStart: number
  #bufLength: number
  // The next output's time in input samples is #base + #phase / L (exact rational arithmetic).
  #base = 0
  #phase = 0
  #inputSamples = 0
  #outputSamples = 0
  #flushed = false

  constructor (inputRate: number, outputRate: number = MODEL_SAMPLE_RATE) {
    if (!Number.isInteger(inputRate) || inputRate <= 0) throw new RangeError(`inputRate must be a positive integer (Hz), got ${inputRate}`)
    if (!Number.isInteger(outputRate) || outputRate <= 0) throw new RangeError(`outputRate must be a positive integer (Hz), got ${outputRate}`)
    this.inputRate = inputRate
    this.outputRate = outputRate
    this.#design = inputRate === outputRate ? null : designFilter(inputRate, outputRate)
    const halfWidth = this.#design?.halfWidth ?? 1
    // Start with W - 1 samples of silence so the first outputs can look back.
    this.#buf = new Float32Array(4 * halfWidth + 4096)
    this.#bufStart = -(halfWidth - 1)
    this.#bufLength = halfWidth - 1
  }

  get inputSamples (): number { return this.#inputSamples }
  get outputSamples (): number { return this.#outputSamples }

  /** Input samples in, the output samples they complete out. At the same rate, `input` itself. */
  push (input: Float32Array): Float32Array {
    if (this.#flushed) throw new Error('StreamingResampler.push after flush: the stream has ended')
    this.#inputSamples += input.length
    const design = this.#design
    if (design === null) {
      // Same rate: the input is the output. Not copied: callers hand over arrays they made for
      // this call (PcmDecoder.push returns new ones each time), and a copy per 20 ms frame per
      // stream was measurable under load.
      this.#outputSamples += input.length
      return input
    }
    if (input.length === 0) return new Float32Array(0)
    this.#append(input)
    // Outputs whose look-ahead is all here: base + W <= last input index.
    const lastBase = this.#inputSamples - 1 - design.halfWidth
    const span = (lastBase + 1 - this.#base) * design.upFactor - this.#phase
    const count = span > 0 ? Math.ceil(span / design.downFactor) : 0
    return this.#produce(design, count)
  }

  flush (): Float32Array {
    const design = this.#design
    if (this.#flushed || design === null) {
      this.#flushed = true
      return new Float32Array(0)
    }
    this.#flushed = true
    const total = Math.round(this.#inputSamples * this.outputRate / this.inputRate)
    const count = Math.max(0, total - this.#outputSamples)
    // The silence after the stream: every remaining output looks ahead at most W samples.
    this.#append(new Float32Array(design.halfWidth))
    const out = this.#produce(design, count)
    this.#buf = new Float32Array(0)
    this.#bufLength = 0
    return out
  }

  #append (input: Float32Array): void {
    const needed = this.#bufLength + input.length
    if (needed > this.#buf.length) {
      // Drop history no future output reads: the next one starts at #base - W + 1.
      const halfWidth = this.#design?.halfWidth ?? 1
      const drop = Math.min(this.#bufLength, this.#base - halfWidth + 1 - this.#bufStart)
      if (drop > 0) {
        this.#buf.copyWithin(0, drop, this.#bufLength)
        this.#bufStart += drop
        this.#bufLength -= drop
      }
      if (this.#bufLength + input.length > this.#buf.length) {
        const grown = new Float32Array(Math.max(2 * this.#buf.length, this.#bufLength + input.length))
        grown.set(this.#buf.subarray(0, this.#bufLength))
        this.#buf = grown
      }
    }
    this.#buf.set(input, this.#bufLength)
    this.#bufLength += input.length
  }

  #produce (design: FilterDesign, count: number): Float32Array {
    const out = new Float32Array(count)
    const { upFactor, downFactor, halfWidth, taps, phases, exact, table } = design
    const stepWhole = Math.floor(downFactor / upFactor)
    const stepPhase = downFactor - stepWhole * upFactor
    const buf = this.#buf
    let base = this.#base
    let phase = this.#phase
    for (let k = 0; k < count; k++) {
      const first = base - halfWidth + 1 - this.#bufStart
      let acc = 0
      if (exact) {
        acc = dot(buf, first, table, phase * taps, taps)
      } else {
        // Between two rows of the fine grid: interpolate the two dot products.
        const position = phase * phases / upFactor
        const lower = Math.floor(position)
        const weight = position - lower
        acc = dot(buf, first, table, lower * taps, taps)
        acc += weight * (dot(buf, first, table, (lower + 1) * taps, taps) - acc)
      }
      out[k] = acc
      base += stepWhole
      phase += stepPhase
      if (phase >= upFactor) {
        phase -= upFactor
        base++
      }
    }
    this.#base = base
    this.#phase = phase
    this.#outputSamples += count
    return out
  }
}

// Dot product of n samples from x[xi] with n coefficients from h[hi]. Four partial sums let the
// CPU overlap the additions (n is always even, a multiple of 2).
function dot (x: Float32Array, xi: number, h: Float32Array, hi: number, n: number): number {
  let a0 = 0
  let a1 = 0
  let a2 = 0
  let a3 = 0
  let j = 0
  for (; j + 4 <= n; j += 4) {
    a0 += (x[xi + j] as number) * (h[hi + j] as number)
    a1 += (x[xi + j + 1] as number) * (h[hi + j + 1] as number)
    a2 += (x[xi + j + 2] as number) * (h[hi + j + 2] as number)
    a3 += (x[xi + j + 3] as number) * (h[hi + j + 3] as number)
  }
  for (; j < n; j++) a0 += (x[xi + j] as number) * (h[hi + j] as number)
  return (a0 + a1) + (a2 + a3)
}
