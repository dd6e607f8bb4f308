import t from 'tap'
import type { StreamEvent } from '../../schemas/events.ts'
import { ReplayFilter, type PublishedEntry } from '../../src/cluster/replay-filter.ts'

// What a new owner recognises as already published after a failover (the e2e side is
// test/e2e/cluster-failover.test.ts): by what an event is about, not by its position.

const seg = (channel: number, start: number, end: number, isFinal = true): StreamEvent => ({ type: 'segment', channel, start_time: start, end_time: end, is_final: isFinal })
const failed = (channel: number, start: number, end: number): StreamEvent => ({ type: 'error', channel, code: 'inference_failed', message: 'x', start_time: start, end_time: end, is_final: true })
const vad = (type: 'active' | 'inactive', channel: number, time: number): StreamEvent => ({ type, channel, time })
const ack = (bytes: number): StreamEvent => ({ type: 'ack', channel: null, bytes, seconds: [bytes / 32000] })
const finalized = (): StreamEvent => ({ type: 'finalized', channel: null, seconds: [1] })
const entries = (events: StreamEvent[]): PublishedEntry[] => events.map((event) => ({ event, kindCount: undefined }))

t.test('nothing published: every event is new', async (t) => {
  const filter = new ReplayFilter([])
  for (const event of [vad('active', 0, 0.5), seg(0, 0.4, 1.2, false), seg(0, 0.4, 2), ack(3200), finalized()]) t.notOk(filter.published(event), event.type)
})

t.test('final results: the utterances up to the last published final, whichever way their inference went', async (t) => {
  const filter = new ReplayFilter(entries([seg(0, 0.4, 2.0), failed(0, 3.1, 4.2), seg(1, 0.2, 1.0)]))
  t.ok(filter.published(seg(0, 0.4, 2.0)), 'the same final')
  t.ok(filter.published(seg(0, 3.1, 4.2)), 'a final for an utterance whose inference had failed')
  t.ok(filter.published(failed(0, 0.4, 2.0)), 'a failure for an utterance whose final was sent')
  t.ok(filter.published(seg(0, 3.132, 4.17)), 'the same utterance a frame off')
  t.notOk(filter.published(seg(0, 4.2, 6.0)), 'the next utterance, even if it starts where the last ended (a cut at the cap)')
  t.notOk(filter.published(seg(1, 1.6, 2.2)), 'per channel')
  t.notOk(filter.published(seg(2, 0.2, 1.0)), 'a channel with nothing published')
})

t.test('interim results: up to the latest audio time of the channel', async (t) => {
  const filter = new ReplayFilter(entries([seg(0, 0.4, 2.0), vad('active', 0, 3.0), seg(0, 3.0, 3.5, false)]))
  t.ok(filter.published(seg(0, 0.4, 1.1, false)), 'an interim of a finished utterance')
  t.ok(filter.published(seg(0, 3.0, 3.3, false)), 'an interim the previous owner had passed')
  t.notOk(filter.published(seg(0, 3.0, 3.8, false)), 'a later interim')
})

t.test('speech start and end, acks, events with no audio time', async (t) => {
  const filter = new ReplayFilter(entries([vad('active', 0, 0.5), vad('inactive', 0, 2.0), ack(6400), finalized(), vad('active', 0, 3.0)]))
  t.ok(filter.published(vad('active', 0, 0.5)))
  t.ok(filter.published(vad('inactive', 0, 2.0)))
  t.ok(filter.published(vad('active', 0, 3.032)), 'within a frame')
  t.notOk(filter.published(vad('inactive', 0, 4.0)))
  t.ok(filter.published(ack(3200)))
  t.ok(filter.published(ack(6400)))
  t.notOk(filter.published(ack(9600)))
  t.ok(filter.published(finalized()), 'the first finalized was published')
  t.notOk(filter.published(finalized()), 'the second was not')
  t.notOk(filter.published({ type: 'end', channel: null, seconds_received: [], samples_received: [], segments: [], interim_segments: [], interim_segments_dropped: [], bytes_received: 0, sha256: '', dropped: { truncated_audio: 0, max_duration: 0 }, errors: 0 }), 'end is never published before a failover')
})

t.test('counts of untimed events survive a trimmed events stream (the stored k)', async (t) => {
  const lost: StreamEvent = { type: 'error', channel: null, code: 'audio_lost', message: 'x' }
  // Only the last of three audio_lost errors is still kept, stored with k = 3.
  const filter = new ReplayFilter([{ event: lost, kindCount: 3 }])
  t.ok(filter.published(lost))
  t.ok(filter.published(lost))
  t.ok(filter.published(lost))
  t.notOk(filter.published(lost), 'the fourth is new')
  t.equal(filter.countOf(lost), 4, 'and is stored as the fourth of its kind')
})
