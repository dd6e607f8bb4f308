import t, { type Test } from 'tap'
import type { ErrorEvent, SegmentEvent, StreamEvent } from '../../schemas/events.ts'
import { Session } from '../../src/core/session.ts'
import { collector, fakeServices, fastModel, flakyModel } from '../helpers/fake-services.ts'
import { randomChunks, synth, toS16 } from '../helpers/signals.ts'

const segments = (events: StreamEvent[], channel?: number): SegmentEvent[] =>
  events.filter((e): e is SegmentEvent => e.type === 'segment' && (channel === undefined || e.channel === channel))
const errors = (events: StreamEvent[]): ErrorEvent[] => events.filter((e): e is ErrorEvent => e.type === 'error')

// Segments and error spans of one channel must tile [0, total) in order, with no gap or overlap.
function assertTiles (t: Test, spans: Array<{ start_time: number, end_time: number }>, totalSeconds: number): void {
  let at = 0
  for (const span of spans) {
    t.equal(span.start_time, at, `span starts where the previous ended (${at})`)
    at = span.end_time
  }
  t.equal(at, totalSeconds, 'spans cover the whole stream')
}

t.test('simple mode, fast model: every sample is counted, segments tile the stream in order', async (t) => {
  const rate = 44100
  const left = synth([{ seconds: 2.3, tone: 440 }], rate)
  const right = synth([{ seconds: 2.3, tone: 880 }], rate)
  const { events, emit } = collector()
  const session = new Session({ mode: 'simple', format: { channels: 2, sample_rate: rate, bit_depth: 16, is_float: false }, interimResults: false, services: fakeServices(fastModel()), emit })
  for (const chunk of randomChunks(toS16([left, right]), 3000)) session.pushAudio(chunk)
  const end = await session.finish()
  const expected = Math.round(left.length * 16000 / rate)
  for (const channel of [0, 1]) {
    const own = segments(events, channel)
    t.ok(own.length >= 2, 'several inferences ran')
    t.equal(own.reduce((n, s) => n + (s.count as number), 0), expected, `channel ${channel}: every resampled sample reached the model`)
    t.notOk(own.some((s) => 'is_final' in s), 'simple mode has no is_final')
    assertTiles(t, own, expected / 16000)
  }
  t.same(end.samples_received, [left.length, left.length])
  t.equal(end.seconds_received[0], left.length / rate)
  t.equal(events.at(-1)?.type, 'end', 'end comes last')
  t.equal(session.state, 'ended')
})

t.test('simple mode merges audio queued while inferences are in flight', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'simple', format: { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }, interimResults: false, services: fakeServices(fastModel(), { simple_max_in_flight: 1 }), emit })
  const bytes = toS16([synth([{ seconds: 3, tone: 300 }], 16000)])
  for (let at = 0; at < bytes.length; at += 640) session.pushAudio(bytes.subarray(at, at + 640)) // 20 ms frames, all at once
  await session.finish()
  const own = segments(events)
  t.ok(own.length <= 3, `150 frames merged into ${own.length} inferences`)
  t.equal(own.reduce((n, s) => n + (s.count as number), 0), 48000)
})

t.test('simple mode, flaky model: errors are reported per span, the stream still ends and accounts for all audio', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'simple', format: { channels: 1, sample_rate: 8000, bit_depth: 16, is_float: false }, interimResults: false, services: fakeServices(flakyModel(3), { simple_max_in_flight: 1 }), emit })
  const bytes = toS16([synth([{ seconds: 2, tone: 300 }], 8000)])
  for (let at = 0; at < bytes.length; at += 320) {
    session.pushAudio(bytes.subarray(at, at + 320))
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  const end = await session.finish()
  const failed = errors(events)
  t.ok(failed.length > 0, 'some inferences failed')
  t.ok(failed.every((e) => e.code === 'inference_failed' && e.message.includes('dummy failure')))
  const spans = events.filter((e): e is SegmentEvent | ErrorEvent => e.type === 'segment' || e.type === 'error')
    .map((e) => ({ start_time: e.start_time as number, end_time: e.end_time as number }))
  assertTiles(t, spans, 2)
  t.equal(end.errors, failed.length)
})

