import http from 'node:http'
import type { StreamEvent } from '../../schemas/events.ts'
import type { PairedSessionCreated } from '../../schemas/paired-session.ts'
import type { Fixture } from './fixtures.ts'
import { SseCollector } from './sse-collector.ts'
import { sleep } from './waiting.ts'

// A paired-session client for tests that spread one session's requests over several
// instances: fetch for the POSTs, node:http (a connection of its own) for the events.

export async function createPaired (base: string, fixture: Fixture, body: Record<string, unknown> = {}): Promise<{ status: number, json: Record<string, unknown> }> {
  const response = await fetch(`${base}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'segmented', format: fixture.format, interim_results: false, ...body }) })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

export async function createOk (base: string, fixture: Fixture): Promise<PairedSessionCreated> {
  const { status, json } = await createPaired(base, fixture)
  if (status !== 201) throw new Error(`create answered ${status}: ${JSON.stringify(json)}`)
  return json as unknown as PairedSessionCreated
}

// 100 ms of audio per chunk.
export function chunksOf (fixture: Fixture): Uint8Array[] {
  const size = fixture.format.sample_rate / 10 * fixture.format.channels * fixture.format.bit_depth / 8
  const chunks: Uint8Array[] = []
  for (let at = 0; at < fixture.pcm.length; at += size) chunks.push(fixture.pcm.subarray(at, at + size))
  return chunks
}

// One chunk, sent again after a 429 (rate_limited) or a 503 (an instance between Redis
// reconnects), as the protocol asks; `pick` chooses the instance for each attempt. `accepted`:
// the answers that mean it was taken (202: held until the chunks before it arrive).
export async function postChunk (pick: () => string, session: PairedSessionCreated, seq: number, chunk: Uint8Array, accepted: readonly number[] = [200]): Promise<Record<string, unknown>> {
  for (let attempt = 0; ; attempt++) {
    let status = 0
    let json: Record<string, unknown> = {}
    try {
      const response = await fetch(`${pick()}${session.audio_url}?seq=${seq}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: chunk })
      status = response.status
      json = await response.json() as Record<string, unknown>
    } catch (error) {
      if (attempt > 200) throw error // an instance that was killed: try another
    }
    if (accepted.includes(status)) return json
    if ((status === 429 || status === 503 || status === 0) && attempt < 400) { await sleep(50); continue }
    throw new Error(`seq ${seq}: ${status} ${JSON.stringify(json)}`)
  }
}

export async function stopPaired (base: string, session: PairedSessionCreated): Promise<{ status: number, json: Record<string, unknown> }> {
  const response = await fetch(`${base}${session.stop_url}`, { method: 'POST' })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

// An events reader; `follow()` reconnects with Last-Event-ID (as EventSource does) on any of
// `bases` after the connection is cut, until `end`.
export class PairedReader {
  readonly collector = new SseCollector()
  readonly #bases: string[]
  readonly #path: string
  #request: http.ClientRequest | null = null
  reconnects = 0

  constructor (bases: string[], eventsPath: string) {
    this.#bases = bases
    this.#path = eventsPath
  }

  get events (): StreamEvent[] { return this.collector.events }
  get ids (): number[] { return this.collector.ids }

  async #once (base: string): Promise<number> {
    const last = this.collector.ids.at(-1)
    const headers: Record<string, string> = { accept: 'text/event-stream', ...(last !== undefined ? { 'last-event-id': String(last) } : {}) }
    return await new Promise<number>((resolve) => {
      const request = http.get(`${base}${this.#path}`, { agent: false, headers })
      this.#request = request
      request.once('error', () => { resolve(0) })
      request.once('response', (response) => {
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => { if (response.statusCode === 200) this.collector.feed(chunk) })
        response.once('end', () => { resolve(response.statusCode ?? 0) })
        response.once('error', () => { resolve(0) })
      })
    })
  }

  // Reads until `end` arrives, reconnecting (on the next instance) when cut.
  async follow (timeoutMs = 45000): Promise<StreamEvent[]> {
    const deadline = Date.now() + timeoutMs
    let turn = 0
    while (this.events.at(-1)?.type !== 'end') {
      if (Date.now() > deadline) throw new Error(`no end; got ${JSON.stringify(this.events).slice(0, 2000)}`)
      const status = await this.#once(this.#bases[turn % this.#bases.length] as string)
      if (status === 204) break
      if (this.events.at(-1)?.type === 'end') break
      this.reconnects++
      turn++
      await sleep(100)
    }
    return this.events
  }

  close (): void { this.#request?.destroy() }
}
