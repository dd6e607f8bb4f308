import t from 'tap'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import { bytesPerFrame, describeFormatProblem } from '../../src/audio/format-support.ts'
import { PcmDecoder } from '../../src/audio/pcm-decoder.ts'
import { concatSamples } from '../helpers/concat-samples.ts'
import { seededRandom } from '../helpers/seeded-random.ts'

type Kind = 's16' | 'f32' | 'f64' | 'u8' | 's24' | 's32' | 'mulaw' | 'alaw'

const FORMATS: Record<Kind, Omit<AudioFormat, 'channels'>> = {
  u8: { sample_rate: 8000, bit_depth: 8, is_float: false },
  s16: { sample_rate: 16000, bit_depth: 16, is_float: false },
  s24: { sample_rate: 48000, bit_depth: 24, is_float: false },
  s32: { sample_rate: 48000, bit_depth: 32, is_float: false },
  f32: { sample_rate: 44100, bit_depth: 32, is_float: true },
  f64: { sample_rate: 96000, bit_depth: 64, is_float: true },
  mulaw: { sample_rate: 8000, bit_depth: 8, is_float: false, encoding: 'mulaw' },
  alaw: { sample_rate: 8000, bit_depth: 8, is_float: false, encoding: 'alaw' }
}
const KINDS = Object.keys(FORMATS) as Kind[]

function format (kind: Kind, channels = 1): AudioFormat {
  return { ...FORMATS[kind], channels }
}

function decodeAll (kind: Kind, bytes: number[], channels = 1): number[][] {
  return new PcmDecoder(format(kind, channels)).push(new Uint8Array(bytes)).map(ch => Array.from(ch))
}

// Bit-exact comparison that treats -0 and 0 alike and reports the first difference.
function firstDifference (a: Float32Array, b: Float32Array): string | null {
  if (a.length !== b.length) return `length ${a.length} != ${b.length}`
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `sample ${i}: ${a[i]} != ${b[i]}`
  return null
}