t.test('segmented mode: active, interims, inactive and one final per utterance, in order', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'segmented', format: { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }, interimResults: true, services: fakeServices(fastModel()), emit })
  const audio = synth([{ seconds: 1 }, { seconds: 2, tone: 300 }, { seconds: 1 }, { seconds: 1.2, tone: 500 }, { seconds: 1 }], 16000)
  // Streamed in 100 ms chunks with a pause after each, as a live client would.
  const bytes = toS16([audio])
  for (let at = 0; at < bytes.length; at += 3200) {
    session.pushAudio(bytes.subarray(at, at + 3200))
    await new Promise((resolve) => setTimeout(resolve, 15))
  }
  const end = await session.finish()
  const types = events.map((e) => e.type === 'segment' ? (e.is_final === true ? 'final' : 'interim') : e.type)
  const compact = types.filter((type, i) => type !== 'interim' || types[i - 1] !== 'interim')
  t.same(compact, ['active', 'interim', 'inactive', 'final', 'active', 'interim', 'inactive', 'final', 'end'])
  const finals = segments(events).filter((s) => s.is_final === true)
  t.equal(finals.length, 2)
  const truth = [[1, 3], [4, 5.2]]
  finals.forEach((segment, i) => {
    const [start, stop] = truth[i] as [number, number]
    t.ok(Math.abs(segment.start_time - start) < 0.1, `final ${i} starts near ${start} (${segment.start_time})`)
    t.ok(Math.abs(segment.end_time - stop) < 0.1, `final ${i} ends near ${stop} (${segment.end_time})`)
    t.equal(segment.count, Math.round((segment.end_time - segment.start_time) * 16000), 'the model saw exactly the utterance')
  })
  const interims = segments(events).filter((s) => s.is_final === false)
  t.ok(interims.length >= 3, `interims every 500 ms of speech (${interims.length})`)
  t.same(end.segments, [2])
  t.same(end.interim_segments, [interims.length])
})

t.test('segmented mode: speech open at stop is finalised; no interims unless asked', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'segmented', format: { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }, interimResults: false, services: fakeServices(fastModel()), emit })
  session.pushAudio(toS16([synth([{ seconds: 0.5 }, { seconds: 1.5, tone: 300 }], 16000)]))
  await session.finish()
  t.same(events.map((e) => e.type), ['active', 'inactive', 'segment', 'end'])
  const final = segments(events)[0] as SegmentEvent
  t.equal(final.end_time, 2, 'the open utterance runs to the end of the audio')
  t.equal(final.is_final, true)
})

t.test('segmented mode: an utterance over the maximum length is finalised and a new one begins', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'segmented', format: { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }, interimResults: false, services: fakeServices(fastModel(), { max_utterance_seconds: 1 }), emit })
  session.pushAudio(toS16([synth([{ seconds: 0.2 }, { seconds: 3.5, tone: 300 }, { seconds: 0.8 }], 16000)]))
  await session.finish()
  const finals = segments(events)
  t.ok(finals.length >= 3, `3.5 s of speech in 1 s pieces (${finals.length})`)
  t.ok(finals.every((s) => s.end_time - s.start_time <= 1.0001), 'no piece is longer than the maximum')
  for (let i = 1; i < finals.length; i++) t.equal(finals[i]?.start_time, finals[i - 1]?.end_time, 'pieces are contiguous')
})

t.test('segmented mode with two channels keeps them apart', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'segmented', format: { channels: 2, sample_rate: 48000, bit_depth: 16, is_float: false }, interimResults: false, services: fakeServices(fastModel()), emit })
  const left = synth([{ seconds: 0.5 }, { seconds: 1, tone: 300 }, { seconds: 2 }], 48000)
  const right = synth([{ seconds: 2 }, { seconds: 1, tone: 300 }, { seconds: 0.5 }], 48000)
  for (const chunk of randomChunks(toS16([left, right]), 5000)) session.pushAudio(chunk)
  await session.finish()
  const [l, r] = [segments(events, 0), segments(events, 1)]
  t.equal(l.length, 1)
  t.equal(r.length, 1)
  t.ok(Math.abs((l[0]?.start_time ?? 0) - 0.5) < 0.1)
  t.ok(Math.abs((r[0]?.start_time ?? 0) - 2) < 0.1)
})

