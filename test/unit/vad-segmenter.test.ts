import t from 'tap'
import { VadSegmenter, type VadBoundary, type VadSegmenterSettings } from '../../src/audio/vad-segmenter.ts'

// Frames are 512 samples at 16 kHz; 30 ms of pad = 480 samples; 100 ms of silence = 1600 samples,
// which VADIterator counts from the end of the first silent frame: the end comes on the 4th silent
// frame after it ((j - i) * 512 >= 1600 => j - i >= 4).
const F = 512
const base: VadSegmenterSettings = { threshold: 0.5, minSilenceMs: 100, speechPadMs: 30 }

function probs (...values: number[]): Float32Array {
  return Float32Array.from(values)
}
const S = 0.9 // speech
const Q = 0.05 // silence
const M = 0.4 // between threshold - 0.15 and threshold

t.test('start is padded, end comes once min silence has passed', async t => {
  const seg = new VadSegmenter(base)
  t.same(seg.push(probs(Q, Q, S, S)), [{ kind: 'start', sample: 2 * F - 480 }])
  t.equal(seg.speaking, true)
  // Silence from frame 4: frames 4..7 are not yet enough.
  t.same(seg.push(probs(Q, Q, Q, Q)), [])
  t.equal(seg.speaking, true)
  // Frame 8: 4 frames past the end of frame 4 = 2048 samples >= 1600.
  t.same(seg.push(probs(Q)), [{ kind: 'end', sample: 4 * F + 480 }])
  t.equal(seg.speaking, false)
  t.same(seg.push(probs(Q, Q, Q)), [])
})

t.test('the exact min silence boundary (VADIterator counts from the end of the first silent frame)', async t => {
  // 2048 samples = 128 ms: frames i..i+4 are silent, the end comes on frame i+4 and not before.
  const seg = new VadSegmenter({ ...base, minSilenceMs: 128 })
  t.same(seg.push(probs(S, Q, Q, Q, Q)), [{ kind: 'start', sample: 0 }])
  t.same(seg.push(probs(Q)), [{ kind: 'end', sample: F + 480 }])
})

t.test('start padding does not go below sample 0', async t => {
  const seg = new VadSegmenter(base)
  t.same(seg.push(probs(S)), [{ kind: 'start', sample: 0 }])
})

t.test('a dip shorter than min silence does not split speech', async t => {
  const seg = new VadSegmenter(base)
  const got = seg.push(probs(Q, S, S, Q, Q, Q, S, S, Q, Q, Q, Q, Q))
  t.same(got, [{ kind: 'start', sample: F - 480 }, { kind: 'end', sample: 8 * F + 480 }])
})

t.test('hysteresis: between the thresholds neither starts speech nor counts as silence', async t => {
  const seg = new VadSegmenter(base)
  t.same(seg.push(probs(M, M, M, M)), [], 'no start below threshold')
  t.same(seg.push(probs(S)), [{ kind: 'start', sample: 4 * F - 480 }])
  t.same(seg.push(probs(M, M, M, M, M, M, M, M, M, M)), [], 'still speaking')
  t.equal(seg.speaking, true)
  // A middling frame inside a silence run neither ends nor restarts the run: the end is measured
  // from the first silent frame (15).
  t.same(seg.push(probs(Q, M, Q, Q)), [])
  t.same(seg.push(probs(Q)), [{ kind: 'end', sample: 15 * F + 480 }])
})

t.test('a probability at the threshold is speech; one between the thresholds ends nothing', async t => {
  const seg = new VadSegmenter({ threshold: 0.5, minSilenceMs: 0, speechPadMs: 0 })
  t.same(seg.push(probs(0.5)), [{ kind: 'start', sample: 0 }])
  t.same(seg.push(probs(0.375)), [])
  t.same(seg.push(probs(0.3)), [{ kind: 'end', sample: 2 * F }])
})

