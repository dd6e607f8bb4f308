import t from 'tap'
import { ApiError, type ErrorCode } from '../../schemas/error-codes.ts'
import type { EndEvent, StreamEvent } from '../../schemas/events.ts'
import { PairedAudioQuery } from '../../schemas/paired-session.ts'
import { compileValidator } from '../../schemas/validation.ts'
import { ChunkReorderer } from '../../plugins/paired-session/chunk-reorderer.ts'
import { EventLog, type LoggedEvent } from '../../plugins/paired-session/event-log.ts'
import {
  PairedSession,
  PairedSessions,
  parseLastEventId,
  type CloseReason,
  type EventReader,
  type PairedLimits,
  type PairedSink,
  type Timers
} from '../../plugins/paired-session/paired-session.ts'

const LIMITS: PairedLimits = { linger_ms: 500, replay_events: 16, reorder_window: 4, reorder_max_bytes: 100, max_readers: 2 }

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values)
const active = (time: number): StreamEvent => ({ type: 'active', channel: 0, time })
const END: EndEvent = { type: 'end', channel: null, seconds_received: [0], samples_received: [0], segments: [0], interim_segments: [0], interim_segments_dropped: [0], bytes_received: 0, sha256: '', dropped: { truncated_audio: 0, max_duration: 0 }, errors: 0 }

// A clock the test moves by hand: timers fire only inside advance().
class ManualTimers implements Timers {
  now = 0
  #pending = new Map<number, { at: number, fn: () => void }>()
  #next = 0
  setTimeout (fn: () => void, ms: number): unknown {
    const handle = ++this.#next
    this.#pending.set(handle, { at: this.now + ms, fn })
    return handle
  }

