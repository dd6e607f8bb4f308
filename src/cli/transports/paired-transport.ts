import type { EndEvent, StreamEvent } from '../../../schemas/events.ts'
import type { PairedSessionCreated } from '../../../schemas/paired-session.ts'
import { CliError, unreachable } from '../cli-error.ts'
import { createSseFeed } from '../sse-events.ts'
import { httpRefusal } from './http-transport.ts'
import { StreamOutcome } from './stream-outcome.ts'
import { authHeaders, routeUrl, type StreamRequest } from './transport.ts'

// Chunks in flight at once: the server applies them in seq order, so a few may overlap and
// a slow round trip does not throttle the upload.
const MAX_IN_FLIGHT = 4
// The events stream is resumed with Last-Event-ID if it drops before `end`.
const MAX_RECONNECTS = 3
// A chunk refused because the server ended the stream: how long the events stream has to say
// why (a `shutdown` event, or the stream's last events and `end`) before the refusal is the failure.
const SERVER_END_GRACE_MS = 5000
// Retry-After when a 429 has none.
const DEFAULT_RETRY_AFTER_MS = 1000

// Paired session: POST /api/v1/sessions, then audio chunks POSTed by seq while the SSE events
// stream is read with fetch (Node has no EventSource), then POST stop.
export async function pairedTransport (request: StreamRequest): Promise<EndEvent> {
  // fetch has no per-request TLS option; the documented Node switch applies to this process only.
  if (request.insecure) process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'
  const createUrl = routeUrl(request.base, '/api/v1/sessions')
  const abort = new AbortController()
  const post = async (url: URL, body: RequestInit['body'], contentType: string): Promise<Response> => {
    try {
      return await fetch(url, { method: 'POST', body, headers: { 'content-type': contentType, ...authHeaders(request) }, signal: abort.signal })
    } catch (error) {
      // Aborted on purpose (the stream failed or ended): rethrow that reason, not a network error.
      abort.signal.throwIfAborted()
      throw unreachable(url.origin, error)
    }
  }

  const created = await post(createUrl, JSON.stringify({
    mode: request.mode,
    format: request.format,
    interim_results: request.interimResults,
    ...(request.acks ? { acks: true } : {})
  }), 'application/json')
  if (created.status !== 201) throw httpRefusal(created.status, await created.text())
  const session = await created.json() as PairedSessionCreated
  // The URLs are paths: resolved against the URL that created the session.
  const eventsUrl = new URL(session.events_url, createUrl)
  const audioUrl = new URL(session.audio_url, createUrl)
  const stopUrl = new URL(session.stop_url, createUrl)

  const outcome = new StreamOutcome(request, {
    afterFail: (error) => { abort.abort(error) },
    // The server closes the events stream after `end`; aborting also frees the socket now.
    afterEnd: () => { abort.abort(new Error('done')) }
  })
  // Runs beside the upload; both of its ends settle the outcome (fail() never throws), so the
  // promise left here cannot reject.
  void readEvents(eventsUrl, authHeaders(request), (event) => { outcome.receive(event) }, abort.signal).then(() => {
    outcome.fail(new CliError('The events stream ended before the end event'))
  }, (error: unknown) => {
    outcome.fail(error instanceof CliError ? error : unreachable(eventsUrl.origin, error))
  })

  // The server ended the stream itself (a shutdown, a limit): a chunk is answered 409 and the
  // events stream says why, then brings the results and `end`. The upload stops, no stop is
  // sent, and the refusal only counts if the events stream does not explain it in time.
  let endedByServer = false
  let refusalTimer: NodeJS.Timeout | undefined
  const serverEnded = (refusal: CliError): void => {
    if (endedByServer) return
    endedByServer = true
    refusalTimer = setTimeout(() => { if (!outcome.shutdown) outcome.fail(refusal) }, SERVER_END_GRACE_MS)
  }
  void outcome.result.finally(() => { clearTimeout(refusalTimer) }).catch(() => {})
  // One chunk until it is taken: `429 rate_limited` (the server holds too much audio not yet
  // through the model) is answered by sending the same seq again after Retry-After.
  const sendChunk = async (url: URL, chunk: Uint8Array): Promise<void> => {
    for (;;) {
      const response = await post(url, chunk, 'application/octet-stream')
      if (response.status === 200 || response.status === 202) {
        await response.body?.cancel()
        return
      }
      const text = await response.text()
      if (response.status === 429) {
        await sleep(retryAfterMs(response.headers.get('retry-after')), abort.signal)
        if (outcome.settled) return
        continue
      }
      const refusal = httpRefusal(response.status, text)
      // Chunks go in seq order and at most MAX_IN_FLIGHT ahead (well inside paired.reorder_window)
      // and none after the stop: a 409 means the server ended the stream, and a 503
      // shutting_down that it is draining it (a restart): the chunk was not taken, and the events
      // stream brings the `shutdown` event, the results for what was taken and `end`.
      if (refusal.status === 409 || (refusal.status === 503 && refusal.code === 'shutting_down')) {
        serverEnded(refusal)
        return
      }
      throw refusal
    }
  }

  try {
    const inFlight = new Set<Promise<void>>()
    let seq = 0
    for await (const chunk of request.audio) {
      // After a `shutdown` event the server takes no more audio: stop sending, and wait for `end`.
      if (outcome.settled || endedByServer || outcome.shutdown) break
      const url = new URL(audioUrl)
      url.searchParams.set('seq', String(seq++))
      // Never rejects: a refused chunk fails the whole stream, and the loop stops.
      const sent: Promise<void> = sendChunk(url, chunk).catch((error: unknown) => {
        outcome.fail(error instanceof CliError ? error : new CliError(String(error)))
      }).finally(() => { inFlight.delete(sent) })
      inFlight.add(sent)
      if (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight)
    }
    await Promise.all(inFlight)
    if (!outcome.settled && !endedByServer && !outcome.shutdown) {
      const stopped = await post(stopUrl, '', 'application/octet-stream')
      if (stopped.status !== 202 && stopped.status !== 200) throw httpRefusal(stopped.status, await stopped.text())
      await stopped.body?.cancel()
      request.onUploadEnd()
    }
  } catch (error) {
    outcome.fail(error instanceof CliError ? error : new CliError(String(error)))
  }
  return await outcome.result
}

