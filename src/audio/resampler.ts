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
// time, so its length grows with inputRate / outputRate when downsampling (176 taps per output
// sample at 48 kHz, 160 at 44.1 kHz, 672 at 192 kHz, 64 when upsampling 8 kHz). The look-ahead
// is half of that in input samples: about 1.8 ms when downsampling, 4 ms from 8 kHz.
//
// STOPBAND_DB = 88, down from 100: the tests ask for 80 dB (alias rejection, steady-state error,
// upsampling images). Kaiser's design holds it over the whole band: worst pass-band ripple and
// worst stop-band leak, computed from the coefficients, are -87.5 dB or lower at every rate, and
// the tests measure -90 dB or lower. The band edges are unchanged: a wider transition band saves
// taps too (stop band from 0.52 x: -17 %), but lets 8-8.3 kHz alias onto 7.7-8 kHz.
//
// Cost (bench/resampler.bench.ts, ms of CPU per second of audio per channel, 20 ms pushes, on the
// shared 2-core dev machine; before = the previous version in the same bench and minute):
//   input rate        8 kHz   44.1 kHz   48 kHz   96 kHz
//   before (100 dB)   1.33    2.61       2.87     5.60   (the old bench said 1.6, 5.1, 5.8, 6.4)
//   now               0.13    0.30       0.29     0.53
// The dot products run in a WebAssembly SIMD kernel (f32x4, four partial sums of float32: its
// outputs differ from float64 sums by -144 dB), assembled when the first filter is designed from
// its text at the bottom of this file, so it needs no dependency and no build step. Options
// measured on the same bench, at 48 kHz: the SIMD kernel at 100 dB, 0.38 ms, so the 88 dB design
// is worth a further 20 %; plain JavaScript with the same layout (one contiguous Float32Array for
// table, input and output, no modulo indexing, float64 sums), 2.4 ms at 100 dB and 2.0 at 88 dB:
// 7 x dearer, kept only as the fallback. Float64Array storage changed nothing there, 8 partial sums
// instead of 4 were 2 x slower. What is left is mostly the multiply-adds (about 0.09 ns a tap);
// the rest of each output (horizontal sum, phase step) is about 2.4 ns, 13 % at 48 kHz.

const STOPBAND_DB = 88
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
// The kernel computes at most this many outputs per call; a larger push takes several calls, so
// the scratch memory of a design stays small whatever the caller pushes at once.
const BLOCK_OUTPUTS = 4096

// What one kernel call needs beyond the input samples, which the caller copies to
// heap[inputAt...] first: `count` outputs to heap[outputAt...], the first at phase `phase`.
type Kernel = (count: number, phase: number) => void

interface FilterDesign {
  upFactor: number // L: output samples per ...
  downFactor: number // M: ... input samples, reduced (44.1 kHz -> 16 kHz is 160 / 441)
  halfWidth: number // W: taps on each side, in input samples (and the look-ahead)
  taps: number // 2W coefficients per row, a multiple of 16 (the SIMD kernel's step)
  // The filter table, then room for the input samples and the outputs of one kernel call.
  // Row p (p = 0..phases, phases = L when exact, INTERPOLATED_PHASES otherwise) holds
  // h(p / phases + W - 1 - j) for j = 0..2W-1, to be applied to the input samples
  // x[n0 - W + 1 + j] for an output at input time n0 + p / phases.
  heap: Float32Array
  inputAt: number
  outputAt: number
  kernel: Kernel
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
  // W a multiple of 8, so that 2W is one of the SIMD kernel's 16 taps per step: the window is at
  // most 15 samples longer than Kaiser's formula asks, which only narrows the transition band.
  const halfWidth = 8 * Math.ceil(length / 16)
  const taps = 2 * halfWidth
  const exact = upFactor * taps <= MAX_EXACT_TABLE
  const phases = exact ? upFactor : INTERPOLATED_PHASES

  // Input samples one kernel call reads: from the first output's window start to the last one's
  // window end.
  const inputSpan = Math.ceil((BLOCK_OUTPUTS - 1) * downFactor / upFactor) + 1 + taps
  const inputAt = (phases + 1) * taps
  const outputAt = inputAt + align4(inputSpan)
  const layout = { upFactor, downFactor, taps, phases: exact ? 0 : phases, inputAt, outputAt }
  const { heap, kernel } = createHeap(outputAt + BLOCK_OUTPUTS, layout)