  clearTimeout (handle: unknown): void { this.#pending.delete(handle as number) }
  get pending (): number { return this.#pending.size }
  advance (ms: number): void {
    const until = this.now + ms
    while (true) {
      const due = [...this.#pending.entries()].filter(([, timer]) => timer.at <= until).sort((a, b) => a[1].at - b[1].at)[0]
      if (due === undefined) break
      this.#pending.delete(due[0])
      this.now = due[1].at
      due[1].fn()
    }
    this.now = until
  }
}

// Stands in for the core Session: records the audio; finish() emits `end` like the core does.
class FakeSink implements PairedSink {
  readonly received: number[] = []
  keepalives = 0
  paused = false
  accepting = true
  endedBy: ErrorCode | undefined = undefined
  finishCalls = 0
  aborted = false
  onFinish: () => void = () => {}
  pushAudio (chunk: Uint8Array): void { this.received.push(...chunk) }
  keepalive (): void { this.keepalives++ }
  finalizeCalls = 0
  async finalize (): Promise<void> { this.finalizeCalls++ }
  async finish (): Promise<void> {
    this.finishCalls++
    this.onFinish()
  }

  abort (): void { this.aborted = true }
}

class FakeReader implements EventReader {
  readonly got: LoggedEvent[] = []
  closed = false
  send (logged: LoggedEvent): void {
    if (this.closed) throw new Error('send after close')
    this.got.push(logged)
  }

  close (): void { this.closed = true }
}

function setup (limits: Partial<PairedLimits> = {}): { session: PairedSession, sink: FakeSink, timers: ManualTimers, closes: CloseReason[] } {
  const timers = new ManualTimers()
  const closes: CloseReason[] = []
  const session = new PairedSession({ id: 'x', limits: { ...LIMITS, ...limits }, timers, onClose: (_s, reason) => { closes.push(reason) } })
  const sink = new FakeSink()
  sink.onFinish = () => { session.record(END) }
  session.attach(sink)
  return { session, sink, timers, closes }
}

const apiError = (fn: () => unknown): ApiError => {
  try {
    fn()
  } catch (error) {
    if (error instanceof ApiError) return error
    throw error
  }
  throw new Error('expected an ApiError')
}

t.test('ChunkReorderer applies chunks in seq order whatever the arrival order', async (t) => {
  const chunks = new ChunkReorderer({ window: 4, maxBytes: 100 })
  const applied: number[] = []
  const offer = (seq: number): string => {
    const outcome = chunks.offer(seq, bytes(seq))
    if (outcome.status === 'applied') for (const chunk of outcome.ready) applied.push(...chunk)
    return outcome.status
  }
  t.equal(chunks.acceptedSeq, -1, 'nothing accepted before seq 0')
  t.equal(offer(2), 'held')
  t.equal(offer(1), 'held')
  t.same(chunks.heldSeqs, [1, 2])
  t.equal(chunks.heldBytes, 2)
  t.equal(offer(2), 'duplicate', 'a held seq sent again is a duplicate')
  t.equal(offer(0), 'applied')
  t.same(applied, [0, 1, 2], 'the gap filled: the held chunks follow in order')
  t.equal(chunks.acceptedSeq, 2)
  t.equal(chunks.heldBytes, 0)
  t.equal(offer(1), 'duplicate', 'an applied seq sent again is a duplicate')
  t.equal(offer(3), 'applied')
  t.same(applied, [0, 1, 2, 3])
})

t.test('ChunkReorderer refuses a seq past the window, or past the byte cap, with 409', async (t) => {
  const chunks = new ChunkReorderer({ window: 4, maxBytes: 10 })
  chunks.offer(0, bytes(0))
  t.equal(chunks.offer(4, bytes(4)).status, 'held', 'accepted + window is still accepted')
  const far = apiError(() => chunks.offer(5, bytes(5)))
  t.equal(far.statusCode, 409)
  t.equal(far.code, 'conflict')
  t.equal(far.field, 'seq')
  t.match(far.message, /seq 5 is too far ahead.*up to seq 0.*seq 1 to 4.*send seq 1 first/)
  const big = apiError(() => chunks.offer(3, new Uint8Array(10)))
  t.equal(big.statusCode, 409)
  t.match(big.message, /more than 10 bytes waiting for seq 1/)
  t.same(chunks.heldSeqs, [4], 'a refused chunk is not kept')
  t.same(chunks.discardHeld(), [4])
  t.equal(chunks.heldBytes, 0)
})

t.test('EventLog numbers events from 1 and replays from a bounded buffer', async (t) => {
  const log = new EventLog(4)
  t.equal(log.lastId, 0)
  t.same(log.since(0), { events: [], lost: null })
  for (let i = 1; i <= 3; i++) t.equal(log.append(active(i)).id, i)
  t.same(log.since(0).events.map((e) => e.id), [1, 2, 3])
  t.same(log.since(2).events.map((e) => e.id), [3])
  t.same(log.since(3).events, [])
  for (let i = 4; i <= 10; i++) log.append(active(i))
  t.equal(log.firstKeptId, 7, 'only the last 4 are kept')
  const replay = log.since(2)
  t.same(replay.events.map((e) => e.id), [7, 8, 9, 10])
  t.same(replay.events.map((e) => (e.event as { time: number }).time), [7, 8, 9, 10], 'each id carries its own event')
  t.same(replay.lost, [3, 6], 'the ids that fell out are reported')
  t.same(log.since(6), { events: log.since(6).events, lost: null }, 'nothing lost when resuming right before the oldest kept')
})

t.test('parseLastEventId: the header wins over the query; junk is refused naming the field', async (t) => {
  t.equal(parseLastEventId(undefined, undefined), null)
  t.equal(parseLastEventId('', undefined), null)
  t.equal(parseLastEventId('12', undefined), 12)
  t.equal(parseLastEventId(undefined, 5), 5)
  t.equal(parseLastEventId('40', 5), 40, 'EventSource keeps its URL and sends the newest id in the header')
  t.equal(apiError(() => parseLastEventId('abc', undefined)).field, 'Last-Event-ID')
})

t.test('the audio route\'s seq: the query schema converts and refuses, naming the field', async (t) => {
  const seqOf = compileValidator(PairedAudioQuery, { query: true })
  t.same(seqOf({ seq: '0' }), { seq: 0 })
  t.same(seqOf({ seq: '17' }), { seq: 17 })
  for (const bad of [undefined, '', '-1', '1.5', 'x', '99999999999999999']) {
    const error = apiError(() => seqOf(bad === undefined ? {} : { seq: bad }))
    t.equal(error.field, 'seq', `seq ${String(bad)} refused: ${error.message}`)
    t.equal(error.statusCode, 400)
  }
})

t.test('PairedSession: out-of-order and repeated chunks reach the core once each, in order', async (t) => {
  const { session, sink } = setup()
  t.same(session.pushChunk(1, bytes(1, 1)), { accepted_seq: -1, bytes: 0, buffered: [1] })
  t.same(session.pushChunk(1, bytes(9, 9)), { accepted_seq: -1, bytes: 0, buffered: [1], duplicate: true })
  t.same(sink.received, [], 'nothing applied across a gap')
  t.same(session.pushChunk(0, bytes(0)), { accepted_seq: 1, bytes: 3 }, 'bytes counts what was applied: seq 0 and the held seq 1')
  t.same(session.pushChunk(0, bytes(9)), { accepted_seq: 1, bytes: 3, duplicate: true })
  t.same(session.pushChunk(2, bytes(2)), { accepted_seq: 2, bytes: 4 })
  t.same(sink.received, [0, 1, 1, 2], 'in seq order; the retry with other bytes was ignored')
  t.equal(apiError(() => session.pushChunk(7, bytes(7))).statusCode, 409, 'past the window of 4')
})

t.test('PairedSession: events before the first reader are kept; a reader resumes after its last id', async (t) => {
  const { session } = setup()
  session.record(active(1))
  session.record(active(2))
  const first = new FakeReader()
  const handle = session.openReader(null, () => first)
  t.ok(handle)
  t.same(first.got.map((e) => e.id), [1, 2], 'events produced before the first GET')
  session.record(active(3))
  t.same(first.got.map((e) => e.id), [1, 2, 3], 'live events follow the replay')
  handle?.detach()
  session.record(active(4))
  session.record(active(5))
  const second = new FakeReader()
  session.openReader(2, () => second)
  t.same(second.got.map((e) => e.id), [3, 4, 5], 'resumes after Last-Event-ID: nothing missing, nothing repeated')
  t.equal(apiError(() => session.openReader(99, () => new FakeReader())).field, 'Last-Event-ID', 'an id ahead of the session is refused')
})

t.test('PairedSession: readers fan out up to max_readers; more get 409', async (t) => {
  const { session } = setup()
  const a = new FakeReader()
  const b = new FakeReader()
  session.openReader(null, () => a)
  session.openReader(null, () => b)
  t.equal(session.readers, 2)
  let opened = false
  const refused = apiError(() => session.openReader(null, () => { opened = true; return new FakeReader() }))
  t.equal(refused.statusCode, 409)
  t.notOk(opened, 'a refused reader never gets a response started')
  session.record(active(1))
  t.same(a.got.map((e) => e.id), [1])
  t.same(b.got.map((e) => e.id), [1], 'both readers get every event')
})

t.test('PairedSession: a reader that fell behind the buffer is told what was lost', async (t) => {
  const { session } = setup({ replay_events: 16 })
  for (let i = 1; i <= 20; i++) session.record(active(i))
  const reader = new FakeReader()
  session.openReader(2, () => reader)
  const notice = reader.got[0]
  t.equal(notice?.id, 4, 'the notice stands in for the last lost id')
  t.match(notice?.event, { type: 'error', code: 'events_lost', message: /Events 3 to 4 .* were lost/ })
  t.same(reader.got.slice(1).map((e) => e.id), Array.from({ length: 16 }, (_, i) => i + 5))
})

t.test('PairedSession: stop finishes; end closes readers; the events URL answers until linger ends', async (t) => {
  const { session, sink, timers, closes } = setup()
  session.pushChunk(0, bytes(0))
  session.pushChunk(2, bytes(2))
  session.record(active(1))
  const reader = new FakeReader()
  session.openReader(null, () => reader)
  const ack = session.stop()
  t.same(ack, { accepted_seq: 0, discarded: [2] }, 'a chunk held behind a gap is dropped and reported')
  t.equal(sink.finishCalls, 1)
  t.same(session.stop(), { accepted_seq: 0 }, 'stop again: idempotent')
  t.equal(sink.finishCalls, 1)
  t.equal(session.state, 'ended')
  t.same(reader.got.map((e) => e.event.type), ['active', 'error', 'end'], 'the drop is reported as an error event, then end')
  t.ok(reader.closed, 'the reader is closed after end')
  t.equal(session.readers, 0)

  // Audio after the stop: retries of applied chunks are acknowledged; new chunks refused.
  t.same(session.pushChunk(0, bytes(0)), { accepted_seq: 0, bytes: 1, duplicate: true })
  t.equal(apiError(() => session.pushChunk(1, bytes(1))).statusCode, 409)

  // A reader that missed the end gets the rest and is closed; one that has it gets nothing (204).
  const late = new FakeReader()
  t.ok(session.openReader(1, () => late))
  t.same(late.got.map((e) => e.id), [2, 3])
  t.ok(late.closed)
  t.equal(session.openReader(3, () => new FakeReader()), null, 'already has end: nothing to send')

  timers.advance(LIMITS.linger_ms - 1)
  t.equal(session.state, 'ended')
  timers.advance(1)
  t.equal(session.state, 'closed')
  t.same(closes, ['ended'])
  t.equal(apiError(() => session.openReader(3, () => new FakeReader())).statusCode, 404)
  t.equal(apiError(() => session.stop()).statusCode, 404)
})

t.test('PairedSession: every audio POST and keepalive tells the core the client is there; readers do not', async (t) => {
  const { session, sink, timers } = setup()
  session.pushChunk(0, bytes(0))
  session.pushChunk(1, new Uint8Array(0))
  t.equal(sink.keepalives, 2, 'a chunk, an empty one included, counts as a keepalive')
  session.keepalive()
  t.equal(sink.keepalives, 3)
  session.openReader(null, () => new FakeReader())
  t.equal(sink.keepalives, 3, 'an events reader alone does not keep the session')
  t.equal(timers.pending, 0, 'the paired session runs no idle clock of its own (the core\'s applies)')
})

t.test('PairedSession: while the core is paused a new chunk is refused with rate_limited and not taken', async (t) => {
  const { session, sink } = setup()
  session.pushChunk(0, bytes(0))
  sink.paused = true
  const refused = apiError(() => session.pushChunk(1, bytes(1)))
  t.equal(refused.code, 'rate_limited')
  t.equal(refused.statusCode, 429)
  t.same(session.pushChunk(0, bytes(9)), { accepted_seq: 0, bytes: 1, duplicate: true }, 'a repeat is still acknowledged')
  t.same(sink.received, [0], 'the refused chunk was not taken')
  sink.paused = false
  t.same(session.pushChunk(1, bytes(1)), { accepted_seq: 1, bytes: 2 }, 'sent again later, it is taken')
  t.same(sink.received, [0, 1])
})

t.test('PairedSession: abort closes readers and the core session', async (t) => {
  const { session, sink, closes, timers } = setup()
  const reader = new FakeReader()
  session.openReader(null, () => reader)
  session.abort()
  t.ok(sink.aborted)
  t.ok(reader.closed)
  t.same(closes, ['aborted'])
  t.equal(timers.pending, 0)
  session.record(active(1))
  t.same(reader.got, [], 'nothing is sent after abort')
})

t.test('PairedSessions: lookups by id; a closed session is forgotten (404)', async (t) => {
  const timers = new ManualTimers()
  const closed: string[] = []
  const sessions = new PairedSessions({ limits: LIMITS, timers, onClose: (s) => { closed.push(s.id) } })
  const a = sessions.create('a')
  a.attach(new FakeSink())
  sessions.create('b').attach(new FakeSink())
  t.equal(sessions.get('a'), a)
  t.equal(sessions.size, 2)
  const missing = apiError(() => sessions.get('nope'))
  t.equal(missing.statusCode, 404)
  t.equal(missing.code, 'not_found')
  a.abort()
  t.equal(apiError(() => sessions.get('a')).statusCode, 404)
  sessions.get('b').abort()
  t.equal(sessions.size, 0)
  t.same(closed, ['a', 'b'])
})