// G.711 expansions to 16-bit linear of every byte 0x00..0xFF, as printed by sox 14.4
// (`sox -t raw -e mu-law -b 8 ... -e signed -b 16`), an implementation independent of ours.
const SOX_MULAW = [
  -32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956, -23932, -22908, -21884, -20860, -19836, -18812, -17788, -16764,
  -15996, -15484, -14972, -14460, -13948, -13436, -12924, -12412, -11900, -11388, -10876, -10364, -9852, -9340, -8828, -8316,
  -7932, -7676, -7420, -7164, -6908, -6652, -6396, -6140, -5884, -5628, -5372, -5116, -4860, -4604, -4348, -4092,
  -3900, -3772, -3644, -3516, -3388, -3260, -3132, -3004, -2876, -2748, -2620, -2492, -2364, -2236, -2108, -1980,
  -1884, -1820, -1756, -1692, -1628, -1564, -1500, -1436, -1372, -1308, -1244, -1180, -1116, -1052, -988, -924,
  -876, -844, -812, -780, -748, -716, -684, -652, -620, -588, -556, -524, -492, -460, -428, -396,
  -372, -356, -340, -324, -308, -292, -276, -260, -244, -228, -212, -196, -180, -164, -148, -132,
  -120, -112, -104, -96, -88, -80, -72, -64, -56, -48, -40, -32, -24, -16, -8, 0,
  32124, 31100, 30076, 29052, 28028, 27004, 25980, 24956, 23932, 22908, 21884, 20860, 19836, 18812, 17788, 16764,
  15996, 15484, 14972, 14460, 13948, 13436, 12924, 12412, 11900, 11388, 10876, 10364, 9852, 9340, 8828, 8316,
  7932, 7676, 7420, 7164, 6908, 6652, 6396, 6140, 5884, 5628, 5372, 5116, 4860, 4604, 4348, 4092,
  3900, 3772, 3644, 3516, 3388, 3260, 3132, 3004, 2876, 2748, 2620, 2492, 2364, 2236, 2108, 1980,
  1884, 1820, 1756, 1692, 1628, 1564, 1500, 1436, 1372, 1308, 1244, 1180, 1116, 1052, 988, 924,
  876, 844, 812, 780, 748, 716, 684, 652, 620, 588, 556, 524, 492, 460, 428, 396,
  372, 356, 340, 324, 308, 292, 276, 260, 244, 228, 212, 196, 180, 164, 148, 132,
  120, 112, 104, 96, 88, 80, 72, 64, 56, 48, 40, 32, 24, 16, 8, 0
]
const SOX_ALAW = [
  -5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736, -7552, -7296, -8064, -7808, -6528, -6272, -7040, -6784,
  -2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368, -3776, -3648, -4032, -3904, -3264, -3136, -3520, -3392,
  -22016, -20992, -24064, -23040, -17920, -16896, -19968, -18944, -30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136,
  -11008, -10496, -12032, -11520, -8960, -8448, -9984, -9472, -15104, -14592, -16128, -15616, -13056, -12544, -14080, -13568,
  -344, -328, -376, -360, -280, -264, -312, -296, -472, -456, -504, -488, -408, -392, -440, -424,
  -88, -72, -120, -104, -24, -8, -56, -40, -216, -200, -248, -232, -152, -136, -184, -168,
  -1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184, -1888, -1824, -2016, -1952, -1632, -1568, -1760, -1696,
  -688, -656, -752, -720, -560, -528, -624, -592, -944, -912, -1008, -976, -816, -784, -880, -848,
  5504, 5248, 6016, 5760, 4480, 4224, 4992, 4736, 7552, 7296, 8064, 7808, 6528, 6272, 7040, 6784,
  2752, 2624, 3008, 2880, 2240, 2112, 2496, 2368, 3776, 3648, 4032, 3904, 3264, 3136, 3520, 3392,
  22016, 20992, 24064, 23040, 17920, 16896, 19968, 18944, 30208, 29184, 32256, 31232, 26112, 25088, 28160, 27136,
  11008, 10496, 12032, 11520, 8960, 8448, 9984, 9472, 15104, 14592, 16128, 15616, 13056, 12544, 14080, 13568,
  344, 328, 376, 360, 280, 264, 312, 296, 472, 456, 504, 488, 408, 392, 440, 424,
  88, 72, 120, 104, 24, 8, 56, 40, 216, 200, 248, 232, 152, 136, 184, 168,
  1376, 1312, 1504, 1440, 1120, 1056, 1248, 1184, 1888, 1824, 2016, 1952, 1632, 1568, 1760, 1696,
  688, 656, 752, 720, 560, 528, 624, 592, 944, 912, 1008, 976, 816, 784, 880, 848
]

t.test('s16: little-endian signed, scaled by 1/32768', async t => {
  t.same(decodeAll('s16', [0x00, 0x00, 0x01, 0x00, 0xff, 0xff, 0x00, 0x80, 0xff, 0x7f, 0x00, 0x40]),
    [[0, 1 / 32768, -1 / 32768, -1, 32767 / 32768, 0.5]])
})

t.test('u8: offset binary, 128 is silence', async t => {
  t.same(decodeAll('u8', [128, 0, 255, 192, 64]), [[0, -1, 127 / 128, 0.5, -0.5]])
})

t.test('s24: three bytes little-endian, sign-extended', async t => {
  t.same(decodeAll('s24', [
    0x00, 0x00, 0x00,
    0x01, 0x00, 0x00,
    0xff, 0xff, 0xff,
    0x00, 0x00, 0x80,
    0xff, 0xff, 0x7f,
    0x00, 0x00, 0x40,
    0x56, 0x34, 0x12
  ]), [[0, 1 / 8388608, -1 / 8388608, -1, Math.fround(8388607 / 8388608), 0.5, Math.fround(0x123456 / 8388608)]])
})

t.test('s32: little-endian signed, scaled by 2^-31', async t => {
  t.same(decodeAll('s32', [
    0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x80,
    0xff, 0xff, 0xff, 0x7f,
    0x00, 0x00, 0x00, 0xc0
  ]), [[0, Math.fround(2 ** -31), -1, Math.fround(2147483647 / 2147483648), -0.5]])
})

