import http from 'node:http'
import t from 'tap'
import type { EndEvent, StreamEvent } from '../../schemas/events.ts'
import type { PairedAudioAck, PairedSessionCreated } from '../../schemas/paired-session.ts'
import { FIXTURE_NAMES, loadFixture, type Fixture } from '../helpers/fixtures.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth, assertSimpleCoversAudio } from '../helpers/speech-assertions.ts'

// Paired sessions against a real listening server, with Node's fetch as the client: what a
// browser does with fetch + EventSource, minus the browser (see browser.test.ts for that).

const MAX_FRAME = 65536
const server = await startServer({ limits: { max_frame_bytes: MAX_FRAME }, paired: { max_readers: 2, linger_ms: 5000 } })
t.teardown(() => server.close())

interface Received { id: number, event: StreamEvent }

// An EventSource-like reader: parses `event:`/`id:`/`data:` blocks and can be dropped mid-stream
// to test resuming. node:http on its own connection rather than fetch: undici, after an abort,
// leaves a spare connection open that never sends a request, and server.close() waits on it.
class SseReader {
  readonly received: Received[] = []
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly done: Promise<void>
  readonly #request: http.ClientRequest
  #waiters: Array<() => void> = []
  #ended = false
  #dropped = false
  error: unknown = null

