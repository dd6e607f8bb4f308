// The page's client: read a WAV, create a paired session, stream the PCM, print the finals.
// No framework, no build: a static file any server (or `python3 -m http.server`) can serve.
const $ = (id) => document.getElementById(id)
const CHUNK_SECONDS = 0.1

// The WAV header's format in the server's words, and where the PCM is. The server decodes
// every sample format itself; only the header is read here.
function parseWav (buffer) {
  const view = new DataView(buffer)
  const tag = (at) => String.fromCharCode(...new Uint8Array(buffer, at, 4))
  if (buffer.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error('not a WAV file')
  let format = null
  for (let at = 12; at + 8 <= buffer.byteLength;) {
    const id = tag(at)
    const size = view.getUint32(at + 4, true)
    if (id === 'fmt ') {
      let code = view.getUint16(at + 8, true)
      if (code === 0xfffe) code = view.getUint16(at + 32, true) // WAVE_FORMAT_EXTENSIBLE: its sub-format
      const encoding = { 1: 'pcm', 3: 'pcm', 6: 'alaw', 7: 'mulaw' }[code]
      if (encoding === undefined) throw new Error(`WAV format code ${code} is not PCM, float, A-law or mu-law`)
      format = { channels: view.getUint16(at + 10, true), sample_rate: view.getUint32(at + 12, true), bit_depth: view.getUint16(at + 22, true), is_float: code === 3 }
      if (encoding !== 'pcm') format.encoding = encoding
    } else if (id === 'data') {
      if (format === null) throw new Error('the data chunk comes before fmt')
      // 0 or 0xFFFFFFFF: a length not known when the header was written (a pipe): to the end.
      const end = size === 0 || size === 0xffffffff ? buffer.byteLength : Math.min(buffer.byteLength, at + 8 + size)
      return { format, pcm: new Uint8Array(buffer, at + 8, end - at - 8) }
    }
    at += 8 + size + (size % 2)
  }
  throw new Error('no data chunk')
}

function show (id, line) { $(id).textContent += `${line}\n` }

async function stream (buffer) {
  $('finals').textContent = ''
  $('events').textContent = ''
  const api = $('server').value.replace(/\/+$/, '')
  const { format, pcm } = parseWav(buffer)
  $('status').textContent = 'creating the session'
  // text/plain JSON spares the CORS preflight (the server takes it as JSON).
  const created = await fetch(`${api}/api/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: JSON.stringify({ mode: 'segmented', format })
  })
  if (created.status !== 201) throw new Error(`refused: HTTP ${created.status} ${await created.text()}`)
  const session = await created.json()
  // Set by a `shutdown` event (the server is restarting): no more audio is taken, and the
  // results for what was taken and `end` follow.
  let shutdown = false
  const ended = new Promise((resolve, reject) => {
    const events = new EventSource(new URL(session.events_url, `${api}/`))
    for (const type of ['started', 'segment', 'active', 'inactive', 'error', 'shutdown', 'end']) {
      events.addEventListener(type, (message) => {
        if (!(message instanceof MessageEvent)) return // a connection error: EventSource retries by itself
        const event = JSON.parse(message.data)
        show('events', `${event.type} ${message.data}`)
        if (event.type === 'segment' && event.is_final === true) {
          const { type, channel, start_time: start, end_time: end, is_final: final, ...output } = event
          show('finals', `final ch${channel} ${start.toFixed(3)}-${end.toFixed(3)} ${JSON.stringify(output)}`)
        }
        if (event.type === 'shutdown') shutdown = true
        if (event.type === 'end') { events.close(); resolve(event) }
      })
    }
    events.addEventListener('error', (message) => { if (!(message instanceof MessageEvent) && events.readyState === EventSource.CLOSED) reject(new Error('the events stream closed')) })
  })
  $('status').textContent = 'streaming'
  // Whole frames per chunk; a Uint8Array body sends no Content-Type, so no preflight either.
  const frameBytes = format.channels * Math.ceil(format.bit_depth / 8)
  const chunkBytes = Math.max(1, Math.round(format.sample_rate * CHUNK_SECONDS)) * frameBytes
  const audioUrl = new URL(session.audio_url, `${api}/`)
  // Whether the server ended the stream before the upload did: then no stop is sent.
  let endedByServer = false
  for (let at = 0, seq = 0; at < pcm.length && !endedByServer; at += chunkBytes, seq++) {
    endedByServer = shutdown || !(await sendChunk(audioUrl, seq, pcm.slice(at, at + chunkBytes)))
  }
  if (!endedByServer) await fetch(new URL(session.stop_url, `${api}/`), { method: 'POST' })
  const end = await ended
  const taken = `end: ${end.segments.join(', ')} finals, ${end.bytes_received} bytes received`
  $('status').textContent = end.bytes_received < pcm.length
    ? `${taken} of ${pcm.length}: the server ${shutdown ? 'restarted' : 'ended the stream'} after ${(end.bytes_received / frameBytes / format.sample_rate).toFixed(2)} s; stream the rest again`
    : taken
}

// Sends one chunk: true once it is taken, false if the server ended the stream first.
async function sendChunk (audioUrl, seq, body) {
  while (true) {
    const answer = await fetch(`${audioUrl}?seq=${seq}`, { method: 'POST', body })
    if (answer.ok) return true
    const text = await answer.text()
    // Flow control: 429 means "not taken, send the same seq again after Retry-After".
    if (answer.status === 429) {
      await new Promise((resolve) => setTimeout(resolve, 1000 * Number(answer.headers.get('retry-after') ?? 1)))
      continue
    }
    // 409: the server ended the stream; 503 shutting_down: it is restarting. The chunk was not
    // taken, and the events bring the results for the audio that was, then `end`.
    if (answer.status === 409 || (answer.status === 503 && errorCode(text) === 'shutting_down')) return false
    throw new Error(`chunk ${seq}: HTTP ${answer.status} ${text}`)
  }
}

// The `code` of one of the server's error bodies, if it is one.
function errorCode (text) {
  try {
    return JSON.parse(text).code
  } catch {
    return undefined
  }
}

function run (read) {
  read().then(stream).catch((error) => { $('status').textContent = `failed: ${error.message}` })
}

$('start').addEventListener('click', () => {
  const file = $('file').files[0]
  if (file === undefined) { $('status').textContent = 'choose a WAV file first'; return }
  run(() => file.arrayBuffer())
})
$('example').addEventListener('click', () => {
  run(async () => (await fetch(new URL('../speech.wav', location.href))).arrayBuffer())
})