t.test('f32 and f64: IEEE little-endian, clamped to [-1, 1]', async t => {
  const values = [0, 0.25, -0.5, 1, -1, 1.5, -2, 0.1]
  const expected = [0, 0.25, -0.5, 1, -1, 1, -1, Math.fround(0.1)]
  const f32 = new Uint8Array(new Float32Array(values).buffer)
  const f64 = new Uint8Array(new Float64Array(values).buffer)
  t.same(decodeAll('f32', Array.from(f32)), [expected])
  t.same(decodeAll('f64', Array.from(f64)), [expected])
})

t.test('mu-law and A-law decode every byte as sox does', async t => {
  const all = Array.from({ length: 256 }, (_, i) => i)
  const [mulaw] = decodeAll('mulaw', all)
  const [alaw] = decodeAll('alaw', all)
  t.same(mulaw?.map(v => v * 32768), SOX_MULAW)
  t.same(alaw?.map(v => v * 32768), SOX_ALAW)
  // The usual landmarks: 0xFF is mu-law silence, 0x00 its negative full scale (-32124/32768).
  t.equal(mulaw?.[0xff], 0)
  t.ok(Math.abs((mulaw?.[0x00] ?? 0) - -0.9804) < 1e-4)
  t.ok(Math.abs((alaw?.[0xd5] ?? 1) - 8 / 32768) < 1e-9, 'A-law 0xD5 is the smallest positive step')
})

t.test('stereo and multichannel frames are deinterleaved', async t => {
  const frames = 5
  const bytes = new Uint8Array(frames * 2 * 2)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < frames; i++) {
    view.setInt16(i * 4, 1000 * (i + 1), true) // left
    view.setInt16(i * 4 + 2, -100 * (i + 1), true) // right
  }
  const [left, right] = new PcmDecoder(format('s16', 2)).push(bytes)
  t.same(Array.from(left ?? []), [1, 2, 3, 4, 5].map(i => 1000 * i / 32768))
  t.same(Array.from(right ?? []), [1, 2, 3, 4, 5].map(i => -100 * i / 32768))

  // Three channels of s24: channel c of frame i holds (c + 1) * 1000 + i.
  const s24 = []
  for (let i = 0; i < 4; i++) {
    for (let c = 0; c < 3; c++) {
      const v = (c + 1) * 1000 + i
      s24.push(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff)
    }
  }
  const channels = decodeAll('s24', s24, 3)
  t.equal(channels.length, 3)
  for (let c = 0; c < 3; c++) t.same(channels[c], [0, 1, 2, 3].map(i => ((c + 1) * 1000 + i) / 8388608), `channel ${c}`)
})

// A plain, slow decoder to check the fast one against on random bytes.
function referenceSample (kind: Kind, view: DataView, offset: number): number {
  const clamp = (v: number): number => Number.isFinite(v) ? Math.max(-1, Math.min(1, v)) : 0
  switch (kind) {
    case 'u8': return (view.getUint8(offset) - 128) / 128
    case 's16': return view.getInt16(offset, true) / 32768
    case 's24': {
      const unsigned = view.getUint8(offset) + view.getUint8(offset + 1) * 256 + view.getUint8(offset + 2) * 65536
      return (unsigned >= 8388608 ? unsigned - 16777216 : unsigned) / 8388608
    }
    case 's32': return view.getInt32(offset, true) / 2147483648
    case 'f32': return clamp(view.getFloat32(offset, true))
    case 'f64': return clamp(view.getFloat64(offset, true))
    case 'mulaw': return (SOX_MULAW[view.getUint8(offset)] as number) / 32768
    case 'alaw': return (SOX_ALAW[view.getUint8(offset)] as number) / 32768
  }
}

t.test('random bytes decode like a plain reference decoder, for every format and 1 to 3 channels', async t => {
  const next = seededRandom(7)
  for (const kind of KINDS) {
    for (let channels = 1; channels <= 3; channels++) {
      const fmt = format(kind, channels)
      const frameBytes = bytesPerFrame(fmt)
      const bytes = new Uint8Array(frameBytes * 50)
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256)
      const view = new DataView(bytes.buffer)
      const decoded = new PcmDecoder(fmt).push(bytes)
      let mismatches = 0
      for (let i = 0; i < 50; i++) {
        for (let c = 0; c < channels; c++) {
          const expected = Math.fround(referenceSample(kind, view, i * frameBytes + c * (frameBytes / channels)))
          if (decoded[c]?.[i] !== expected) mismatches++
        }
      }
      t.equal(mismatches, 0, `${kind} x${channels}`)
    }
  }
})

