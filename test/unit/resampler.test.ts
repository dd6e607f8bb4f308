import t from 'tap'
import { PcmDecoder } from '../../src/audio/pcm-decoder.ts'
import { StreamingResampler } from '../../src/audio/resampler.ts'
import { concatSamples } from '../helpers/concat-samples.ts'
import { seededRandom } from '../helpers/seeded-random.ts'

const OUT = 16000
const DOWN_RATES = [44100, 48000, 96000, 192000]

type Chunking = number | 'random' | 'whole'
const CHUNKINGS: Chunking[] = [1, 7, 333, 1021, 'random']

// Splits n samples into chunk lengths; 'random' mixes empty chunks, single samples and large ones.
function chunkSizes (n: number, chunking: Chunking, seed = 1): number[] {
  if (chunking === 'whole') return [n]
  const next = seededRandom(seed)
  const sizes: number[] = []
  let left = n
  while (left > 0) {
    const size = chunking === 'random' ? Math.min(left, Math.floor(next() ** 3 * 3000)) : Math.min(left, chunking)
    sizes.push(size)
    left -= size
  }
  return sizes
}

// Runs x through a fresh resampler in the given chunks and returns everything, flush included.
function resample (x: Float32Array, inputRate: number, chunking: Chunking, outputRate = OUT, seed = 1): Float32Array {
  const resampler = new StreamingResampler(inputRate, outputRate)
  const parts: Float32Array[] = []
  let offset = 0
  for (const size of chunkSizes(x.length, chunking, seed)) {
    parts.push(resampler.push(x.subarray(offset, offset + size)))
    offset += size
  }
  parts.push(resampler.flush())
  return concatSamples(parts)
}

function sine (rate: number, frequency: number, n: number, amplitude = 0.5): Float32Array {
  const x = new Float32Array(n)
  for (let i = 0; i < n; i++) x[i] = amplitude * Math.sin(2 * Math.PI * frequency * i / rate)
  return x
}

// Normalised cross-correlation at lag 0 with the ideal tone at the output rate: a delay or
// phase error lowers it (one sample late at 3 kHz / 16 kHz gives 0.38), so it tests timing too.
function correlationWithSine (y: Float32Array, frequency: number, rate = OUT): number {
  let xy = 0
  let yy = 0
  let ss = 0
  for (let k = 0; k < y.length; k++) {
    const s = Math.sin(2 * Math.PI * frequency * k / rate)
    const v = y[k] as number
    xy += v * s
    yy += v * v
    ss += s * s
  }
  return xy / Math.sqrt(yy * ss)
}

// Delay of the tone in y relative to sin(2 pi f k / rate), in output samples, from its phase.
function delayInSamples (y: Float32Array, frequency: number, from: number, to: number, rate = OUT): number {
  let inPhase = 0
  let quadrature = 0
  for (let k = from; k < to; k++) {
    const w = 2 * Math.PI * frequency * k / rate
    inPhase += (y[k] as number) * Math.sin(w)
    quadrature += (y[k] as number) * Math.cos(w)
  }
  return -Math.atan2(quadrature, inPhase) / (2 * Math.PI * frequency) * rate
}

function rms (y: Float32Array, from: number, to: number): number {
  let sum = 0
  for (let k = from; k < to; k++) sum += (y[k] as number) ** 2
  return Math.sqrt(sum / (to - from))
}

