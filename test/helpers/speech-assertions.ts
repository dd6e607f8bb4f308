import type { Test } from 'tap'
import type { SegmentEvent, StreamEvent } from '../../schemas/events.ts'
import type { Fixture } from './fixtures.ts'

// The tolerance the issue sets against the fixtures' true speech regions.
export const START_TOLERANCE = 0.25
export const END_TOLERANCE = 0.35

export const finals = (events: StreamEvent[], channel: number): SegmentEvent[] =>
  events.filter((e): e is SegmentEvent => e.type === 'segment' && e.channel === channel && e.is_final === true)

// Segmented mode: one final segment per true utterance, on the right channel, within tolerance;
// active/inactive pair up with it.
export function assertSegmentedMatchesTruth (t: Test, events: StreamEvent[], fixture: Fixture): void {
  fixture.speech.forEach((regions, channel) => {
    const got = finals(events, channel)
    t.equal(got.length, regions.length, `${fixture.name} ch${channel}: one final per utterance (${JSON.stringify(got.map((s) => [s.start_time, s.end_time]))})`)
    regions.forEach(([start, end], i) => {
      const segment = got[i]
      if (segment === undefined) return
      t.ok(Math.abs(segment.start_time - start) <= START_TOLERANCE, `${fixture.name} ch${channel} #${i}: start ${segment.start_time.toFixed(3)} vs ${start}`)
      t.ok(Math.abs(segment.end_time - end) <= END_TOLERANCE, `${fixture.name} ch${channel} #${i}: end ${segment.end_time.toFixed(3)} vs ${end}`)
      t.equal(segment.count, Math.round((segment.end_time - segment.start_time) * 16000), 'the model saw the utterance')
    })
    const active = events.filter((e) => e.type === 'active' && e.channel === channel).length
    const inactive = events.filter((e) => e.type === 'inactive' && e.channel === channel).length
    t.equal(active, regions.length, 'one active per utterance')
    t.equal(inactive, regions.length, 'one inactive per utterance')
  })
  t.equal(events.at(-1)?.type, 'end', 'end comes last')
}

// Simple mode: every resampled sample of each channel reached the model, in order, no gaps.
export function assertSimpleCoversAudio (t: Test, events: StreamEvent[], fixture: Fixture): void {
  const frames = fixture.pcm.length / (fixture.format.channels * fixture.format.bit_depth / 8)
  const expected = Math.round(frames * 16000 / fixture.format.sample_rate)
  for (let channel = 0; channel < fixture.format.channels; channel++) {
    const own = events.filter((e): e is SegmentEvent => e.type === 'segment' && e.channel === channel)
    t.equal(own.reduce((n, s) => n + (s.count as number), 0), expected, `${fixture.name} ch${channel}: every sample counted`)
    let at = 0
    for (const s of own) {
      if (s.start_time !== at) t.fail(`gap or overlap at ${at}`)
      at = s.end_time
    }
    t.equal(at, expected / 16000, 'segments reach the end of the audio')
  }
  t.equal(events.at(-1)?.type, 'end', 'end comes last')
}