t.test('a crashed worker yields one internal error for that segment and the stream goes on', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'segmented', format: { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }, interimResults: false, services: fakeServices(flakyModel(1, 'internal')), emit })
  session.pushAudio(toS16([synth([{ seconds: 0.5 }, { seconds: 1, tone: 300 }, { seconds: 1 }, { seconds: 1, tone: 300 }, { seconds: 1 }], 16000)]))
  const end = await session.finish()
  const failed = errors(events)
  t.equal(failed.length, 2, 'one error per utterance')
  t.same(failed.map((e) => [e.code, e.message]), [['internal', 'Internal server error'], ['internal', 'Internal server error']])
  t.equal(end.errors, 2)
  t.equal(events.at(-1)?.type, 'end')
})

t.test('a frame split across pushes is reassembled; trailing bytes of a partial frame are reported', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'simple', format: { channels: 2, sample_rate: 16000, bit_depth: 16, is_float: false }, interimResults: false, services: fakeServices(fastModel()), emit })
  const bytes = toS16([synth([{ seconds: 0.1, tone: 300 }], 16000), synth([{ seconds: 0.1, tone: 300 }], 16000)])
  for (let at = 0; at < bytes.length; at += 3) session.pushAudio(bytes.subarray(at, at + 3))
  session.pushAudio(new Uint8Array([1, 2, 3]))
  const end = await session.finish()
  t.same(end.samples_received, [1600, 1600], 'every whole frame decoded')
  const truncated = errors(events)
  t.equal(truncated.length, 1)
  t.equal(truncated[0]?.code, 'truncated_audio')
  t.match(truncated[0]?.message, /3 byte\(s\).*4 bytes/)
})

t.test('abort stops all events and closes the session', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'simple', format: { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }, interimResults: false, services: fakeServices(fastModel()), emit })
  session.pushAudio(toS16([synth([{ seconds: 1, tone: 300 }], 16000)]))
  session.abort()
  t.equal(await session.closed, 'aborted')
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.same(events, [], 'nothing emitted after abort')
})

// Event types in order, finals and interims told apart.
const kinds = (events: StreamEvent[]): string[] =>
  events.map((e) => e.type === 'segment' ? (e.is_final === true ? 'final' : 'interim') : e.type)
const times = (events: StreamEvent[], type: 'active' | 'inactive'): number[] =>
  events.flatMap((e) => e.type === type ? [e.time] : [])
const mono16k = { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false } as const

t.test('segmented mode: a too-long utterance is cut at the longest pause before the limit, else at the limit', async (t) => {
  const { events, emit } = collector()
  // Limit 2 s, so the window is its last 1 s. Speech from 0.162 (frame 6, at 0.192, minus the 30 ms pad): the
  // limit is at 2.162 and the window [1.162, 2.162] holds a 0.1 s pause (3 silent frames, 47-49)
  // and a 0.2 s one at [1.9, 2.1] (frames 60-64 silent): the cut is the middle of the longer one,
  // (60 + 2.5) * 512 samples = 2.0 s. The next piece has no pause in its window: cut at the limit.
  const session = new Session({ mode: 'segmented', format: mono16k, interimResults: false, services: fakeServices(fastModel(), { max_utterance_seconds: 2 }), emit })
  session.pushAudio(toS16([synth([{ seconds: 0.2 }, { seconds: 1.3, tone: 300 }, { seconds: 0.1 }, { seconds: 0.3, tone: 300 }, { seconds: 0.2 }, { seconds: 2, tone: 300 }, { seconds: 0.8 }], 16000)]))
  await session.finish()
  t.same(kinds(events), ['active', 'inactive', 'final', 'active', 'inactive', 'final', 'active', 'inactive', 'final', 'end'], 'inactive and active around every cut')
  const finals = segments(events)
  t.same(finals.map((s) => s.start_time), [0.162, 2, 4], 'pieces start at the speech start, then at each cut')
  t.same(finals.map((s) => s.end_time).slice(0, 2), [2, 4], 'cut mid-pause, then at the 2 s limit')
  t.same(times(events, 'inactive').slice(0, 2), [2, 4], 'inactive at each cut')
  t.same(times(events, 'active'), [0.162, 2, 4], 'active at each cut')
  for (const s of finals) t.equal(s.count, Math.round((s.end_time - s.start_time) * 16000), 'the model saw exactly the piece')
})