function identical (a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

t.test('16 kHz to 16 kHz is an exact copy, in any chunking', async t => {
  const next = seededRandom(3)
  const x = new Float32Array(20000).map(() => next() * 2 - 1)
  for (const chunking of [...CHUNKINGS, 'whole'] as Chunking[]) {
    const y = resample(x, OUT, chunking)
    t.ok(identical(x, y), `chunking ${chunking}`)
  }
  const resampler = new StreamingResampler(OUT)
  const input = new Float32Array([0.25, -0.5])
  const output = resampler.push(input)
  // Ownership passes with the call: the same array comes back, with no copy per frame.
  t.equal(output, input, 'the input array is the output, not copied')
  t.same(Array.from(output), [0.25, -0.5])
  t.equal(resampler.flush().length, 0)
  t.equal(resampler.outputSamples, 2)
})

t.test('tones keep shape and phase: correlation >= 0.99 with the ideal sine, every rate and chunking', async t => {
  const cases: Array<[number, number]> = [[8000, 440], [8000, 3000]]
  for (const rate of DOWN_RATES) cases.push([rate, 440], [rate, 3000])
  for (const [rate, frequency] of cases) {
    const x = sine(rate, frequency, Math.round(rate * 0.5))
    const reference = resample(x, rate, 'whole')
    const correlation = correlationWithSine(reference, frequency)
    t.ok(correlation >= 0.99, `${rate} Hz -> 16 kHz, ${frequency} Hz: correlation ${correlation.toFixed(6)}`)
    for (const chunking of CHUNKINGS) {
      // The chunking changes nothing: the output is bit-identical to a single push.
      t.ok(identical(resample(x, rate, chunking, OUT, rate + frequency), reference), `${rate} Hz, ${frequency} Hz, chunks of ${chunking}: same as one push`)
    }
  }
})

t.test('in steady state a tone differs from the ideal one by less than -80 dB (ripple, timing jitter, noise)', async t => {
  // 44099 Hz reduces to L = 16000 phases, so it takes the interpolated-phase path; 12345 Hz
  // and 11025 Hz have large exact tables; the rest are the common rates.
  for (const rate of [8000, 11025, 12345, 22050, 44100, 44099, 48000, 96000, 192000]) {
    for (const frequency of [440, 1000, 3000]) {
      const y = resample(sine(rate, frequency, rate), rate, 'random', OUT, rate)
      const ideal = sine(OUT, frequency, y.length)
      let error = 0
      let power = 0
      for (let k = 400; k < y.length - 400; k++) {
        error += ((y[k] as number) - (ideal[k] as number)) ** 2
        power += (ideal[k] as number) ** 2
      }
      const db = 10 * Math.log10(error / power)
      t.ok(db <= -80, `${rate} Hz, ${frequency} Hz: error ${db.toFixed(1)} dB`)
    }
  }
})

t.test('stereo: two channels of interleaved f32 bytes, split anywhere, each resampled by its own instance', async t => {
  for (const rate of [8000, ...DOWN_RATES]) {
    const frames = Math.round(rate * 0.4)
    const left = sine(rate, 440, frames)
    const right = sine(rate, 3000, frames, 0.3)
    const interleaved = new Float32Array(frames * 2)
    for (let i = 0; i < frames; i++) {
      interleaved[2 * i] = left[i] as number
      interleaved[2 * i + 1] = right[i] as number
    }
    const bytes = new Uint8Array(interleaved.buffer)
    for (const chunking of [7, 1021, 'random'] as Chunking[]) {
      const decoder = new PcmDecoder({ channels: 2, sample_rate: rate, bit_depth: 32, is_float: true })
      const resamplers = [new StreamingResampler(rate), new StreamingResampler(rate)]
      const outputs: Float32Array[][] = [[], []]
      let offset = 0
      // Byte chunks of odd sizes cut samples and frames in half.
      for (const size of chunkSizes(bytes.length, chunking, rate)) {
        const channels = decoder.push(bytes.subarray(offset, offset + size))
        offset += size
        channels.forEach((samples, c) => outputs[c]?.push((resamplers[c] as StreamingResampler).push(samples)))
      }
      resamplers.forEach((r, c) => outputs[c]?.push(r.flush()))
      const [y0, y1] = outputs.map(concatSamples) as [Float32Array, Float32Array]
      const c0 = correlationWithSine(y0, 440)
      const c1 = correlationWithSine(y1, 3000)
      t.ok(c0 >= 0.99 && c1 >= 0.99, `${rate} Hz stereo, ${chunking}-byte chunks: left ${c0.toFixed(6)}, right ${c1.toFixed(6)}`)
      // No leakage between channels: the 3 kHz tone is absent from the left output.
      t.ok(Math.abs(correlationWithSine(y0, 3000)) < 0.01, `${rate} Hz stereo: channels kept apart`)
      t.equal(y0.length, Math.round(frames * OUT / rate))
    }
  }
})

t.test('a 10 kHz tone is attenuated by at least 80 dB when downsampling', async t => {
  for (const rate of DOWN_RATES) {
    // 8.5 kHz is just past the stop-band edge (8 kHz) and folds to 7.5 kHz: the hardest case.
    for (const frequency of [8500, 10000, 15000]) {
      const amplitude = 0.5
      const y = resample(sine(rate, frequency, rate), rate, 1021)
      // Steady state: skip the start and the end, where the tone starts and stops abruptly.
      const level = rms(y, 400, y.length - 400) / (amplitude / Math.SQRT2)
      const db = 20 * Math.log10(level)
      t.ok(db <= -80, `${rate} Hz input, ${frequency} Hz tone: ${db.toFixed(1)} dB`)
    }
  }
})

t.test('upsampling 8 kHz to 16 kHz leaves no image above 4 kHz', async t => {
  // A 3 kHz tone at 8 kHz has its image at 5 kHz: measure what lands there.
  const y = resample(sine(8000, 3000, 8000), 8000, 333)
  const image = sine(OUT, 5000, y.length, 1)
  const imageQ = new Float32Array(y.length).map((_, k) => Math.cos(2 * Math.PI * 5000 * k / OUT))
  let i = 0
  let q = 0
  for (let k = 400; k < y.length - 400; k++) {
    i += (y[k] as number) * (image[k] as number)
    q += (y[k] as number) * (imageQ[k] as number)
  }
  const amplitude = 2 * Math.hypot(i, q) / (y.length - 800)
  const db = 20 * Math.log10(amplitude / 0.5)
  t.ok(db <= -80, `5 kHz image: ${db.toFixed(1)} dB`)
})

t.test('group delay is compensated: output sample k is input time k / outputRate', async t => {
  for (const rate of [8000, 11025, 22050, 44100, 48000, 96000, 192000, 44099]) {
    // Phase of a tone in steady state, in output samples (0 means aligned).
    for (const frequency of [440, 3000]) {
      const y = resample(sine(rate, frequency, rate), rate, 333)
      const delay = delayInSamples(y, frequency, 400, y.length - 400)
      t.ok(Math.abs(delay) < 0.01, `${rate} Hz, ${frequency} Hz tone: delay ${delay.toFixed(5)} output samples`)
    }
    // An impulse at input sample T peaks at output time T * 16000 / rate.
    for (const at of [500, 1234, 3001]) {
      const x = new Float32Array(rate)
      x[at] = 1
      const y = resample(x, rate, 'random', OUT, at)
      let peak = 0
      for (let k = 1; k < y.length; k++) if (Math.abs(y[k] as number) > Math.abs(y[peak] as number)) peak = k
      const expected = at * OUT / rate
      t.ok(Math.abs(peak - expected) <= 1, `${rate} Hz impulse at ${at}: peak at ${peak}, expected ${expected.toFixed(2)}`)
    }
  }
  // A tone that starts at input time T: the output's envelope crosses half amplitude at T too.
  const rate = 48000
  const onset = 0.1
  const x = sine(rate, 1000, rate)
  x.fill(0, 0, Math.round(onset * rate))
  const y = resample(x, rate, 1021)
  let crossing = -1
  for (let k = 0; k < y.length && crossing < 0; k++) if (Math.abs(y[k] as number) > 0.05) crossing = k
  t.ok(Math.abs(crossing - onset * OUT) <= 2, `tone onset at ${onset * OUT} output samples, output starts at ${crossing}`)
  // After the onset the tone is in phase with the input's clock, not restarted at the onset.
  const after = y.slice()
  after.fill(0, 0, onset * OUT + 20)
  const expected = sine(OUT, 1000, y.length)
  expected.fill(0, 0, onset * OUT + 20)
  let xy = 0
  let ee = 0
  for (let k = 0; k < y.length; k++) {
    xy += (after[k] as number) * (expected[k] as number)
    ee += (expected[k] as number) ** 2
  }
  t.ok(Math.abs(xy / ee - 1) < 0.001, `gain in phase after the onset: ${(xy / ee).toFixed(5)}`)
})

t.test('output length after flush is round(inputSamples * outputRate / inputRate), for many lengths and chunkings', async t => {
  const next = seededRandom(5)
  const lengths = [0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 40, 99, 100, 101, 440, 441, 442, 1000, 4410, 48001]
  for (let i = 0; i < 12; i++) lengths.push(Math.floor(next() * 20000))
  const pairs: Array<[number, number]> = [
    [8000, OUT], [11025, OUT], [22050, OUT], [44100, OUT], [48000, OUT], [96000, OUT], [192000, OUT],
    [44099, OUT], [12345, OUT], [OUT, OUT], [OUT, 8000], [OUT, 48000], [44100, 48000]
  ]
  let checked = 0
  const failures: string[] = []
  for (const [inputRate, outputRate] of pairs) {
    for (const n of lengths) {
      const x = new Float32Array(n).fill(0.1)
      for (const chunking of ['whole', 1, 7, 'random'] as Chunking[]) {
        if (chunking === 1 && n > 5000) continue
        const resampler = new StreamingResampler(inputRate, outputRate)
        let produced = 0
        let offset = 0
        for (const size of chunkSizes(n, chunking, n)) {
          produced += resampler.push(x.subarray(offset, offset + size)).length
          offset += size
        }
        produced += resampler.flush().length
        const expected = Math.round(n * outputRate / inputRate)
        checked++
        if (produced !== expected || resampler.outputSamples !== expected || resampler.inputSamples !== n) {
          failures.push(`${inputRate}->${outputRate}, ${n} samples in chunks of ${chunking}: ${produced}, expected ${expected}`)
        }
      }
    }
  }
  t.same(failures, [], `${checked} streams`)
})

t.test('reuseOutput: the same samples in one reused array, each valid until the next call', async t => {
  const next = seededRandom(9)
  for (const rate of [8000, 44100, 48000]) {
    const x = new Float32Array(rate).map(() => next() * 2 - 1)
    const expected = resample(x, rate, 'random', OUT, 3)
    const resampler = new StreamingResampler(rate, OUT, { reuseOutput: true })
    const parts: Float32Array[] = []
    const buffers = new Set<ArrayBufferLike>()
    let offset = 0
    for (const size of chunkSizes(x.length, 'random', 3)) {
      const out = resampler.push(x.subarray(offset, offset + size))
      if (out.length > 0) buffers.add(out.buffer)
      parts.push(out.slice()) // copied at once, as a runner does
      offset += size
    }
    parts.push(resampler.flush().slice())
    t.same(concatSamples(parts), expected, `${rate} Hz: identical output`)
    t.ok(buffers.size < parts.length / 4, `${rate} Hz: ${parts.length} pushes wrote into ${buffers.size} array(s)`)
  }
  // A push too large to keep (over 32768 outputs) gets its own array; the kept one stays small.
  const resampler = new StreamingResampler(48000, OUT, { reuseOutput: true })
  resampler.push(new Float32Array(4800)) // the first push is shorter: the filter's look-ahead
  const kept = resampler.push(new Float32Array(4800)).buffer
  const huge = resampler.push(new Float32Array(48000 * 3))
  t.equal(huge.length, 48000, 'every output of the huge push')
  t.not(huge.buffer, kept, 'in an array of its own')
  t.equal(resampler.push(new Float32Array(4800)).buffer, kept, 'the next small push reuses the kept array')
})

t.test('the tail is real signal, not padding: the last outputs still carry the input', async t => {
  for (const rate of [8000, 44100, 48000]) {
    const n = rate / 2
    const y = resample(new Float32Array(n).fill(0.5), rate, 'random')
    // Away from the edges the level is 0.5; at the very end it is the band-limited step, about
    // half of it, because the last output sits at most half an input period before the cut.
    t.ok(Math.abs((y[y.length / 2] as number) - 0.5) < 1e-4, `${rate} Hz: middle`)
    t.ok((y[y.length - 1] as number) > 0.2, `${rate} Hz: last sample ${y[y.length - 1]}`)
  }
})

t.test('edge cases: empty and single-sample pushes, push after flush, bad rates', async t => {
  const resampler = new StreamingResampler(48000)
  t.equal(resampler.push(new Float32Array(0)).length, 0)
  let out = 0
  for (let i = 0; i < 3000; i++) out += resampler.push(new Float32Array([0.5])).length
  out += resampler.flush().length
  t.equal(out, 1000)
  t.equal(resampler.flush().length, 0, 'a second flush has nothing more')
  t.throws(() => resampler.push(new Float32Array(1)), /after flush/)
  t.throws(() => new StreamingResampler(0), RangeError)
  t.throws(() => new StreamingResampler(44100.5), RangeError)
  t.throws(() => new StreamingResampler(48000, -1), RangeError)
})