t.test('a stream split at every byte offset decodes exactly as one push', async t => {
  const next = seededRandom(11)
  for (const kind of KINDS) {
    for (const channels of [1, 2, 3]) {
      const fmt = format(kind, channels)
      const frameBytes = bytesPerFrame(fmt)
      const frames = 7
      // A backing buffer one byte longer, used from offset 1, so typed-array fast paths meet odd alignment too.
      const backing = new Uint8Array(frames * frameBytes + 1)
      for (let i = 0; i < backing.length; i++) backing[i] = Math.floor(next() * 256)
      const bytes = backing.subarray(1)
      const whole = new PcmDecoder(fmt).push(bytes)

      let failures = 0
      for (let split = 0; split <= bytes.length; split++) {
        const decoder = new PcmDecoder(fmt)
        const first = decoder.push(bytes.subarray(0, split))
        if (decoder.pendingBytes !== split % frameBytes || decoder.framesDecoded !== Math.floor(split / frameBytes)) failures++
        const second = decoder.push(bytes.subarray(split))
        if (decoder.pendingBytes !== 0 || decoder.framesDecoded !== frames) failures++
        for (let c = 0; c < channels; c++) {
          const joined = concatSamples([first[c] ?? new Float32Array(0), second[c] ?? new Float32Array(0)])
          const diff = firstDifference(joined, whole[c] ?? new Float32Array(0))
          if (diff !== null) {
            failures++
            t.fail(`${kind} x${channels} split at ${split}, channel ${c}: ${diff}`)
          }
        }
      }
      t.equal(failures, 0, `${kind} x${channels}: ${bytes.length + 1} two-piece splits`)

      // Three pieces at every pair of cut points, and one byte at a time.
      for (let a = 0; a <= bytes.length; a++) {
        for (let b = a; b <= bytes.length; b++) {
          const decoder = new PcmDecoder(fmt)
          const parts = [bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)].map(p => decoder.push(p))
          for (let c = 0; c < channels; c++) {
            if (firstDifference(concatSamples(parts.map(p => p[c] ?? new Float32Array(0))), whole[c] ?? new Float32Array(0)) !== null) failures++
          }
        }
      }
      const byByte = new PcmDecoder(fmt)
      const bytewise = Array.from(bytes, (_, i) => byByte.push(bytes.subarray(i, i + 1)))
      for (let c = 0; c < channels; c++) {
        if (firstDifference(concatSamples(bytewise.map(p => p[c] ?? new Float32Array(0))), whole[c] ?? new Float32Array(0)) !== null) failures++
      }
      t.equal(failures, 0, `${kind} x${channels}: three-piece and byte-by-byte`)
    }
  }
})

t.test('pushes larger than a block, at odd and even offsets, decode like the reference decoder', async t => {
  // 11000 frames of 3 channels is 33000 samples: several of the decoder's 8192-sample blocks.
  const next = seededRandom(23)
  for (const kind of KINDS) {
    for (const channels of [1, 2, 3]) {
      const fmt = format(kind, channels)
      const frameBytes = bytesPerFrame(fmt)
      const frames = 11000
      const backing = new Uint8Array(frames * frameBytes + 1)
      for (let i = 0; i < backing.length; i++) backing[i] = Math.floor(next() * 256)
      for (const offset of [0, 1]) {
        const bytes = backing.subarray(offset, offset + frames * frameBytes)
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
        const decoded = new PcmDecoder(fmt).push(bytes)
        let mismatches = 0
        for (let i = 0; i < frames; i++) {
          for (let c = 0; c < channels; c++) {
            if (decoded[c]?.[i] !== Math.fround(referenceSample(kind, view, i * frameBytes + c * (frameBytes / channels)))) mismatches++
          }
        }
        t.equal(mismatches, 0, `${kind} x${channels} from offset ${offset}`)
      }
    }
  }
})