t.test('segmented mode: a cut in a pause that turns out to end the speech starts no new utterance', async (t) => {
  const { events, emit } = collector()
  // Speech [0.2, 2.0), then silence. The limit (2.162) falls 5 frames into the silence, so the
  // cut is in the middle of its frames inside the window (63-66): 2.08 s. Nothing after the cut
  // is speech, and the VAD ends the speech (at 2.046) with no new utterance.
  const session = new Session({ mode: 'segmented', format: mono16k, interimResults: true, services: fakeServices(fastModel(), { max_utterance_seconds: 2 }), emit })
  session.pushAudio(toS16([synth([{ seconds: 0.2 }, { seconds: 1.8, tone: 300 }, { seconds: 1 }], 16000)]))
  await session.finish()
  t.same(kinds(events).filter((k) => k !== 'interim'), ['active', 'inactive', 'final', 'end'])
  const [final] = segments(events).filter((s) => s.is_final === true)
  t.same([final?.start_time, final?.end_time], [0.162, 2.08])
  t.same(times(events, 'inactive'), [2.08])
})

t.test('segmented mode: after a cut in a pause still going at the limit, speech that resumes is announced at the cut', async (t) => {
  const { events, emit } = collector()
  // As above, but speech resumes after 0.2 s (less than min_silence_ms 300): one utterance to
  // the VAD, cut at 2.08; the second piece's active waits for the speech at 2.2 and says 2.08.
  const session = new Session({ mode: 'segmented', format: mono16k, interimResults: false, services: fakeServices(fastModel(), { max_utterance_seconds: 2 }), emit })
  session.pushAudio(toS16([synth([{ seconds: 0.2 }, { seconds: 1.8, tone: 300 }, { seconds: 0.2 }, { seconds: 1, tone: 300 }, { seconds: 1 }], 16000)]))
  await session.finish()
  t.same(kinds(events), ['active', 'inactive', 'final', 'active', 'inactive', 'final', 'end'])
  t.same(times(events, 'active'), [0.162, 2.08])
  const finals = segments(events)
  t.same(finals.map((s) => s.start_time), [0.162, 2.08], 'the pieces are contiguous')
  t.equal(finals[0]?.end_time, 2.08)
})

t.test('segmented finalize mid-utterance: the final ends at the audio received; later audio is a new utterance', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'segmented', format: mono16k, interimResults: false, services: fakeServices(fastModel()), emit })
  // 1.5 s = 24000 samples: 46 whole VAD frames and 448 samples of a 47th, which finalize must
  // not pad or drop. Audio sent right after the call (the rest of the tone) must not leak in.
  const audio = synth([{ seconds: 0.5 }, { seconds: 2, tone: 300 }, { seconds: 1 }], 16000)
  const bytes = toS16([audio])
  const split = 24000 * 2
  for (let at = 0; at < split; at += 640) session.pushAudio(bytes.subarray(at, Math.min(at + 640, split)))
  const finalized = session.finalizeRunners()
  session.pushAudio(bytes.subarray(split, split + 3200))
  await finalized
  // The audio sent after the call may already have started the next utterance: only the order counts.
  t.same(kinds(events).slice(0, 3), ['active', 'inactive', 'final'], 'by the time finalize resolves, the final for the audio so far is out')
  const [first] = segments(events)
  t.same([first?.start_time, first?.end_time], [0.45, 1.5], 'the final ends at the end of the audio received')
  t.same(times(events, 'inactive'), [1.5])
  t.equal(first?.count, 24000 - 7200, 'the model saw exactly that audio, the partial frame included')

  session.pushAudio(bytes.subarray(split + 3200))
  const end = await session.finish()
  t.same(kinds(events), ['active', 'inactive', 'final', 'active', 'inactive', 'final', 'end'])
  const second = segments(events)[1]
  t.equal(second?.start_time, 1.5, 'the next utterance begins where the finalised one ended')
  t.ok(Math.abs((second?.end_time ?? 0) - 2.5) < 0.1, `and ends with the speech (${second?.end_time})`)
  t.equal(second?.count, Math.round(((second?.end_time ?? 0) - 1.5) * 16000))
  t.same(end.samples_received, [audio.length], 'every sample was received')
  t.same(end.segments, [2])
})

