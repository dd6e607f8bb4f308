// The two ways a browser streams to the server (docs/protocol.md): a WebSocket, or a paired
// session (fetch for the audio, EventSource for the events). Both hand the page the same events
// and take audio the same way, so the page does not care which one it got.

/**
 * An event from the server; see docs/protocol.md, Events.
 * @typedef {{ type: string, channel: number | null } & Record<string, unknown>} StreamEvent
 */

/**
 * What a connected transport offers the page.
 * @typedef {object} Transport
 * @property {'websocket' | 'paired'} name
 * @property {string} description how it connected, for the connection log
 * @property {(chunk: Uint8Array) => Promise<void>} send sends one chunk of audio; resolves when the transport can take the next (flow control)
 * @property {() => Promise<void>} stop sends the stop once every chunk is out; the last results and `end` follow as events
 * @property {() => void} close drops the connection at once
 */

/**
 * What the page hears from a transport.
 * @typedef {object} TransportHandlers
 * @property {(event: StreamEvent) => void} onEvent every event, in order
 * @property {(detail: string) => void} onClosed the connection is over (with its close code and reason, where there is one)
 * @property {(message: string) => void} onNotice something the page should show (a reconnect, a retried chunk)
 * @property {(code: string, message: string) => void} onRequestError a paired-session request the server refused
 */

/**
 * The start message's fields (docs/protocol.md, Start), without `request`.
 * @typedef {{ format: import('./audio.js').AudioFormat, interim_results: boolean, acks: boolean }} StartFields
 */

const EVENT_TYPES = ['started', 'segment', 'data', 'active', 'inactive', 'ack', 'finalized', 'error', 'shutdown', 'end']

// A subprotocol is an HTTP token: no separators. Anything else goes in ?token= instead.
const SUBPROTOCOL_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** Adds ?token= to a URL when there is a token. @param {URL} url @param {string} token */
function withToken (url, token) {
  if (token !== '') url.searchParams.set('token', token)
  return url
}

/**
 * Opens a WebSocket to /api/v1/{mode} and sends the start message. Rejects when the socket does
 * not open within `timeoutMs` (a proxy that refuses the upgrade, a network that drops it).
 * @param {{ base: URL, mode: string, start: StartFields, token: string, handlers: TransportHandlers, timeoutMs?: number }} options
 * @returns {Promise<Transport>}
 */
export function connectWebSocket ({ base, mode, start, token, handlers, timeoutMs = 5000 }) {
  const url = new URL(`/api/v1/${mode}`, base)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  // A token as the subprotocol pair ['token', t] (headers cannot be set on a browser WebSocket),
  // or as ?token= when it is not a valid subprotocol.
  const bySubprotocol = token !== '' && SUBPROTOCOL_TOKEN.test(token)
  if (token !== '' && !bySubprotocol) withToken(url, token)
  return new Promise((resolve, reject) => {
    /** @type {WebSocket} */
    let socket
    try {
      socket = bySubprotocol ? new WebSocket(url, ['token', token]) : new WebSocket(url)
    } catch (error) {
      reject(error)
      return
    }
    socket.binaryType = 'arraybuffer'
    let opened = false
    const timer = setTimeout(() => {
      if (opened) return
      socket.close()
      reject(new Error(`the WebSocket did not open within ${timeoutMs / 1000} s`))
    }, timeoutMs)
    socket.onopen = () => {
      opened = true
      clearTimeout(timer)
      socket.send(JSON.stringify({ request: 'start', ...start }))
      resolve({
        name: 'websocket',
        description: `WebSocket ${url.origin}${url.pathname}${bySubprotocol ? ' (token as subprotocol)' : token !== '' ? ' (?token=)' : ''}`,
        send: async (chunk) => {
          if (socket.readyState !== WebSocket.OPEN) return
          socket.send(chunk)
          // The server stops reading a stream it cannot keep up with; the browser's buffer grows.
          // Wait for it to drain rather than queue the whole file in memory.
          while (socket.readyState === WebSocket.OPEN && socket.bufferedAmount > 512 * 1024) await sleep(20)
        },
        // disconnect: true: the server closes with 1000 once `end` is sent.
        stop: async () => { if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ request: 'stop', disconnect: true })) },
        close: () => socket.close()
      })
    }
    socket.onmessage = (message) => {
      if (typeof message.data === 'string') handlers.onEvent(/** @type {StreamEvent} */ (JSON.parse(message.data)))
    }
    socket.onclose = (close) => {
      clearTimeout(timer)
      if (!opened) {
        reject(new Error(`the WebSocket could not connect (close ${close.code}${close.reason === '' ? '' : `: ${close.reason}`})`))
        return
      }
      handlers.onClosed(`WebSocket closed with code ${close.code}${close.reason === '' ? '' : ` (${close.reason})`}`)
    }
  })
}