t.test('output arrays: new and whole by default, reused from push to push with reuseOutput', async t => {
  const next = seededRandom(31)
  for (const kind of KINDS) {
    for (const channels of [1, 2]) {
      const fmt = format(kind, channels)
      const frameBytes = bytesPerFrame(fmt)
      const bytes = new Uint8Array(frameBytes * 3000)
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256)
      // Uneven pieces, the largest first, some splitting a frame.
      const cuts = [0, frameBytes * 1500 + 3, frameBytes * 1501, frameBytes * 2000 + 1, frameBytes * 2000 + 6, bytes.length]
      const fresh = new PcmDecoder(fmt)
      const reused = new PcmDecoder(fmt, { reuseOutput: true })
      let differences = 0
      const buffers = new Set<ArrayBufferLike>()
      const freshOut: Float32Array[][] = []
      for (let k = 1; k < cuts.length; k++) {
        const piece = bytes.subarray(cuts[k - 1], cuts[k])
        const a = fresh.push(piece)
        const b = reused.push(piece)
        freshOut.push(a)
        for (let c = 0; c < channels; c++) {
          const mine = a[c] as Float32Array
          if (firstDifference(mine, b[c] as Float32Array) !== null) differences++
          // Fresh arrays own their whole buffer (the model pool can transfer it as is).
          if (mine.byteOffset !== 0 || mine.byteLength !== mine.buffer.byteLength) differences++
          if (b[c]?.length !== 0) buffers.add((b[c] as Float32Array).buffer)
        }
      }
      t.equal(differences, 0, `${kind} x${channels}: the same samples either way`)
      t.equal(buffers.size, channels, `${kind} x${channels}: one kept array per channel (the first push was the largest)`)
      t.equal(new Set(freshOut.flat().map((a) => a.buffer)).size, freshOut.flat().length, 'fresh pushes never share a buffer')
    }
  }
  // A push over the reuse limit (32768 frames) gets new arrays; the kept ones stay as they were.
  const decoder = new PcmDecoder(format('s16', 1), { reuseOutput: true })
  const small = decoder.push(new Uint8Array(200))
  const huge = decoder.push(new Uint8Array(2 * 40000).fill(0x40))
  t.not(huge[0]?.buffer, small[0]?.buffer, 'a huge push does not grow the kept array')
  t.equal(huge[0]?.length, 40000)
  t.equal(decoder.push(new Uint8Array(200))[0]?.buffer, small[0]?.buffer, 'the kept array is used again after it')
})

t.test('an incomplete frame stays pending and is counted, not dropped', async t => {
  const decoder = new PcmDecoder(format('s24', 2)) // 6-byte frames
  let out = decoder.push(new Uint8Array([0x00, 0x00, 0x40, 0x00]))
  t.same(out.map(ch => ch.length), [0, 0])
  t.equal(decoder.pendingBytes, 4)
  out = decoder.push(new Uint8Array([0x00]))
  t.equal(decoder.pendingBytes, 5)
  t.equal(decoder.framesDecoded, 0)
  out = decoder.push(new Uint8Array([0xc0, 0x01, 0x00, 0x00]))
  t.same(out.map(ch => Array.from(ch)), [[0.5], [-0.5]])
  t.equal(decoder.pendingBytes, 3)
  t.equal(decoder.framesDecoded, 1)
  t.same(decoder.push(new Uint8Array(0)).map(ch => ch.length), [0, 0])
  t.equal(decoder.pendingBytes, 3)
})

t.test('NaN and Inf become 0 and are counted', async t => {
  for (const kind of ['f32', 'f64'] as const) {
    // Interleaved left/right: left gets 0.5, Inf, -Inf; right gets NaN, -0.25, 2.
    const values = [0.5, Number.NaN, Number.POSITIVE_INFINITY, -0.25, Number.NEGATIVE_INFINITY, 2]
    const bytes = new Uint8Array((kind === 'f32' ? new Float32Array(values) : new Float64Array(values)).buffer)
    const decoder = new PcmDecoder(format(kind, 2))
    // Split mid-sample so the carried frame is checked too.
    const a = decoder.push(bytes.subarray(0, 5))
    const b = decoder.push(bytes.subarray(5))
    t.same([0, 1].map(c => Array.from(concatSamples([a[c] as Float32Array, b[c] as Float32Array]))), [[0.5, 0, 0], [0, -0.25, 1]], kind)
    t.equal(decoder.nonFiniteSamples, 3, `${kind}: three non-finite samples counted, the clamped 2 is not`)
  }
})

