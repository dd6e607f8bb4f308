import t from 'tap'
import type { StreamEvent } from '../../schemas/events.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'
import { END_TOLERANCE, finals, START_TOLERANCE } from '../helpers/speech-assertions.ts'
import { WsClient } from '../helpers/ws-client.ts'

// Speech longer than limits.max_utterance_seconds, through the real Silero VAD over a WebSocket:
// long_pauses_16k_mono is 16 s of sentences 200 ms apart, one utterance to the VAD (its min
// silence is 500 ms). With a 6 s limit (a 3 s cut window) it must be cut, and every cut must
// fall in a true gap between sentences, not mid-word.
const MAX_UTTERANCE_SECONDS = 6
// VAD frames are 32 ms and its probability lags the audio by a frame or two; a cut is the middle
// of the run of quiet frames, so it lies inside the gap give or take this.
const CUT_TOLERANCE = 0.1

const server = await startServer({ limits: { max_utterance_seconds: MAX_UTTERANCE_SECONDS } })
t.teardown(() => server.close())
const fixture = loadFixture('long_pauses_16k_mono')
const [region] = fixture.speech[0] ?? []

const kind = (e: StreamEvent): string => e.type === 'segment' ? (e.is_final === true ? 'final' : 'interim') : e.type

for (const interim of [false, true]) {
  t.test(`a long utterance is cut in its pauses (interim_results ${interim})`, async (t) => {
    t.ok(region !== undefined && fixture.gaps.length >= 4, 'the fixture has one long region with gaps')
    const client = await WsClient.connect(`${server.ws}/api/v1/segmented`)
    t.teardown(() => { client.close() })
    const bytesPer100ms = fixture.format.sample_rate / 10 * fixture.format.bit_depth / 8
    const events = await client.stream(fixture.format, fixture.pcm, { interim, chunkBytes: bytesPer100ms, pauseMs: 2 })
    const pieces = finals(events, 0)
    const shown = JSON.stringify(pieces.map((s) => [s.start_time, s.end_time]))
    t.ok(pieces.length >= 3, `16 s of speech in pieces of at most ${MAX_UTTERANCE_SECONDS} s: ${shown}`)
    const [start, end] = region ?? [NaN, NaN]
    t.ok(Math.abs((pieces[0]?.start_time ?? NaN) - start) <= START_TOLERANCE, 'the first piece starts with the speech')
    t.ok(Math.abs((pieces.at(-1)?.end_time ?? NaN) - end) <= END_TOLERANCE, 'the last piece ends with it')
    for (const [i, piece] of pieces.entries()) {
      t.ok(piece.end_time - piece.start_time <= MAX_UTTERANCE_SECONDS + 1e-9, `piece ${i} is within the limit`)
      t.equal(piece.count, Math.round((piece.end_time - piece.start_time) * 16000), `piece ${i}: the model saw exactly it`)
      if (i > 0) t.equal(piece.start_time, pieces[i - 1]?.end_time, `piece ${i} starts where the previous ended`)
    }
    const cuts = pieces.slice(0, -1).map((s) => s.end_time)
    for (const cut of cuts) {
      const gap = fixture.gaps.find(([a, b]) => cut >= a - CUT_TOLERANCE && cut <= b + CUT_TOLERANCE)
      t.ok(gap !== undefined, `the cut at ${cut} s is in a true gap (${gap === undefined ? 'none' : gap.join('-')}; gaps ${JSON.stringify(fixture.gaps)})`)
    }
    // What the client sees on the channel: inactive, the final, then active at every cut.
    const own = events.filter((e) => e.channel === 0 && kind(e) !== 'interim')
    const expected = ['active', ...cuts.flatMap(() => ['inactive', 'final', 'active']), 'inactive', 'final']
    t.same(own.map(kind), expected, 'active/inactive pair up around every cut')
    for (const cut of cuts) {
      const at = own.findIndex((e) => e.type === 'inactive' && e.time === cut)
      t.ok(at >= 0, `inactive at the cut ${cut}`)
      const next = own[at + 2]
      t.ok(next?.type === 'active' && next.time === cut, `active at the cut ${cut}, right after its final`)
    }
    if (interim) {
      const interims = events.filter((e) => e.type === 'segment' && e.is_final === false)
      t.ok(interims.length > 0, 'interims arrived')
      // An interim may run past its piece's final: interims go up to the audio decided so far,
      // and the cut is chosen later, in the window before the limit. Never past the limit.
      t.ok(interims.every((s) => s.type === 'segment' && pieces.some((p) => p.start_time === s.start_time && s.end_time <= p.start_time + MAX_UTTERANCE_SECONDS)), 'every interim belongs to a piece, within the limit')
    }
    t.equal(events.at(-1)?.type, 'end')
  })
}