t.test('a start never goes below the previous end', async t => {
  // minSilence 0: the end comes on the first silent frame, and the next start's pad would reach
  // back before it.
  const seg = new VadSegmenter({ threshold: 0.5, minSilenceMs: 0, speechPadMs: 30 })
  t.same(seg.push(probs(S, S, Q, S)), [
    { kind: 'start', sample: 0 },
    { kind: 'end', sample: 2 * F + 480 },
    { kind: 'start', sample: 2 * F + 480 }
  ])
})

t.test('an end never points past the audio seen', async t => {
  const seg = new VadSegmenter({ threshold: 0.5, minSilenceMs: 0, speechPadMs: 100 })
  t.same(seg.push(probs(S, Q)), [{ kind: 'start', sample: 0 }, { kind: 'end', sample: 2 * F }])
})

t.test('chunking does not change the boundaries', async t => {
  const seq = [Q, Q, S, S, S, Q, Q, S, Q, Q, Q, Q, Q, Q, M, S, S, M, Q, Q, Q, Q, Q, Q, S, Q]
  const whole = new VadSegmenter(base).push(Float32Array.from(seq))
  const seg = new VadSegmenter(base)
  const oneByOne: VadBoundary[] = []
  for (const p of seq) oneByOne.push(...seg.push(probs(p)))
  t.same(oneByOne, whole)
  t.equal(whole.length, 5, 'start, end, start, end, start')
})

t.test('flush', async t => {
  await t.test('while speaking ends at the last sample seen', async t => {
    const seg = new VadSegmenter(base)
    seg.push(probs(Q, S, S))
    t.same(seg.flush(3 * F + 100), [{ kind: 'end', sample: 3 * F + 100 }])
    t.equal(seg.speaking, false)
    t.same(seg.flush(3 * F + 100), [], 'a second flush has nothing to end')
  })
  await t.test('during a silence run shorter than min silence ends where the run began', async t => {
    const seg = new VadSegmenter(base)
    seg.push(probs(Q, S, S, Q, Q))
    t.same(seg.flush(5 * F), [{ kind: 'end', sample: 3 * F + 480 }])
  })
  await t.test('never past the last sample', async t => {
    const seg = new VadSegmenter(base)
    seg.push(probs(S, Q))
    t.same(seg.flush(F + 10), [{ kind: 'end', sample: F + 10 }])
  })
  await t.test('while silent returns nothing', async t => {
    const seg = new VadSegmenter(base)
    seg.push(probs(Q, S, Q, Q, Q, Q, Q))
    t.equal(seg.speaking, false)
    t.same(seg.flush(7 * F), [])
  })
})

t.test('finalize: ends open speech mid-stream and pushing goes on', async t => {
  await t.test('while speaking: ends at the given sample, which may be inside a frame not yet pushed', async t => {
    const seg = new VadSegmenter(base)
    t.same(seg.push(probs(Q, S, S)), [{ kind: 'start', sample: F - 480 }])
    t.same(seg.finalize(3 * F + 100), [{ kind: 'end', sample: 3 * F + 100 }])
    t.equal(seg.speaking, false)
    // Frame 3 (which holds the finalize point) is speech: a new start, not before the point.
    t.same(seg.push(probs(S)), [{ kind: 'start', sample: 3 * F + 100 }])
    // Frame numbering went on: the silence after frame 3 ends it where it should.
    t.same(seg.push(probs(Q, Q, Q, Q, Q)), [{ kind: 'end', sample: 4 * F + 480 }])
  })
  await t.test('during a silence run: ends where the run began, as flush does', async t => {
    const seg = new VadSegmenter(base)
    seg.push(probs(Q, S, S, Q, Q))
    t.same(seg.finalize(5 * F), [{ kind: 'end', sample: 3 * F + 480 }])
    t.same(seg.push(probs(Q, Q, Q, Q)), [], 'the silence that follows ends nothing more')
  })
  await t.test('while silent: nothing to end, and a later start is not padded back before the point', async t => {
    const seg = new VadSegmenter(base)
    t.same(seg.push(probs(Q, Q)), [])
    t.same(seg.finalize(2 * F), [])
    t.same(seg.push(probs(S)), [{ kind: 'start', sample: 2 * F }], 'the pad (480) would have reached back to 2 * 512 - 480')
    const later = new VadSegmenter(base)
    later.push(probs(Q, Q))
    later.finalize(2 * F)
    t.same(later.push(probs(Q, Q, S)), [{ kind: 'start', sample: 4 * F - 480 }], 'a start well after the point is padded as usual')
  })
})