t.test('segmented finalize: in silence nothing is emitted; speech just after it starts no earlier than the finalize point', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'segmented', format: mono16k, interimResults: false, services: fakeServices(fastModel()), emit })
  // Speech starts at 1.01 s: its padded start (0.98 s) would reach back before the finalize at 1.0.
  const bytes = toS16([synth([{ seconds: 1.01 }, { seconds: 1, tone: 300 }, { seconds: 1 }], 16000)])
  session.pushAudio(bytes.subarray(0, 32000))
  await session.finalizeRunners()
  t.same(events, [], 'no open utterance: nothing to finalise')
  await session.finalizeRunners()
  t.same(events, [], 'a second finalize at the same point is as empty')
  session.pushAudio(bytes.subarray(32000))
  await session.finish()
  t.same(kinds(events), ['active', 'inactive', 'final', 'end'])
  t.same(times(events, 'active'), [1], 'the start is clamped to the finalize point')
})

t.test('segmented finalize twice in one utterance: three finals that tile the speech', async (t) => {
  const { events, emit } = collector()
  const session = new Session({ mode: 'segmented', format: mono16k, interimResults: true, services: fakeServices(fastModel()), emit })
  const bytes = toS16([synth([{ seconds: 0.5 }, { seconds: 3, tone: 300 }, { seconds: 1 }], 16000)])
  const points = [1.2, 2.3].map((s) => s * 32000)
  session.pushAudio(bytes.subarray(0, points[0]))
  const first = session.finalizeRunners()
  session.pushAudio(bytes.subarray(points[0], points[1]))
  const second = session.finalizeRunners()
  session.pushAudio(bytes.subarray(points[1]))
  await first
  t.ok(segments(events).some((s) => s.is_final === true && s.end_time === 1.2), 'the first finalize resolves once its final is out')
  await second
  const end = await session.finish()
  const finals = segments(events).filter((s) => s.is_final === true)
  t.same(finals.map((s) => [s.start_time, s.end_time]).slice(0, 2), [[0.45, 1.2], [1.2, 2.3]])
  t.equal(finals[2]?.start_time, 2.3)
  t.same(times(events, 'active'), [0.45, 1.2, 2.3])
  t.same(times(events, 'inactive').slice(0, 2), [1.2, 2.3])
  const interims = segments(events).filter((s) => s.is_final === false)
  t.ok(interims.every((s) => finals.some((f) => f.start_time === s.start_time && s.end_time <= f.end_time)), 'every interim lies inside its own final')
  t.same(end.segments, [3])
})

t.test('simple finalize: the results for the audio so far come out, never merged with later audio', async (t) => {
  const { events, emit } = collector()
  // One inference in flight: audio arriving meanwhile is merged, which must stop at the finalize.
  const session = new Session({ mode: 'simple', format: mono16k, interimResults: false, services: fakeServices(fastModel(), { simple_max_in_flight: 1 }), emit })
  const bytes = toS16([synth([{ seconds: 2, tone: 300 }], 16000)])
  const split = 16000 * 2
  for (let at = 0; at < split; at += 640) session.pushAudio(bytes.subarray(at, at + 640))
  const finalized = session.finalizeRunners()
  for (let at = split; at < bytes.length; at += 640) session.pushAudio(bytes.subarray(at, at + 640))
  await finalized
  const before = segments(events).filter((s) => s.end_time <= 1)
  t.equal(before.reduce((n, s) => n + (s.count as number), 0), 16000, 'every result for the first second is out')
  t.ok(segments(events).every((s) => s.end_time <= 1 || s.start_time >= 1), 'no inference spans the finalize point')
  await session.finalizeRunners()
  t.equal(segments(events).reduce((n, s) => n + (s.count as number), 0), 32000, 'a finalize with everything queued waits for all of it')
  const end = await session.finish()
  assertTiles(t, segments(events), 2)
  t.same(end.samples_received, [32000])
})