/**
 * Creates a paired session (POST /api/v1/sessions), opens its EventSource and resolves once the
 * events stream is open. Audio goes up as numbered POSTs, a few in flight at once (the server
 * applies them in seq order); a chunk answered 429 is sent again after its Retry-After.
 * @param {{ base: URL, mode: string, start: StartFields, token: string, handlers: TransportHandlers }} options
 * @returns {Promise<Transport>}
 */
export async function connectPaired ({ base, mode, start, token, handlers }) {
  // text/plain: a "simple" request, no CORS preflight when the page is on another origin.
  const created = await fetch(withToken(new URL('/api/v1/sessions', base), token), {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: JSON.stringify({ mode, ...start })
  })
  if (created.status !== 201) throw await requestError(created, 'creating the session')
  const session = /** @type {{ id: string, events_url: string, audio_url: string, stop_url: string }} */ (await created.json())
  const eventsUrl = withToken(new URL(session.events_url, base), token)
  const events = new EventSource(eventsUrl)
  let ended = false
  // Listening from the start: the server replays every event from `started` on.
  for (const type of EVENT_TYPES) {
    events.addEventListener(type, (message) => {
      // The browser's own connection errors are plain Events on the same `error` name.
      if (!(message instanceof MessageEvent)) return
      handlers.onEvent(/** @type {StreamEvent} */ (JSON.parse(message.data)))
      if (type === 'end') {
        ended = true
        events.close()
        handlers.onClosed('events stream ended after end')
      }
    })
  }
  try {
    await new Promise((resolve, reject) => {
      let opened = false
      setTimeout(() => { if (!opened) reject(new Error('the events stream did not open within 10 s')) }, 10000)
      events.onopen = () => {
        if (!opened) resolve(undefined)
        else handlers.onNotice('events stream reconnected (EventSource resumed with Last-Event-ID)')
        opened = true
      }
      events.onerror = () => {
        if (ended) return
        // EventSource retries by itself unless the server answered with an error status.
        if (events.readyState === EventSource.CLOSED) {
          if (!opened) reject(new Error('the events stream could not be opened'))
          else handlers.onClosed('events stream closed by the server before end')
        } else if (opened) {
          handlers.onNotice('events stream lost; EventSource is reconnecting')
        }
      }
    })
  } catch (error) {
    // Not left open on the server until its idle limit.
    ended = true
    events.close()
    void fetch(withToken(new URL(session.stop_url, base), token), { method: 'POST' }).catch(() => {})
    throw error
  }

  const MAX_IN_FLIGHT = 4
  /** @type {Set<Promise<void>>} */
  const inFlight = new Set()
  let seq = 0
  let closed = false

  /** @param {number} n @param {Uint8Array} chunk */
  const post = async (n, chunk) => {
    for (let attempt = 0; ; attempt++) {
      if (closed) return
      let response
      try {
        // A body of bytes and no Content-Type: a CORS simple request, no preflight per chunk.
        response = await fetch(withToken(new URL(`${session.audio_url}?seq=${n}`, base), token), { method: 'POST', body: /** @type {Uint8Array<ArrayBuffer>} */ (chunk) })
      } catch (error) {
        if (attempt >= 3) throw error
        handlers.onNotice(`chunk ${n}: ${String(error)}; sending it again`)
        await sleep(250 * 2 ** attempt)
        continue
      }
      if (response.status === 200 || response.status === 202) return
      if (response.status === 429) {
        // Flow control: the server holds too much of this session's audio. Same seq, later.
        await response.body?.cancel()
        await sleep(1000 * Number(response.headers.get('retry-after') ?? '1'))
        continue
      }
      const error = await requestError(response, `sending chunk ${n}`)
      // 503 shutting_down while the server drains: the `shutdown` event says the rest.
      handlers.onRequestError(error.code, error.message)
      return
    }
  }

  return {
    name: 'paired',
    description: `paired session ${session.id} (fetch + EventSource${token !== '' ? ', ?token=' : ''})`,
    send: async (chunk) => {
      const done = post(seq++, chunk).catch((error) => { handlers.onRequestError('network', String(error)) })
      inFlight.add(done)
      void done.finally(() => inFlight.delete(done))
      while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight)
    },
    stop: async () => {
      // The stop comes after every chunk's POST has been answered.
      await Promise.all(inFlight)
      const stopped = await fetch(withToken(new URL(session.stop_url, base), token), { method: 'POST' })
      if (stopped.status !== 202) {
        const error = await requestError(stopped, 'stopping')
        handlers.onRequestError(error.code, error.message)
      }
    },
    close: () => {
      closed = true
      ended = true
      events.close()
    }
  }
}

/**
 * The documented error body of a refused request, as an Error with its code.
 * @param {Response} response
 * @param {string} doing
 * @returns {Promise<Error & { code: string }>}
 */
async function requestError (response, doing) {
  let code = `http_${response.status}`
  let message = `${doing}: HTTP ${response.status}`
  try {
    const body = /** @type {{ code?: unknown, message?: unknown }} */ (await response.json())
    if (typeof body.code === 'string') code = body.code
    if (typeof body.message === 'string') message = `${doing}: ${body.message}`
  } catch {}
  return Object.assign(new Error(message), { code })
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
