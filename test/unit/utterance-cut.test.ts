import t from 'tap'
import { cutWindowSamples, quietestPause, RecentProbabilities, recentFramesFor } from '../../src/audio/utterance-cut.ts'

const S = 0.9 // speech
const Q = 0.02 // silence
const T = 0.5 // the threshold

t.test('quietestPause: the middle of the longest run below the threshold', async (t) => {
  t.equal(quietestPause([S, S, Q, Q, Q, S], T), 3.5, 'frames 2..4: the middle of frame 3')
  t.equal(quietestPause([S, Q, Q, S, S, S], T), 2, 'an even run: between its two middle frames')
  t.equal(quietestPause([S, Q, S, Q, Q, Q, Q, S, Q, Q, S], T), 5, 'the longest of three runs')
  t.equal(quietestPause([S, 0.01, S, 0.45, 0.45, S], T), 4, 'length beats depth: a middling run of two over one deep frame')
})

t.test('quietestPause: ties go to the lowest mean, then to the later run', async (t) => {
  t.equal(quietestPause([S, 0.3, 0.3, S, 0.1, 0.2, S], T), 5, 'same length: the quieter run')
  t.equal(quietestPause([S, 0.1, 0.2, S, 0.2, 0.3, S], T), 2, 'the quieter run wins even when it is earlier')
  t.equal(quietestPause([S, Q, Q, S, Q, Q, S], T), 5, 'same length and mean: the later run (the longer piece)')
})

t.test('quietestPause: runs at either end of the window count, cut inside what is seen', async (t) => {
  t.equal(quietestPause([Q, Q, Q, S, S, S], T), 1.5, 'a pause that began before the window')
  t.equal(quietestPause([S, S, S, S, Q, Q], T), 5, 'a pause still going at the limit')
  t.equal(quietestPause([Q, Q, Q, Q], T), 2, 'all pause')
})

t.test('quietestPause: no frame below the threshold means no pause', async (t) => {
  t.equal(quietestPause([], T), null, 'an empty window')
  t.equal(quietestPause([S, S, 0.6, S], T), null, 'a dip that the VAD still calls speech is not a pause')
  t.equal(quietestPause([S, T, S], T), null, 'a frame at the threshold is speech, as in VadSegmenter')
  t.equal(quietestPause(Float32Array.from([S, 0.49, S]), T), 1.5, 'just below the threshold is a pause (hysteresis does not apply)')
})

t.test('the cut window: 3 s, or half the maximum length when that is shorter', async (t) => {
  t.equal(cutWindowSamples(30 * 16000), 3 * 16000)
  t.equal(cutWindowSamples(6 * 16000), 3 * 16000)
  t.equal(cutWindowSamples(4 * 16000), 2 * 16000)
  t.equal(cutWindowSamples(1 * 16000), 8000)
  t.equal(recentFramesFor(3 * 16000), 96, '94 frames of window (rounded up), the frame across the limit, one spare')
})

t.test('RecentProbabilities holds the last frames by absolute index, no more', async (t) => {
  const ring = new RecentProbabilities(4)
  t.same(ring.range(0, 10), { first: 0, probabilities: new Float32Array(0) }, 'nothing yet')
  for (let f = 0; f < 10; f++) ring.push(f / 10)
  t.equal(ring.frames, 10)
  const { first, probabilities } = ring.range(0, 10)
  t.equal(first, 6, 'only the last 4 are held')
  t.same(Array.from(probabilities), [0.6, 0.7, 0.8, 0.9].map(Math.fround))
  t.same(Array.from(ring.range(7, 9).probabilities), [0.7, 0.8].map(Math.fround), 'a range inside')
  t.same(ring.range(8, 20), { first: 8, probabilities: Float32Array.from([0.8, 0.9]) }, 'not past the frames pushed')
})