t.test('the decoder refuses an unsupported format', async t => {
  t.throws(() => new PcmDecoder({ channels: 1, sample_rate: 16000, bit_depth: 12, is_float: false }), /bit_depth/)
  t.throws(() => new PcmDecoder({ channels: 0, sample_rate: 16000, bit_depth: 16, is_float: false }), /channels/)
})

t.test('describeFormatProblem accepts every supported format', async t => {
  for (const kind of KINDS) t.equal(describeFormatProblem(format(kind, 8), 8), null, kind)
  t.equal(describeFormatProblem({ channels: 1, sample_rate: 8000, bit_depth: 16, is_float: false }, 1), null)
  t.equal(describeFormatProblem({ channels: 2, sample_rate: 192000, bit_depth: 24, is_float: false, encoding: 'pcm' }, 8), null)
})

t.test('describeFormatProblem names the field, the value and what is accepted', async t => {
  const base: AudioFormat = { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }
  const cases: Array<[string, AudioFormat, string, RegExp[]]> = [
    ['0 channels', { ...base, channels: 0 }, 'format.channels', [/\b0\b/, /1 to 8/]],
    ['9 channels with max 8', { ...base, channels: 9 }, 'format.channels', [/\b9\b/, /1 to 8/]],
    ['1.5 channels', { ...base, channels: 1.5 }, 'format.channels', [/1\.5/, /integer/]],
    ['7999 Hz', { ...base, sample_rate: 7999 }, 'format.sample_rate', [/7999/, /8000 to 192000 Hz/]],
    ['192001 Hz', { ...base, sample_rate: 192001 }, 'format.sample_rate', [/192001/, /8000 to 192000 Hz/]],
    ['bit_depth 12', { ...base, bit_depth: 12 }, 'format.bit_depth', [/\b12\b/, /8 \(unsigned\), 16, 24 or 32/, /32 or 64 with is_float/]],
    ['float with bit_depth 16', { ...base, is_float: true }, 'format.bit_depth', [/\b16\b/, /is_float true/, /32 or 64/]],
    ['mulaw with bit_depth 16', { ...base, encoding: 'mulaw' }, 'format.bit_depth', [/\b16\b/, /mulaw/, /accepted 8/]],
    ['alaw as float', { ...base, bit_depth: 8, is_float: true, encoding: 'alaw' }, 'format.is_float', [/alaw/, /accepted false/]],
    // A client that skips schema validation (query parameters) can send anything.
    ['unknown encoding', { ...base, encoding: 'opus' as 'pcm' }, 'format.encoding', [/opus/, /'pcm'.*'mulaw'.*'alaw'/]]
  ]
  for (const [name, fmt, field, patterns] of cases) {
    const problem = describeFormatProblem(fmt, 8)
    t.equal(problem?.field, field, `${name}: field`)
    t.match(problem?.message ?? '', new RegExp(`^${field.replace('.', '\\.')} `), `${name}: message starts with the field`)
    for (const pattern of patterns) t.match(problem?.message ?? '', pattern, `${name}: ${String(pattern)}`)
    t.match(problem?.message ?? '', /accepted/, `${name}: says what is accepted`)
  }
  t.match(describeFormatProblem({ ...base, channels: 2 }, 1)?.message, /accepted 1$/)
})

t.test('bytesPerFrame is channels x bytes per sample', async t => {
  t.equal(bytesPerFrame(format('s16', 2)), 4)
  t.equal(bytesPerFrame(format('s24', 2)), 6)
  t.equal(bytesPerFrame(format('f64', 3)), 24)
  t.equal(bytesPerFrame(format('mulaw', 1)), 1)
  t.equal(bytesPerFrame(format('u8', 8)), 8)
})