// A line-by-line port of Silero's VADIterator.__call__ (utils_vad.py), with its model replaced by
// the given probabilities, as the reference the segmenter must agree with.
function vadIterator (settings: VadSegmenterSettings, probabilities: number[]): VadBoundary[] {
  const minSilenceSamples = 16000 * settings.minSilenceMs / 1000
  const speechPadSamples = 16000 * settings.speechPadMs / 1000
  const window = 512
  let triggered = false
  let tempEnd = 0
  let currentSample = 0
  const out: VadBoundary[] = []
  for (const speechProb of probabilities) {
    currentSample += window
    if (speechProb >= settings.threshold && tempEnd) tempEnd = 0
    if (speechProb >= settings.threshold && !triggered) {
      triggered = true
      out.push({ kind: 'start', sample: Math.max(0, currentSample - speechPadSamples - window) })
      continue
    }
    if (speechProb < settings.threshold - 0.15 && triggered) {
      if (!tempEnd) tempEnd = currentSample
      if (currentSample - tempEnd < minSilenceSamples) continue
      out.push({ kind: 'end', sample: tempEnd + speechPadSamples - window })
      tempEnd = 0
      triggered = false
    }
  }
  return out
}

t.test('agrees with a port of Silero\'s VADIterator on random sequences', async t => {
  // A seeded generator (mulberry32) so a failure is reproducible. Settings where the two
  // deliberate differences (start clamped to the previous end, end clamped to audio seen) cannot
  // apply: 2 * pad < 512 samples + min silence.
  let seed = 12345
  const random = (): number => {
    seed = (seed + 0x6D2B79F5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  const settingsList: VadSegmenterSettings[] = [
    base,
    { threshold: 0.5, minSilenceMs: 500, speechPadMs: 30 },
    { threshold: 0.3, minSilenceMs: 250, speechPadMs: 60 }
  ]
  let boundaries = 0
  for (const settings of settingsList) {
    for (let run = 0; run < 50; run++) {
      // Runs of similar probabilities, like a real VAD's output.
      const seq: number[] = []
      while (seq.length < 400) {
        const p = Math.fround(random())
        const len = 1 + Math.floor(random() * 20)
        for (let i = 0; i < len; i++) seq.push(p)
      }
      const got = new VadSegmenter(settings).push(Float32Array.from(seq))
      const want = vadIterator(settings, seq)
      boundaries += want.length
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        t.same(got, want, `settings ${JSON.stringify(settings)} run ${run}`)
        return
      }
    }
  }
  t.ok(boundaries > 100, `the sequences produced boundaries to compare (${boundaries})`)
  t.pass('all sequences agree')
})

t.test('framesUntilEnd: exactly the silent frames that end the utterance', async t => {
  for (const minSilenceMs of [100, 128, 500]) {
    for (const silentSoFar of [0, 1, 3]) {
      const seg = new VadSegmenter({ ...base, minSilenceMs })
      t.equal(seg.framesUntilEnd, null, 'not speaking: null')
      seg.push(probs(S, S, ...Array<number>(silentSoFar).fill(Q)))
      const n = seg.framesUntilEnd
      if (n === null) {
        t.fail('speaking, so a number')
        continue
      }
      t.same(seg.push(probs(...Array<number>(n - 1).fill(Q))), [], `${minSilenceMs} ms, ${silentSoFar} silent: ${n - 1} more frames do not end it`)
      t.equal(seg.framesUntilEnd, 1, 'one frame to go')
      t.same(seg.push(probs(Q)).map((b) => b.kind), ['end'], `${minSilenceMs} ms, ${silentSoFar} silent: frame ${n} ends it`)
      t.equal(seg.framesUntilEnd, null)
    }
  }
})
