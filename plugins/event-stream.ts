import type { FastifyReply, FastifyRequest } from 'fastify'
import type { StreamEvent } from '../schemas/events.ts'

// Server-Sent Events for the HTTP transports (the HTTP/2 duplex upload and paired sessions).
//
// Written on the raw response rather than through fastify-sse-v2, because of what it did when
// we tried it: it sets `Connection: keep-alive`, a header HTTP/2 forbids, which Node drops from
// HTTP/2 responses with a warning, and it does not notice a client that went away; we also need
// our own `id:` numbering for Last-Event-ID replay. This is the one module that frames SSE.
export interface EventStream {
  // Writes one event: `event: <type>`, `id: <n>`, `data: <JSON>`. Returns false once closed.
  send (event: StreamEvent, id: number): boolean
  comment (text: string): void
  end (): void
  /** Bytes written but not yet taken by the client: what limits.max_outbound_bytes bounds. */
  bufferedBytes (): number
  readonly closed: boolean
  // Settles when the client goes away or the stream is ended.
  readonly done: Promise<void>
}

export interface EventStreamOptions {
  keepAliveMs?: number // a comment line this often keeps idle connections open through proxies
  headers?: Record<string, string>
}

// See cutWhenStalled.
const END_STALL_MS = 30000

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  // no-transform: proxies must not compress or rewrite; X-Accel-Buffering: nginx must not buffer.
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
} as const

export function openEventStream (request: FastifyRequest, reply: FastifyReply, options: EventStreamOptions = {}): EventStream {
  // Headers set by hooks so far (CORS, request id) are kept: hijacking bypasses onSend.
  const inherited: Record<string, string> = {}
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) inherited[name] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  reply.hijack()
  const raw = reply.raw
  raw.writeHead(200, { ...inherited, ...SSE_HEADERS, ...options.headers })
  // Padding-free first write so clients see the response (and its headers) at once.
  raw.write(': stream open\n\n')
  let closed = false
  const { promise: done, resolve } = Promise.withResolvers<void>()
  const timer = setInterval(() => { stream.comment('keep-alive') }, options.keepAliveMs ?? 15000)
  timer.unref()
  const finish = (): void => {
    if (closed) return
    closed = true
    clearInterval(timer)
    resolve()
  }
  raw.once('close', finish)
  request.raw.once('close', () => { if (raw.writableFinished || raw.destroyed) finish() })
  raw.once('error', finish)

  // Once ended, a client that takes nothing more would keep the unsent rest (up to
  // limits.max_outbound_bytes and an event) and its connection for ever, out of every session
  // count: a response that made no progress for a whole END_STALL_MS is destroyed (as a
  // WebSocket's close handshake and the HTTP/2 reset of stop-upload.ts give up after 30 s).
  const cutWhenStalled = (): void => {
    let left = stream.bufferedBytes()
    const check = setInterval(() => {
      const now = stream.bufferedBytes()
      if (raw.writableFinished || raw.destroyed || now === 0) clearInterval(check)
      else if (now >= left) {
        clearInterval(check)
        raw.destroy()
      }
      left = now
    }, END_STALL_MS)
    check.unref()
  }

  const stream: EventStream = {
    send (event, id) {
      if (closed) return false
      // JSON.stringify never emits a raw newline, so one data line carries the event; the event
      // name is our own type string, never client text.
      raw.write(`event: ${event.type}\nid: ${id}\ndata: ${JSON.stringify(event)}\n\n`)
      return true
    },
    comment (text) {
      if (!closed) raw.write(`: ${text.replace(/[\r\n]/g, ' ')}\n\n`)
    },
    end () {
      if (closed) return
      raw.end()
      finish()
      cutWhenStalled()
    },
    bufferedBytes () {
      // HTTP/2: the stream's own buffer (the compat response does not count it); HTTP/1.1: the response's.
      const stream = (raw as { stream?: { writableLength: number } }).stream
      return stream?.writableLength ?? raw.writableLength
    },
    get closed () { return closed },
    done
  }
  return stream
}