  private constructor (request: http.ClientRequest, response: http.IncomingMessage) {
    this.#request = request
    this.status = response.statusCode ?? 0
    this.headers = response.headers
    this.done = this.#read(response).finally(() => {
      this.#ended = true
      for (const wake of this.#waiters.splice(0)) wake()
    })
  }

  static async open (url: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const request = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } })
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      request.once('response', resolve)
      request.once('error', reject)
    })
    return new SseReader(request, response)
  }

  get events (): StreamEvent[] { return this.received.map((r) => r.event) }
  get lastId (): number { return this.received.at(-1)?.id ?? 0 }

  async #read (response: http.IncomingMessage): Promise<void> {
    response.setEncoding('utf8')
    let buffer = ''
    try {
      for await (const chunk of response) {
        if (this.status !== 200) continue
        buffer += chunk as string
        let at: number
        while ((at = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, at)
          buffer = buffer.slice(at + 2)
          let id: number | null = null
          let data: string | null = null
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = Number(line.slice(4))
            else if (line.startsWith('data: ')) data = line.slice(6)
          }
          if (data === null) continue // a comment (keep-alive) or a retry line
          if (id === null) throw new Error(`an event without id: ${block}`)
          this.received.push({ id, event: JSON.parse(data) as StreamEvent })
          for (const wake of this.#waiters.splice(0)) wake()
        }
      }
    } catch (error) {
      // Dropped on purpose (drop()) or cut by the server: either way the stream is over.
      if (!this.#dropped) this.error = error
    }
  }

  async waitFor (predicate: (received: Received[]) => boolean, timeoutMs = 30000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!predicate(this.received)) {
      if (this.#ended) throw new Error(`the stream ended first (${String(this.error)}); got ${JSON.stringify(this.events)}`)
      if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(this.events)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  async untilEnd (): Promise<StreamEvent[]> {
    await this.waitFor((r) => r.at(-1)?.event.type === 'end')
    return this.events
  }

  drop (): void {
    this.#dropped = true
    this.#request.destroy()
  }
}

async function create (srv: TestServer, body: Record<string, unknown>, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number, json: Record<string, unknown> }> {
  const response = await fetch(`${srv.http}/api/v1/sessions`, { method: 'POST', headers, body: JSON.stringify(body) })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

async function createSession (srv: TestServer, fixture: Fixture, mode = 'segmented', interim = false): Promise<PairedSessionCreated> {
  const { status, json } = await create(srv, { mode, format: fixture.format, interim_results: interim })
  if (status !== 201) throw new Error(`create answered ${status}: ${JSON.stringify(json)}`)
  return json as unknown as PairedSessionCreated
}

async function postChunk (srv: TestServer, session: PairedSessionCreated, seq: number | string, body: Uint8Array, headers: Record<string, string> = { 'content-type': 'application/octet-stream' }): Promise<{ status: number, json: Record<string, unknown> }> {
  const response = await fetch(`${srv.http}${session.audio_url}?seq=${seq}`, { method: 'POST', headers, body })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

async function stop (srv: TestServer, session: PairedSessionCreated): Promise<{ status: number, json: Record<string, unknown> }> {
  const response = await fetch(`${srv.http}${session.stop_url}`, { method: 'POST' })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

// 100 ms of audio per chunk, as a page recording the microphone would send.
function chunksOf (fixture: Fixture): Uint8Array[] {
  const size = fixture.format.sample_rate / 10 * fixture.format.channels * fixture.format.bit_depth / 8
  const chunks: Uint8Array[] = []
  for (let at = 0; at < fixture.pcm.length; at += size) chunks.push(fixture.pcm.subarray(at, at + size))
  return chunks
}

// As a client following the protocol: a chunk refused with 429 rate_limited was not taken and
// is sent again (sooner than Retry-After asks, so tests do not wait seconds).
async function postInOrder (srv: TestServer, session: PairedSessionCreated, chunks: Uint8Array[]): Promise<void> {
  for (const [seq, chunk] of chunks.entries()) {
    while (true) {
      const { status, json } = await postChunk(srv, session, seq, chunk)
      if (status === 429 && json.code === 'rate_limited') {
        await new Promise((resolve) => setTimeout(resolve, 50))
        continue
      }
      if (status !== 200 || json.accepted_seq !== seq) throw new Error(`seq ${seq}: ${status} ${JSON.stringify(json)}`)
      break
    }
  }
}

const waitUntil = async (what: string, condition: () => boolean, timeoutMs = 10000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

// Channels run independently, so how their events interleave depends on worker timing; within
// a channel (and for the stream-wide events) the order is fixed. Compare that.
// Runs are compared event by event; each run's `started` names its own session.
const byChannel = (events: StreamEvent[]): Record<string, StreamEvent[]> => Object.groupBy(
  events.map((e) => e.type === 'started' ? { ...e, session_id: '' } : e),
  (e) => String(e.channel)
) as Record<string, StreamEvent[]>

// One whole in-order run: create, read, post, stop; the events up to `end`.
async function inOrderRun (fixture: Fixture, interim = false): Promise<StreamEvent[]> {
  const session = await createSession(server, fixture, 'segmented', interim)
  const reader = await SseReader.open(`${server.http}${session.events_url}`)
  await postInOrder(server, session, chunksOf(fixture))
  await stop(server, session)
  const events = await reader.untilEnd()
  await reader.done
  return events
}

for (const name of FIXTURE_NAMES) {
  t.test(`the whole flow, segmented: ${name}`, async (t) => {
    const fixture = loadFixture(name)
    const session = await createSession(server, fixture, 'segmented', true)
    t.match(session.id, /^[A-Za-z0-9_-]{22}$/, '128 random bits, base64url')
    t.equal(session.events_url, `/api/v1/sessions/${session.id}/events`)
    t.equal(session.audio_url, `/api/v1/sessions/${session.id}/audio`)
    t.equal(session.stop_url, `/api/v1/sessions/${session.id}/stop`)
    t.equal(session.expires_in, 15, 'the default idle timeout (limits.idle_timeout_seconds)')
    const reader = await SseReader.open(`${server.http}${session.events_url}`)
    t.equal(reader.status, 200)
    t.match(reader.headers['content-type'], /^text\/event-stream/)
    await postInOrder(server, session, chunksOf(fixture))
    const stopped = await stop(server, session)
    t.equal(stopped.status, 202, 'stop is accepted; the results follow on the events stream')
    t.same(stopped.json, { accepted_seq: chunksOf(fixture).length - 1 })
    const events = await reader.untilEnd()
    await reader.done
    t.pass('the server closes the events stream after end')
    assertSegmentedMatchesTruth(t, events, fixture)
    t.ok(events.some((e) => e.type === 'segment' && e.is_final === false), 'interim results arrived')
    t.same(reader.received.map((r) => r.id), events.map((_, i) => i + 1), 'ids run 1, 2, 3... with no gap')
    const end = events.at(-1) as EndEvent
    t.ok(Math.abs((end.seconds_received[0] ?? 0) - fixture.duration) < 0.01, 'every chunk was received')
    await waitUntil('the core session is freed', () => server.app.streamer.registry.count('paired') === 0)
  })
}

t.test('the whole flow, simple mode; chunks sent with no Content-Type (what fetch does for bytes)', async (t) => {
  const fixture = loadFixture('counting_8k_mono')
  const session = await createSession(server, fixture, 'simple')
  const reader = await SseReader.open(`${server.http}${session.events_url}`)
  // Odd sizes: samples split across chunks must be reassembled.
  for (let at = 0, seq = 0; at < fixture.pcm.length; at += 3333, seq++) {
    const { status } = await postChunk(server, session, seq, fixture.pcm.subarray(at, at + 3333), {})
    t.equal(status, 200, `seq ${seq}`)
  }
  await stop(server, session)
  assertSimpleCoversAudio(t, await reader.untilEnd(), fixture)
})

t.test('chunks posted out of order and repeated give the same events as an in-order run', async (t) => {
  const fixture = loadFixture('dialogue_44k_stereo')
  const chunks = chunksOf(fixture)
  const reference = await inOrderRun(fixture)
  assertSegmentedMatchesTruth(t, reference, fixture)

  const session = await createSession(server, fixture)
  const reader = await SseReader.open(`${server.http}${session.events_url}`)
  // Blocks of 8 sent backwards: every chunk but the block's first waits for a gap (202), the
  // block's first releases them all (200); then every chunk of the block is sent again.
  for (let block = 0; block < chunks.length; block += 8) {
    const last = Math.min(block + 8, chunks.length) - 1
    for (let seq = last; seq >= block; seq--) {
      const { status, json } = await postChunk(server, session, seq, chunks[seq] as Uint8Array)
      if (seq > block) {
        if (status !== 202) t.fail(`seq ${seq} held: ${status}`)
        if (json.accepted_seq !== block - 1) t.fail(`seq ${seq}: accepted ${String(json.accepted_seq)}`)
        if ((json as unknown as PairedAudioAck).buffered?.[0] !== seq) t.fail(`seq ${seq} listed as buffered: ${JSON.stringify(json)}`)
      } else {
        t.equal(status, 200, `block at ${block}: the gap fills`)
        t.same(json, { accepted_seq: last, bytes: chunks.slice(0, last + 1).reduce((n, c) => n + c.length, 0) }, `block at ${block}: everything up to ${last} applied`)
      }
    }
    for (let seq = block; seq <= last; seq++) {
      const { status, json } = await postChunk(server, session, seq, new Uint8Array(chunks[seq]?.length ?? 0))
      if (status !== 200 || json.duplicate !== true) t.fail(`repeat of seq ${seq}: ${status} ${JSON.stringify(json)}`)
    }
  }
  t.same((await stop(server, session)).json, { accepted_seq: chunks.length - 1 })
  const events = await reader.untilEnd()
  t.same(byChannel(events), byChannel(reference), 'identical events on every channel: finals, active, inactive, end')
})

t.test('concurrent POSTs in any order, with retries, give the same events as an in-order run', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const chunks = chunksOf(fixture)
  const reference = await inOrderRun(fixture)
  const session = await createSession(server, fixture)
  // A fixed shuffle within windows of 16, every third chunk sent twice, all in flight at once.
  const order: number[] = []
  for (let block = 0; block < chunks.length; block += 16) {
    const seqs = Array.from({ length: Math.min(16, chunks.length - block) }, (_, i) => block + i)
    for (let i = seqs.length - 1; i > 0; i--) {
      const j = (i * 7 + block) % (i + 1)
      ;[seqs[i], seqs[j]] = [seqs[j] as number, seqs[i] as number]
    }
    order.push(...seqs, ...seqs.filter((seq) => seq % 3 === 0))
  }
  for (let at = 0; at < order.length; at += 24) {
    const results = await Promise.all(order.slice(at, at + 24).map((seq) => postChunk(server, session, seq, chunks[seq] as Uint8Array)))
    for (const { status, json } of results) if (status !== 200 && status !== 202) t.fail(`${status} ${JSON.stringify(json)}`)
  }
  // Events produced before the first GET are kept and delivered when it arrives.
  const reader = await SseReader.open(`${server.http}${session.events_url}`)
  t.same((await stop(server, session)).json, { accepted_seq: chunks.length - 1 })
  t.same(byChannel(await reader.untilEnd()), byChannel(reference), 'identical events on every channel')
})

t.test('an SSE reconnect with Last-Event-ID mid-stream: nothing missing, nothing repeated', async (t) => {
  // Three utterances: the first is over (active, inactive, final) within the first 40 %.
  const fixture = loadFixture('counting_8k_mono')
  const chunks = chunksOf(fixture)
  const reference = await inOrderRun(fixture)
  const session = await createSession(server, fixture)
  const url = `${server.http}${session.events_url}`
  const first = await SseReader.open(url)
  const cut1 = Math.floor(chunks.length * 0.4)
  const cut2 = Math.floor(chunks.length * 0.7)
  await postInOrder(server, session, chunks.slice(0, cut1))
  await first.waitFor((r) => r.length >= 2)
  first.drop()
  await first.done
  const seen = first.received.length
  // While nobody reads, the stream goes on: these events wait in the replay buffer.
  for (let seq = cut1; seq < cut2; seq++) await postChunk(server, session, seq, chunks[seq] as Uint8Array)
  const second = await SseReader.open(url, { 'last-event-id': String(first.lastId) })
  await second.waitFor((r) => r.length > 0)
  t.equal(second.received[0]?.id, first.lastId + 1, 'resumes right after the last id seen')
  for (let seq = cut2; seq < chunks.length; seq++) await postChunk(server, session, seq, chunks[seq] as Uint8Array)
  await stop(server, session)
  await second.untilEnd()
  const all = [...first.received, ...second.received]
  t.same(all.map((r) => r.id), all.map((_, i) => i + 1), `ids 1..${all.length} once each (${seen} before the drop)`)
  t.same(byChannel(all.map((r) => r.event)), byChannel(reference), 'the same events as an uninterrupted run')

  // After end: the query parameter works for clients that cannot set headers; the header wins.
  const replay = await SseReader.open(`${url}?last_event_id=${all.length - 2}`)
  await replay.done
  t.same(replay.received.map((r) => r.id), [all.length - 1, all.length], 'an ended session replays what is left, then closes')
  const headerWins = await SseReader.open(`${url}?last_event_id=0`, { 'last-event-id': String(all.length - 1) })
  await headerWins.done
  t.same(headerWins.received.map((r) => r.id), [all.length])
  const finished = await fetch(url, { headers: { 'last-event-id': String(all.length) } })
  t.equal(finished.status, 204, 'a reader that has end gets 204, on which EventSource stops reconnecting')
  const ahead = await fetch(url, { headers: { 'last-event-id': String(all.length + 5) } })
  t.equal(ahead.status, 400)
  t.match(await ahead.json(), { code: 'invalid_message', field: 'Last-Event-ID' })
})

t.test('a second simultaneous reader gets the same stream; past max_readers, 409', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const session = await createSession(server, fixture)
  const url = `${server.http}${session.events_url}`
  const a = await SseReader.open(url)
  const b = await SseReader.open(url)
  const refused = await fetch(url)
  t.equal(refused.status, 409, 'max_readers is 2 on this server')
  t.match(await refused.json(), { code: 'conflict', message: /2 events readers/ })
  await postInOrder(server, session, chunksOf(fixture))
  await stop(server, session)
  const eventsA = await a.untilEnd()
  assertSegmentedMatchesTruth(t, eventsA, fixture)
  t.same(await b.untilEnd(), eventsA, 'both readers got every event')
  t.same(b.received.map((r) => r.id), a.received.map((r) => r.id), 'with the same ids')
})

t.test('seq too far ahead is refused with 409; audio after stop is refused, repeats are not', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const session = await createSession(server, fixture)
  const chunk = fixture.pcm.subarray(0, 3200)
  t.same(await postChunk(server, session, 0, chunk), { status: 200, json: { accepted_seq: 0, bytes: 3200 } })
  t.same(await postChunk(server, session, 64, chunk), { status: 202, json: { accepted_seq: 0, bytes: 3200, buffered: [64] } }, 'the window is 64 chunks past the last applied')
  const far = await postChunk(server, session, 65, chunk)
  t.equal(far.status, 409)
  t.match(far.json, { code: 'conflict', field: 'seq', message: /seq 65 is too far ahead.*send seq 1 first/ })
  const stopped = await stop(server, session)
  t.same(stopped, { status: 202, json: { accepted_seq: 0, discarded: [64] } }, 'stop drops and reports the chunk held behind the gap')
  t.same(await postChunk(server, session, 0, chunk), { status: 200, json: { accepted_seq: 0, bytes: 3200, duplicate: true } }, 'a retry after stop is still acknowledged')
  const late = await postChunk(server, session, 1, chunk)
  t.equal(late.status, 409)
  t.match(late.json, { code: 'conflict', message: /stopped after seq 0/ })
  t.equal((await stop(server, session)).status, 202, 'stop again: idempotent')
  const reader = await SseReader.open(`${server.http}${session.events_url}`)
  const events = await reader.untilEnd()
  t.match(events.find((e) => e.type === 'error'), { code: 'audio_lost', message: /chunks 64 held waiting for seq 1/ })
})

t.test('refused requests: JSON {code, message, field} with the right status', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const good = fixture.format
  const cases: Array<[string, Record<string, unknown>, number, string, string]> = [
    ['no mode', { format: good }, 400, 'invalid_message', 'mode'],
    ['bad mode', { mode: 'stream', format: good }, 400, 'invalid_message', 'mode'],
    ['a stop message', { request: 'stop', mode: 'simple', format: good }, 400, 'invalid_message', 'request'],
    ['no format', { mode: 'simple' }, 400, 'invalid_message', 'format'],
    ['0 channels', { mode: 'simple', format: { ...good, channels: 0 } }, 400, 'unsupported_format', 'format.channels'],
    ['channels as a string', { mode: 'simple', format: { ...good, channels: '1' } }, 400, 'unsupported_format', 'format.channels'],
    ['sample rate too low', { mode: 'simple', format: { ...good, sample_rate: 4000 } }, 400, 'unsupported_format', 'format.sample_rate'],
    ['bad bit depth', { mode: 'simple', format: { ...good, bit_depth: 12 } }, 400, 'unsupported_format', 'format.bit_depth'],
    ['bad interim_results', { mode: 'simple', format: good, interim_results: 'yes' }, 400, 'invalid_message', 'interim_results'],
    ['bad trace_id', { mode: 'simple', format: good, trace_id: 'abc' }, 400, 'invalid_message', 'trace_id']
  ]
  for (const [what, body, status, code, field] of cases) {
    const answer = await create(server, body)
    t.equal(answer.status, status, `${what}: status`)
    t.match(answer.json, { code, field, message: /\S/ }, `${what}: ${String(answer.json.message)}`)
  }
  const badJson = await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"mode":' })
  t.equal(badJson.status, 400)
  t.match(await badJson.json(), { code: 'invalid_json' })
  const wrongType = await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'audio/wav' }, body: new Uint8Array(10) })
  t.equal(wrongType.status, 415)
  t.match(await wrongType.json(), { code: 'unsupported_media_type', field: 'content-type' })
  const asText = await create(server, { request: 'start', mode: 'segmented', format: good }, { 'content-type': 'text/plain' })
  t.equal(asText.status, 201, 'a start message sent as text/plain (no CORS preflight) is accepted')

  const session = await createSession(server, fixture)
  const noSeq = await fetch(`${server.http}${session.audio_url}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(10) })
  t.equal(noSeq.status, 400)
  t.match(await noSeq.json(), { code: 'invalid_message', field: 'seq', message: /seq is required: an integer >= 0/ })
  t.match(await postChunk(server, session, '-1', new Uint8Array(10)), { status: 400, json: { field: 'seq' } })
  t.match(await postChunk(server, session, 'x', new Uint8Array(10)), { status: 400, json: { field: 'seq' } })
  t.match(await postChunk(server, session, 0, new Uint8Array(10), { 'content-type': 'application/json' }), { status: 415, json: { code: 'unsupported_media_type' } })
  const tooBig = await postChunk(server, session, 0, new Uint8Array(MAX_FRAME + 1))
  t.equal(tooBig.status, 413)
  t.match(tooBig.json, { code: 'frame_too_large', message: new RegExp(`${MAX_FRAME} bytes`) })
  t.same(await postChunk(server, session, 0, new Uint8Array(MAX_FRAME)), { status: 200, json: { accepted_seq: 0, bytes: MAX_FRAME } }, 'exactly the limit is fine')
  const badId = await fetch(`${server.http}${session.events_url}`, { headers: { 'last-event-id': 'abc' } })
  t.equal(badId.status, 400)
  t.match(await badId.json(), { field: 'Last-Event-ID' })
  await stop(server, session)
})

t.test('unknown ids and routes: 404 JSON', async (t) => {
  const unknown = `${server.http}/api/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA`
  for (const [method, path] of [['GET', '/events'], ['POST', '/audio?seq=0'], ['POST', '/stop'], ['GET', '/nothing-here']] as const) {
    const response = await fetch(`${unknown}${path}`, { method, ...(method === 'POST' ? { body: new Uint8Array(2) } : {}) })
    t.equal(response.status, 404, `${method} ${path}`)
    t.match(await response.json(), { code: 'not_found', message: /\S/ })
  }
})

t.test('CORS: any origin by default; preflights allow Content-Type and Last-Event-ID', async (t) => {
  const preflight = await fetch(`${server.http}/api/v1/sessions`, {
    method: 'OPTIONS',
    headers: { origin: 'http://page.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' }
  })
  t.equal(preflight.status, 204)
  t.equal(preflight.headers.get('access-control-allow-origin'), '*')
  t.match(preflight.headers.get('access-control-allow-headers'), /Content-Type.*Last-Event-ID/)
  t.match(preflight.headers.get('access-control-allow-methods'), /POST/)
  t.equal(preflight.headers.get('access-control-allow-credentials'), null, 'no credentials: the id is the only key')
  const fixture = loadFixture('hello_16k_mono')
  const session = await createSession(server, fixture)
  const events = await SseReader.open(`${server.http}${session.events_url}`, { origin: 'http://page.example' })
  t.equal(events.headers['access-control-allow-origin'], '*', 'the SSE response carries CORS headers too')
  events.drop()
  await stop(server, session)
})

t.test('the idle limit counts audio, not readers; keepalive resets it; configured CORS origins; shutdown with a reader attached', async (t) => {
  const idle = await startServer({ limits: { idle_timeout_seconds: 0.3 }, paired: { cors_origins: ['http://allowed.example'] } })
  let closed = false
  t.teardown(async () => { if (!closed) await idle.close() })
  const endStates: string[] = []
  idle.app.streamer.registry.onChange((entry, change) => { if (change === 'closed') endStates.push(entry.session.state) })
  const fixture = loadFixture('hello_16k_mono')

  // No audio comes after the first chunk: finalised (results, idle_timeout, end), not dropped.
  const abandoned = await createSession(idle, fixture)
  t.equal(abandoned.expires_in, 0.3)
  await postChunk(idle, abandoned, 0, fixture.pcm.subarray(0, 64000))
  await waitUntil('the abandoned session ends', () => idle.app.streamer.registry.count('paired') === 0)
  t.same(endStates, ['ended'], 'the idle limit finalised the stream (end), it was not just dropped')
  const late = await SseReader.open(`${idle.http}${abandoned.events_url}`)
  await late.done
  const tail = late.events.slice(-2)
  t.match(tail, [{ type: 'error', code: 'idle_timeout', message: /0\.3 s/ }, { type: 'end', samples_received: [32000] }], 'a reader arriving later gets the results, idle_timeout, then end')
  t.equal((await postChunk(idle, abandoned, 1, new Uint8Array(2))).status, 409, 'no more audio is taken')

  // A connected reader does not keep an idle session: it sees idle_timeout and end.
  const watched = await createSession(idle, fixture)
  const reader = await SseReader.open(`${idle.http}${watched.events_url}`)
  await reader.done
  t.match(reader.events.slice(-2), [{ type: 'error', code: 'idle_timeout' }, { type: 'end' }], 'the reader saw the stream end')

  // Keepalives (the route, or empty chunks) hold it open without audio.
  const kept = await createSession(idle, fixture)
  for (let i = 0; i < 10; i++) {
    const answer = await fetch(`${idle.http}/api/v1/sessions/${kept.id}/keepalive`, { method: 'POST' })
    t.equal(answer.status, 204)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await postChunk(idle, kept, 0, new Uint8Array(0))
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(idle.app.streamer.registry.count('paired'), 1, 'still open after more than three idle limits of keepalives')
  await stop(idle, kept)
  await waitUntil('the kept session ends after its stop', () => idle.app.streamer.registry.count('paired') === 0)

  // Origins: only the configured one is allowed.
  const preflight = async (origin: string): Promise<string | null> => (await fetch(`${idle.http}/api/v1/sessions`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST' }
  })).headers.get('access-control-allow-origin')
  t.equal(await preflight('http://allowed.example'), 'http://allowed.example')
  t.equal(await preflight('http://other.example'), null)

  // Shutdown ends open event streams (or close would wait on them forever).
  const open = await createSession(idle, fixture)
  const attached = await SseReader.open(`${idle.http}${open.events_url}`)
  await idle.close()
  closed = true
  await attached.done
  t.equal(idle.app.streamer.registry.count('paired'), 0, 'nothing left open')
})