  const i0Beta = besselI0(beta)
  for (let p = 0; p <= phases; p++) {
    for (let j = 0; j < taps; j++) {
      const t = p / phases + halfWidth - 1 - j
      const r = t / halfWidth
      if (r <= -1 || r >= 1) continue
      const x = 2 * cutoff * t
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x)
      const window = besselI0(beta * Math.sqrt(1 - r * r)) / i0Beta
      heap[p * taps + j] = 2 * cutoff * sinc * window
    }
  }

  const design: FilterDesign = { upFactor, downFactor, halfWidth, taps, heap, inputAt, outputAt, kernel }
  designs.set(key, design)
  if (designs.size > DESIGN_CACHE_SIZE) {
    const oldest = designs.keys().next().value
    if (oldest !== undefined) designs.delete(oldest)
  }
  return design
}

function align4 (n: number): number {
  return Math.ceil(n / 4) * 4
}

// With reuseOutput, outputs up to this many samples use the kept array (128 KiB at most).
const MAX_REUSED_OUTPUT = 32768

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
  // With reuseOutput, the array every push writes into (grown as needed).
  readonly #reuseOutput: boolean
  #output = new Float32Array(0)

  /**
   * reuseOutput: push and flush return a view of one array this resampler keeps and overwrites on
   * the next call, instead of a new array each time: valid only until then. The session passes
   * each push straight to a runner that copies it (a new 16 KiB array per 250 ms of 48 kHz audio
   * per channel fed V8's full collections, as PcmDecoder's reuseOutput explains).
   */
  constructor (inputRate: number, outputRate: number = MODEL_SAMPLE_RATE, options: { reuseOutput?: boolean } = {}) {
    this.#reuseOutput = options.reuseOutput === true
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
      // Same rate: the input is the output. Not copied (a copy per 20 ms frame per stream was
      // measurable under load): the output is then only as long-lived as the input. The session
      // hands over its decoder's reused arrays, and its runners copy what they get at once.
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
    // As PcmDecoder's reuseOutput: one huge push gets an array of its own, so it does not pin
    // its size for the rest of the stream.
    const reuse = this.#reuseOutput && count <= MAX_REUSED_OUTPUT
    if (reuse && this.#output.length < count) this.#output = new Float32Array(count)
    const out = reuse ? this.#output.subarray(0, count) : new Float32Array(count)
    const { upFactor, downFactor, halfWidth, taps, heap, inputAt, outputAt, kernel } = design
    const stepWhole = Math.floor(downFactor / upFactor)
    const stepPhase = downFactor - stepWhole * upFactor
    // The heap is shared by every resampler with this design (channels, streams): each kernel call
    // gets its input copied in just before and its outputs copied out just after.
    for (let done = 0; done < count;) {
      const n = Math.min(BLOCK_OUTPUTS, count - done)
      // The kernel reads from the first output's window start to the last output's window end.
      const lastBase = this.#base + (n - 1) * stepWhole + Math.floor((this.#phase + (n - 1) * stepPhase) / upFactor)
      const first = this.#base - halfWidth + 1 - this.#bufStart
      heap.set(this.#buf.subarray(first, first + lastBase - this.#base + taps), inputAt)
      kernel(n, this.#phase)
      out.set(heap.subarray(outputAt, outputAt + n), done)
      const advance = this.#phase + n * stepPhase
      this.#base += n * stepWhole + Math.floor(advance / upFactor)
      this.#phase = advance % upFactor
      done += n
    }
    this.#outputSamples += count
    return out
  }
}

// The kernels: `count` outputs, output k = the dot product of the row for its phase with the
// taps input samples from its window start, which moves by M / L input samples per output.
interface KernelLayout {
  upFactor: number
  downFactor: number
  taps: number
  phases: number // 0 when the table is exact (row = phase), else the interpolated grid's rows
  inputAt: number
  outputAt: number
}

// Plain JavaScript, for a runtime whose WebAssembly has no SIMD (V8 needs SSE4.1 on x64): products
// and sums in float64, four partial sums. About 7 x dearer than the SIMD kernel (2.0 ms per second
// of 48 kHz audio). Node 24 always has WebAssembly when it runs this file (its TypeScript support
// needs it), so no test reaches this; forced by hand, it passes test/unit/resampler.test.ts.
function jsKernel (heap: Float32Array, layout: KernelLayout): Kernel {
  const { upFactor, downFactor, taps, phases, inputAt, outputAt } = layout
  const stepWhole = Math.floor(downFactor / upFactor)
  const stepPhase = downFactor - stepWhole * upFactor
  return (count, phase) => {
    let x = inputAt
    for (let k = 0; k < count; k++) {
      let acc = 0
      if (phases === 0) {
        acc = dot(heap, x, phase * taps, taps)
      } else {
        // Between two rows of the fine grid: interpolate the two dot products.
        const position = phase * phases
        const lower = Math.floor(position / upFactor)
        const weight = (position - lower * upFactor) / upFactor
        acc = dot(heap, x, lower * taps, taps)
        acc += weight * (dot(heap, x, (lower + 1) * taps, taps) - acc)
      }
      heap[outputAt + k] = acc
      x += stepWhole
      phase += stepPhase
      if (phase >= upFactor) {
        phase -= upFactor
        x++
      }
    }
  }
}

function dot (heap: Float32Array, xi: number, hi: number, n: number): number {
  let a0 = 0
  let a1 = 0
  let a2 = 0
  let a3 = 0
  for (let j = 0; j < n; j += 4) { // n is a multiple of 16
    a0 += (heap[xi + j] as number) * (heap[hi + j] as number)
    a1 += (heap[xi + j + 1] as number) * (heap[hi + j + 1] as number)
    a2 += (heap[xi + j + 2] as number) * (heap[hi + j + 2] as number)
    a3 += (heap[xi + j + 3] as number) * (heap[hi + j + 3] as number)
  }
  return (a0 + a1) + (a2 + a3)
}

// ---------------------------------------------------------------------------------------------
// The WebAssembly SIMD kernel: the same loop as jsKernel, with four f32x4 partial sums (16
// products per iteration) in float32. Its source is the WebAssembly text below, assembled to
// bytes when the first design is made, so no build step and no binary blob.
//
// run(count, phase, x, out, table, rowBytes, up, stepBytes, stepPhase, phases): byte addresses
// x (the first output's window start), out and table; rowBytes = 4 * taps (a multiple of 64);
// the window start moves stepBytes per output, plus 4 when phase += stepPhase wraps at up.
const KERNEL_PARAMS = ['count', 'phase', 'x', 'out', 'table', 'rowBytes', 'up', 'stepBytes', 'stepPhase', 'phases']
const KERNEL_LOCALS = { i32: ['row', 'num', 'lower', 'wrap', 'px', 'ph', 'end'], f32: ['acc'], v128: ['a0', 'a1', 'a2', 'a3'] }

// Pushes the dot product of the row at byte address $row with the samples from $x.
const DOT = `
  local.get $x  local.set $px
  local.get $row  local.tee $ph  local.get $rowBytes  i32.add  local.set $end
  f32.const 0  f32x4.splat  local.tee $a0  local.tee $a1  local.tee $a2  local.set $a3
  loop $taps  ;; 16 per iteration, rowBytes / 64 iterations
    local.get $a0  local.get $px  v128.load  local.get $ph  v128.load  f32x4.mul  f32x4.add  local.set $a0
    local.get $a1  local.get $px  v128.load offset=16  local.get $ph  v128.load offset=16  f32x4.mul  f32x4.add  local.set $a1
    local.get $a2  local.get $px  v128.load offset=32  local.get $ph  v128.load offset=32  f32x4.mul  f32x4.add  local.set $a2
    local.get $a3  local.get $px  v128.load offset=48  local.get $ph  v128.load offset=48  f32x4.mul  f32x4.add  local.set $a3
    local.get $px  i32.const 64  i32.add  local.set $px
    local.get $ph  i32.const 64  i32.add  local.tee $ph  local.get $end  i32.lt_u  br_if $taps
  end
  ;; (a0 + a1) + (a2 + a3), then its lanes (0 + 1) + (2 + 3)
  local.get $a0  local.get $a1  f32x4.add  local.get $a2  local.get $a3  f32x4.add  f32x4.add  local.tee $a0
  f32x4.extract_lane 0  local.get $a0  f32x4.extract_lane 1  f32.add
  local.get $a0  f32x4.extract_lane 2  local.get $a0  f32x4.extract_lane 3  f32.add  f32.add
`

const KERNEL = `
  loop $outputs
    local.get $phases  i32.eqz
    if  ;; exact table: the row is the phase
      local.get $phase  local.get $rowBytes  i32.mul  local.get $table  i32.add  local.set $row
      ${DOT}  local.set $acc
    else  ;; between rows lower and lower + 1 of the grid: lower + weight = phase * phases / up
      local.get $phase  local.get $phases  i32.mul  local.tee $num  local.get $up  i32.div_u  local.tee $lower
      local.get $rowBytes  i32.mul  local.get $table  i32.add  local.set $row
      ${DOT}  local.set $acc
      local.get $acc
      local.get $num  local.get $lower  local.get $up  i32.mul  i32.sub  f32.convert_i32_u
      local.get $up  f32.convert_i32_u  f32.div  ;; weight
      local.get $row  local.get $rowBytes  i32.add  local.set $row
      ${DOT}  local.get $acc  f32.sub  f32.mul  f32.add  local.set $acc
    end
    local.get $out  local.get $acc  f32.store
    local.get $out  i32.const 4  i32.add  local.set $out
    ;; wrap = (phase += stepPhase) >= up, without a branch (at 44.1 kHz it has no short pattern)
    local.get $phase  local.get $stepPhase  i32.add  local.tee $phase  local.get $up  i32.ge_u  local.set $wrap
    local.get $phase  local.get $up  local.get $wrap  i32.mul  i32.sub  local.set $phase
    local.get $x  local.get $stepBytes  i32.add  local.get $wrap  i32.const 2  i32.shl  i32.add  local.set $x
    local.get $count  i32.const 1  i32.sub  local.tee $count  br_if $outputs
  end
`

function createHeap (floats: number, layout: KernelLayout): { heap: Float32Array, kernel: Kernel } {
  const module = compiledModule()
  // The kernel's phase * phases is a 32-bit integer: enough for any output rate below 8 MHz.
  if (wasmApi === undefined || module === null || layout.phases * layout.upFactor >= 2 ** 32) {
    const heap = new Float32Array(floats)
    return { heap, kernel: jsKernel(heap, layout) }
  }
  // A memory of its own per design, never grown (so the view stays valid), freed with the design.
  const pages = Math.ceil(floats * 4 / 65536)
  const memory = new wasmApi.Memory({ initial: pages, maximum: pages })
  const { exports } = new wasmApi.Instance(module, { env: { memory } })
  const run = exports.run as (...args: number[]) => void
  const { upFactor, downFactor, taps, phases, inputAt, outputAt } = layout
  const stepWhole = Math.floor(downFactor / upFactor)
  const stepPhase = downFactor - stepWhole * upFactor
  return {
    heap: new Float32Array(memory.buffer, 0, floats),
    kernel: (count, phase) => run(count, phase, 4 * inputAt, 4 * outputAt, 0, 4 * taps, upFactor, 4 * stepWhole, stepPhase, phases)
  }
}

// TypeScript's es2024 library has no WebAssembly types (they come with the DOM's): the little
// used here.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> }
  Memory: new (descriptor: { initial: number, maximum: number }) => object & { buffer: ArrayBuffer }
}
const wasmApi = (globalThis as { WebAssembly?: WasmApi }).WebAssembly
let wasmModule: object | null | undefined // compiled on first use; null: not available

function compiledModule (): object | null {
  if (wasmModule === undefined) {
    // A mistake in the kernel's text throws here, from the assembler; only the compilation may
    // fail quietly, on a runtime without SIMD.
    const bytes = kernelModule()
    try {
      wasmModule = wasmApi === undefined ? null : new wasmApi.Module(bytes)
    } catch {
      wasmModule = null
    }
  }
  return wasmModule
}

// A minimal assembler for the flat (not folded) WebAssembly text above: the instructions it
// uses, labels by name, locals by name. Binary format: WebAssembly core 2.0 with fixed-width SIMD.
const OPCODES: Record<string, number[]> = {
  loop: [0x03],
  if: [0x04],
  else: [0x05],
  end: [0x0b],
  br_if: [0x0d],
  'local.get': [0x20],
  'local.set': [0x21],
  'local.tee': [0x22],
  'f32.store': [0x38],
  'i32.const': [0x41],
  'f32.const': [0x43],
  'i32.eqz': [0x45],
  'i32.lt_u': [0x49],
  'i32.ge_u': [0x4f],
  'i32.add': [0x6a],
  'i32.sub': [0x6b],
  'i32.mul': [0x6c],
  'i32.div_u': [0x6e],
  'i32.shl': [0x74],
  'f32.add': [0x92],
  'f32.sub': [0x93],
  'f32.mul': [0x94],
  'f32.div': [0x95],
  'f32.convert_i32_u': [0xb3],
  'v128.load': [0xfd, 0x00],
  'f32x4.splat': [0xfd, 0x13],
  'f32x4.extract_lane': [0xfd, 0x1f],
  'f32x4.add': [0xfd, 0xe4, 0x01],
  'f32x4.mul': [0xfd, 0xe6, 0x01]
}
const VALUE_TYPES: Record<string, number> = { i32: 0x7f, f32: 0x7d, v128: 0x7b }

function unsignedLeb (n: number): number[] {
  const bytes: number[] = []
  do {
    const low = n & 0x7f
    n >>>= 7
    bytes.push(n === 0 ? low : low | 0x80)
  } while (n !== 0)
  return bytes
}

function signedLeb (n: number): number[] {
  const bytes: number[] = []
  for (;;) {
    const low = n & 0x7f
    n >>= 7
    if ((n === 0 && (low & 0x40) === 0) || (n === -1 && (low & 0x40) !== 0)) return [...bytes, low]
    bytes.push(low | 0x80)
  }
}

function assemble (text: string, locals: string[]): number[] {
  const tokens = text.replace(/;;[^\n]*/g, '').split(/\s+/).filter(token => token !== '')
  const labels: string[] = []
  const code: number[] = []
  const local = (name: string | undefined): number => {
    const index = locals.indexOf(name?.slice(1) ?? '')
    if (index < 0) throw new Error(`kernel: unknown local ${name}`)
    return index
  }
  for (let i = 0; i < tokens.length; i++) {
    const name = tokens[i] as string
    const opcode = OPCODES[name]
    if (opcode === undefined) throw new Error(`kernel: unknown instruction ${name}`)
    code.push(...opcode)
    if (name === 'loop' || name === 'if') {
      const label = tokens[i + 1]?.startsWith('$') === true ? tokens[++i] as string : ''
      labels.push(label)
      code.push(0x40) // no result
    } else if (name === 'end') {
      labels.pop()
    } else if (name === 'br_if') {
      const depth = labels.length - 1 - labels.lastIndexOf(tokens[++i] as string)
      if (depth >= labels.length) throw new Error(`kernel: unknown label ${tokens[i]}`)
      code.push(...unsignedLeb(depth))
    } else if (name.startsWith('local.')) {
      code.push(local(tokens[++i])) // one byte: fewer than 128 locals
    } else if (name === 'i32.const') {
      code.push(...signedLeb(Number(tokens[++i])))
    } else if (name === 'f32.const') {
      code.push(...new Uint8Array(new Float32Array([Number(tokens[++i])]).buffer))
    } else if (name === 'f32x4.extract_lane') {
      code.push(Number(tokens[++i]))
    } else if (name === 'v128.load' || name === 'f32.store') {
      const offset = tokens[i + 1]?.startsWith('offset=') === true ? Number((tokens[++i] as string).slice(7)) : 0
      code.push(2, ...unsignedLeb(offset)) // alignment hint: 4 bytes
    }
  }
  if (labels.length !== 0) throw new Error('kernel: unbalanced blocks')
  return [...code, 0x0b]
}

function kernelModule (): Uint8Array {
  const vector = (items: number[][]): number[] => [...unsignedLeb(items.length), ...items.flat()]
  const section = (id: number, items: number[][]): number[] => {
    const body = vector(items)
    return [id, ...unsignedLeb(body.length), ...body]
  }
  const name = (text: string): number[] => vector([...text].map(c => [c.charCodeAt(0)]))
  const localGroups = Object.entries(KERNEL_LOCALS)
  const body = [
    ...vector(localGroups.map(([type, names]) => [...unsignedLeb(names.length), VALUE_TYPES[type] as number])),
    ...assemble(KERNEL, [...KERNEL_PARAMS, ...localGroups.flatMap(([, names]) => names)])
  ]
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    // Type 0: (i32 x 10) -> ()
    ...section(1, [[0x60, ...vector(KERNEL_PARAMS.map(() => [VALUE_TYPES.i32 as number])), 0x00]]),
    // Import env.memory, at least one page.
    ...section(2, [[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]]),
    // Function 0 of type 0, exported as "run".
    ...section(3, [[0x00]]),
    ...section(7, [[...name('run'), 0x00, 0x00]]),
    ...section(10, [[...unsignedLeb(body.length), ...body]])
  ])
}
