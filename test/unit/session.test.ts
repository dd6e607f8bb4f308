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