// Reads the SSE stream until it ends; resumes from the last event id when it drops.
async function readEvents (url: URL, auth: Record<string, string>, onEvent: (event: StreamEvent) => void, signal: AbortSignal): Promise<void> {
  let lastEventId: string | undefined
  for (let attempt = 0; attempt <= MAX_RECONNECTS; attempt++) {
    const headers: Record<string, string> = { accept: 'text/event-stream', ...auth }
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId
    const response = await fetch(url, { headers, signal })
    // 204: the server has nothing more for this reader.
    if (response.status === 204) return
    if (response.status !== 200) throw httpRefusal(response.status, await response.text())
    const feed = createSseFeed(onEvent)
    try {
      for await (const chunk of response.body ?? []) feed.push(chunk)
      // A clean end: after `end` the caller has settled and aborted; otherwise resume.
    } catch (error) {
      if (signal.aborted || error instanceof CliError) throw error
    }
    lastEventId = feed.lastEventId ?? lastEventId
    if (signal.aborted) return
  }
}

// Retry-After in seconds (the server's form) as milliseconds; an HTTP date or nonsense: the default.
function retryAfterMs (header: string | null): number {
  const seconds = Number(header)
  return header !== null && header.trim() !== '' && Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, 60) * 1000 : DEFAULT_RETRY_AFTER_MS
}

// Resolves after `ms`, or at once when the signal aborts (the stream was decided meanwhile).
function sleep (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve()
      return
    }
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done)
  })
}
