// The try-it page: streams the microphone or a file to this server and shows what it hears.
// Plain ES modules, no framework: audio.js captures and reads audio, transports.js speaks the
// protocol (docs/protocol.md), this file keeps one run's state and draws it.

import { columnPeaks, concat, describeFormat, frameBytes, readAudioFile, startMicrophone, WAV_FORMATS } from './audio.js'
import { connectPaired, connectWebSocket } from './transports.js'

/** @typedef {import('./audio.js').AudioFormat} AudioFormat */
/** @typedef {import('./transports.js').StreamEvent} StreamEvent */
/** @typedef {import('./transports.js').Transport} Transport */
/** @typedef {import('./transports.js').TransportHandlers} TransportHandlers */

const CHUNK_SECONDS = 0.1 // audio per WebSocket frame or paired POST
const COLUMN_SECONDS = 0.02 // one waveform column
const WAVEFORM_SECONDS = 10 // the waveform's window
// The sha256 check needs the bytes sent. A file's are at hand; the microphone's are kept up to
// this much (about 5.8 min at 48 kHz), beyond which the check is skipped.
const MAX_KEPT_BYTES = 32 * 1024 * 1024

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function $ (id, type) {
  const element = document.getElementById(id)
  if (!(element instanceof type)) throw new Error(`#${id} is missing from the page`)
  return element
}

const ui = {
  contextWarning: $('context-warning', HTMLElement),
  micStart: $('mic-start', HTMLButtonElement),
  fileBox: $('file-box', HTMLFieldSetElement),
  file: $('file', HTMLInputElement),
  fileFormats: $('file-formats', HTMLElement),
  fast: $('fast', HTMLInputElement),
  fileStart: $('file-start', HTMLButtonElement),
  stop: $('stop', HTMLButtonElement),
  token: $('token', HTMLInputElement),
  status: $('status', HTMLElement),
  statTransport: $('stat-transport', HTMLElement),
  statSession: $('stat-session', HTMLElement),
  statFormat: $('stat-format', HTMLElement),
  statSent: $('stat-sent', HTMLElement),
  statTaken: $('stat-taken', HTMLElement),
  log: $('log', HTMLOListElement),
  level: $('level', HTMLMeterElement),
  waveform: $('waveform', HTMLCanvasElement),
  timeline: $('timeline', HTMLElement),
  timelineSummary: $('timeline-summary', HTMLElement),
  finals: $('finals', HTMLOListElement),
  interim: $('interim', HTMLElement),
  errors: $('errors', HTMLUListElement),
  noErrors: $('no-errors', HTMLElement),
  summaryBox: $('summary-box', HTMLElement),
  summary: $('summary', HTMLElement),
  shaCheck: $('sha-check', HTMLElement)
}

/**
 * A final segment as the page shows it.
 * @typedef {{ channel: number, start: number, end: number, event: StreamEvent, block: HTMLElement }} Final
 */

/** One stream: from the start button to the connection's close. */
class Run {
  /**
   * @param {'microphone' | 'file'} kind
   * @param {AudioFormat} format
   */
  constructor (kind, format) {
    this.kind = kind
    this.format = format
    this.bytesPerSecond = format.sample_rate * frameBytes(format)
    /** @type {Transport | null} */
    this.transport = null
    /** @type {Uint8Array[]} every byte sent, in order, while `keep` */
    this.sent = []
    this.keep = true
    this.sentBytes = 0
    /** @type {Array<[number, number]>} [audio seconds sent so far, performance.now()] after each chunk */
    this.sendLog = []
    /** @type {Uint8Array[]} captured, waiting to be sent (the microphone while connecting) */
    this.queue = []
    /** @type {Promise<void>} the loop sending the queue */
    this.sending = Promise.resolve()
    /** @type {number[]} waveform peaks, one per COLUMN_SECONDS */
    this.columns = []
    this.carry = { frames: 0, peak: 0, partial: new Uint8Array(0) }
    /** @type {Array<{ channel: number, start: number, end: number | null }>} speech, from active/inactive */
    this.regions = []
    /** @type {Final[]} */
    this.finals = []
    /** @type {Map<string, number>} channel:time of each inactive -> its arrival */
    this.inactiveArrivals = new Map()
    /** @type {Map<number, StreamEvent>} the latest interim per channel */
    this.interims = new Map()
    this.takenSeconds = 0
    /** @type {() => Promise<void>} stops the microphone, or the file's sending loop */
    this.stopSource = async () => {}
    this.finishing = false
    this.draining = false
    this.ended = false
    this.closed = false
  }

  /** Audio seconds sent so far. */
  get sentSeconds () { return this.sentBytes / this.bytesPerSecond }
}

/** @type {Run | null} */
let run = null

// ---- state and log --------------------------------------------------------------------------

/**
 * The connection state, for people (the status line, announced) and for tests (data-state).
 * @param {'idle' | 'connecting' | 'streaming' | 'finishing' | 'draining' | 'ended' | 'closed' | 'failed'} state
 * @param {string} text
 */
function setState (state, text) {
  ui.status.dataset.state = state
  ui.status.textContent = text
  log(text)
}

/** @param {string} line */
function log (line) {
  const item = document.createElement('li')
  const time = document.createElement('time')
  time.textContent = new Date().toLocaleTimeString()
  item.append(time, ` ${line}`)
  ui.log.append(item)
  while (ui.log.children.length > 50) ui.log.firstElementChild?.remove()
  ui.log.scrollTop = ui.log.scrollHeight
}

/**
 * @param {'server' | 'page'} source
 * @param {string} code
 * @param {string} message
 * @param {string} [where]
 */
function showError (source, code, message, where = '') {
  const item = document.createElement('li')
  item.dataset.source = source
  item.dataset.code = code
  const name = document.createElement('code')
  name.textContent = code
  item.append(name, ` ${message}`)
  if (where !== '') {
    const detail = document.createElement('span')
    detail.className = 'where'
    detail.textContent = ` (${where})`
    item.append(detail)
  }
  if (source === 'page') item.prepend('page: ')
  ui.errors.append(item)
  ui.noErrors.hidden = true
}

const seconds = (/** @type {number} */ s) => `${s.toFixed(2)} s`

// ---- starting and stopping ------------------------------------------------------------------

function resetView () {
  ui.finals.replaceChildren()
  ui.errors.replaceChildren()
  ui.noErrors.hidden = false
  ui.interim.hidden = true
  ui.summaryBox.hidden = true
  ui.summary.replaceChildren()
  ui.shaCheck.textContent = ''
  ui.shaCheck.dataset.check = ''
  ui.statTransport.textContent = 'none'
  ui.statSession.textContent = 'none'
  delete ui.status.dataset.transport
}

/** @param {boolean} running */
function setRunning (running) {
  ui.micStart.disabled = running || !microphoneUsable()
  ui.fileStart.disabled = running || ui.file.files?.length !== 1
  // Stop is enabled once the run is connected (connect() does it).
  ui.stop.disabled = true
  ui.file.disabled = running
  for (const input of document.querySelectorAll('input[name="transport"]')) if (input instanceof HTMLInputElement) input.disabled = running
  ui.token.disabled = running
}

const microphoneUsable = () => window.isSecureContext && typeof AudioWorkletNode === 'function' && navigator.mediaDevices !== undefined

/** @param {Run} r */
function begin (r) {
  resetView()
  run = r
  ui.statFormat.textContent = describeFormat(r.format)
  buildTimeline(r)
  setRunning(true)
  scheduleRender()
}

async function startMicrophoneRun () {
  if (run !== null) return
  setRunning(true)
  setState('connecting', 'Opening the microphone')
  // Captured from the first sample on and queued while the page connects: nothing is lost.
  /** @type {Run | null} */
  let r = null
  /** @type {Uint8Array[]} */
  const early = []
  let mic
  try {
    mic = await startMicrophone((chunk) => {
      if (r === null) early.push(chunk)
      else capture(r, chunk)
    })
  } catch (error) {
    showError('page', 'microphone', errorText(error))
    setState('failed', 'The microphone could not be opened')
    setRunning(false)
    return
  }
  r = new Run('microphone', mic.format)
  r.stopSource = once(mic.stop)
  begin(r)
  log(`microphone: ${mic.label}, ${describeFormat(mic.format)}`)
  for (const chunk of early) capture(r, chunk)
  // A failed connect ends the run, which stops the microphone.
  if (!await connect(r) || r.closed) return
  setState('streaming', `Streaming the microphone over ${transportName(r)}`)
  void sendQueue(r)
}

async function startFileRun () {
  const file = ui.file.files?.[0]
  if (run !== null || file === undefined) return
  setRunning(true)
  let audio
  try {
    audio = await readAudioFile(file)
  } catch (error) {
    showError('page', 'file', errorText(error))
    setRunning(false)
    return
  }
  const r = new Run('file', audio.format)
  begin(r)
  log(`file ${file.name}: ${audio.how}, ${seconds(audio.data.length / r.bytesPerSecond)}`)
  if (!await connect(r) || r.closed) return
  const fast = ui.fast.checked
  setState('streaming', `Streaming ${file.name} over ${transportName(r)} ${fast ? 'as fast as possible' : 'at real time'}`)
  const source = { stopped: false }
  const chunkBytes = Math.max(1, Math.round(r.format.sample_rate * CHUNK_SECONDS)) * frameBytes(r.format)
  const sendingDone = (async () => {
    const t0 = performance.now()
    for (let at = 0, i = 0; at < audio.data.length && !source.stopped && !r.draining && !r.closed; at += chunkBytes, i++) {
      // At real time: chunk i leaves at t0 + i x 100 ms, whatever the time the sends took.
      if (!fast) await sleep(t0 + i * CHUNK_SECONDS * 1000 - performance.now())
      const chunk = audio.data.subarray(at, at + chunkBytes)
      addColumns(r, chunk)
      await sendChunk(r, chunk)
    }
  })()
  r.stopSource = once(async () => {
    source.stopped = true
    await sendingDone
  })
  void sendingDone.then(() => finish(r))
}

/**
 * Connects with the transport the user picked; Auto falls back to a paired session when the
 * WebSocket cannot connect. Returns false (and ends the run) when nothing connected.
 * @param {Run} r
 * @returns {Promise<boolean>}
 */
async function connect (r) {
  const choice = document.querySelector('input[name="transport"]:checked')
  const pick = choice instanceof HTMLInputElement ? choice.value : 'auto'
  const options = {
    base: new URL(window.location.href),
    mode: 'segmented',
    start: { format: r.format, interim_results: true, acks: true },
    token: ui.token.value.trim(),
    handlers: handlersFor(r)
  }
  try {
    if (pick !== 'paired') {
      setState('connecting', 'Connecting: WebSocket')
      try {
        r.transport = await connectWebSocket(options)
      } catch (error) {
        if (pick === 'websocket') throw error
        log(`${errorText(error)}: falling back to a paired session`)
      }
    }
    if (r.transport === null) {
      setState('connecting', 'Connecting: paired session (fetch + EventSource)')
      r.transport = await connectPaired(options)
    }
  } catch (error) {
    const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : 'connect'
    showError(code === 'connect' ? 'page' : 'server', code, errorText(error))
    setState('failed', `Could not connect: ${errorText(error)}`)
    end(r)
    return false
  }
  ui.status.dataset.transport = r.transport.name
  ui.statTransport.textContent = r.transport.name === 'websocket' ? 'WebSocket' : 'paired session'
  ui.stop.disabled = false
  log(`connected: ${r.transport.description}`)
  return true
}

/** @param {Run} r */
const transportName = (r) => r.transport?.name === 'paired' ? 'a paired session' : 'WebSocket'

/**
 * The microphone's chunks: drawn at once, sent in order by one loop.
 * @param {Run} r
 * @param {Uint8Array} chunk
 */
function capture (r, chunk) {
  if (r.draining || r.closed) return
  addColumns(r, chunk)
  r.queue.push(chunk)
  if (r.transport !== null) void sendQueue(r)
}

/** @param {Run} r */
function sendQueue (r) {
  r.sending = r.sending.then(async () => {
    while (r.queue.length > 0 && !r.draining && !r.closed) {
      const chunk = /** @type {Uint8Array} */ (r.queue.shift())
      await sendChunk(r, chunk)
    }
  })
  return r.sending
}

/**
 * @param {Run} r
 * @param {Uint8Array} chunk
 */
async function sendChunk (r, chunk) {
  if (r.transport === null) return
  if (r.keep) {
    r.sent.push(chunk)
    if (r.sentBytes + chunk.length > MAX_KEPT_BYTES) {
      r.keep = false
      r.sent = []
    }
  }
  r.sentBytes += chunk.length
  r.sendLog.push([r.sentSeconds, performance.now()])
  scheduleRender()
  await r.transport.send(chunk)
}

/**
 * Every chunk is out: the stop, then the last results and `end` arrive as events.
 * @param {Run} r
 */
async function finish (r) {
  if (r.finishing) return
  r.finishing = true
  ui.stop.disabled = true
  await r.stopSource()
  await sendQueue(r)
  if (r.draining || r.ended || r.closed || r.transport === null) return
  setState('finishing', 'All audio sent: waiting for the last results and end')
  try {
    await r.transport.stop()
  } catch (error) {
    showError('page', 'stop', errorText(error))
  }
}

/**
 * The run is over (closed, or never connected).
 * @param {Run} r
 */
function end (r) {
  r.closed = true
  void r.stopSource()
  if (run === r) run = null
  setRunning(false)
  scheduleRender()
}

// ---- events ---------------------------------------------------------------------------------

/**
 * @param {Run} r
 * @returns {TransportHandlers}
 */
function handlersFor (r) {
  return {
    onEvent: (event) => { if (!r.closed) onEvent(r, event) },
    onClosed: (detail) => {
      if (r.closed) return
      setState('closed', r.ended ? `Closed: ${detail}` : `Closed before end: ${detail}. Results for some of the audio sent may be missing`)
      end(r)
    },
    onNotice: (message) => log(message),
    onRequestError: (code, message) => showError('server', code, message)
  }
}

/**
 * @param {Run} r
 * @param {StreamEvent} event
 */
function onEvent (r, event) {
  const channel = typeof event.channel === 'number' ? event.channel : 0
  switch (event.type) {
    case 'started':
      ui.statSession.textContent = String(event.session_id)
      log(`started: session ${String(event.session_id)}, protocol ${String(event.protocol_version)}`)
      break
    case 'active':
      r.regions.push({ channel, start: Number(event.time), end: null })
      break
    case 'inactive': {
      const open = r.regions.findLast((region) => region.channel === channel && region.end === null)
      if (open !== undefined) open.end = Number(event.time)
      r.inactiveArrivals.set(`${channel}:${Number(event.time)}`, performance.now())
      break
    }
    case 'segment':
      if (event.is_final === false) showInterim(r, channel, event)
      else addFinal(r, channel, event)
      break
    case 'ack':
      r.takenSeconds = Array.isArray(event.seconds) ? Number(event.seconds[0]) : 0
      break
    case 'finalized':
      log('finalized')
      break
    case 'error':
      showError('server', String(event.code), String(event.message), errorWhere(event))
      break
    case 'shutdown':
      r.draining = true
      r.queue = []
      void r.stopSource()
      setState('draining', `Draining: the server is restarting and takes no more audio; the last results and end follow (it ends open streams within ${String(event.deadline_seconds)} s)`)
      break
    case 'end':
      r.ended = true
      r.queue = []
      void r.stopSource()
      showSummary(r, event)
      setState('ended', 'Stream ended: every result was sent')
      break
  }
  scheduleRender()
}

/** @param {StreamEvent} event */
function errorWhere (event) {
  const parts = []
  if (typeof event.channel === 'number') parts.push(`channel ${event.channel}`)
  if (typeof event.start_time === 'number' && typeof event.end_time === 'number') parts.push(`${seconds(event.start_time)} to ${seconds(event.end_time)}`)
  if (event.is_final === true) parts.push('final')
  return parts.join(', ')
}

const PROTOCOL_FIELDS = new Set(['type', 'channel', 'start_time', 'end_time', 'is_final'])

/**
 * What the model said: `text` when it has one, its other fields otherwise (the dummy's count).
 * @param {StreamEvent} event
 */
function modelOutput (event) {
  if (typeof event.text === 'string') return event.text
  return Object.entries(event).filter(([key]) => !PROTOCOL_FIELDS.has(key)).map(([key, value]) => `${key} ${JSON.stringify(value)}`).join(', ')
}

/**
 * @param {Run} r
 * @param {number} channel
 * @param {StreamEvent} event
 */
function showInterim (r, channel, event) {
  r.interims.set(channel, event)
  renderInterims(r)
}

/** @param {Run} r */
function renderInterims (r) {
  const lines = [...r.interims.entries()].sort(([a], [b]) => a - b)
    .map(([channel, e]) => `ch${channel} ${seconds(Number(e.start_time))} to ${seconds(Number(e.end_time))}: ${modelOutput(e)} (interim)`)
  ui.interim.textContent = lines.join('\n')
  ui.interim.hidden = lines.length === 0
}

/**
 * @param {Run} r
 * @param {number} channel
 * @param {StreamEvent} event
 */
function addFinal (r, channel, event) {
  const arrival = performance.now()
  const start = Number(event.start_time)
  const endTime = Number(event.end_time)
  r.interims.delete(channel)
  renderInterims(r)
  // When the page sent the audio at the segment's end: the first chunk that reached past it.
  const sent = r.sendLog.find(([s]) => s >= endTime - 1e-6)
  const latency = sent === undefined ? null : (arrival - sent[1]) / 1000
  const inactive = r.inactiveArrivals.get(`${channel}:${endTime}`)
  const afterInactive = inactive === undefined ? null : (arrival - inactive) / 1000
  const n = r.finals.length + 1

  const block = document.createElement('div')
  block.className = 'block'
  block.dataset.final = String(n)
  block.dataset.channel = String(channel)
  block.dataset.start = String(start)
  block.dataset.end = String(endTime)
  if (typeof event.count === 'number') block.dataset.count = String(event.count)
  if (latency !== null) block.dataset.latencyMs = String(Math.round(latency * 1000))
  block.title = `#${n} ch${channel}: ${seconds(start)} to ${seconds(endTime)}`
  block.textContent = String(n)
  r.finals.push({ channel, start, end: endTime, event, block })
  lane(channel)?.append(block)

  const item = document.createElement('li')
  item.dataset.channel = String(channel)
  item.dataset.start = String(start)
  item.dataset.end = String(endTime)
  const number = document.createElement('span')
  number.className = 'n'
  number.textContent = String(n)
  const span = document.createElement('span')
  span.className = 'span'
  span.textContent = `ch${channel} ${seconds(start)} to ${seconds(endTime)}`
  const output = document.createElement('span')
  output.className = 'output'
  output.textContent = modelOutput(event)
  const timing = document.createElement('span')
  timing.className = 'latency'
  timing.textContent = latency === null
    ? 'latency unknown'
    : `latency ${seconds(latency)}${afterInactive === null ? '' : `, ${seconds(afterInactive)} after inactive`}`
  item.append(number, span, output, timing)
  ui.finals.append(item)
  ui.timelineSummary.textContent = `${r.finals.length} final segment${r.finals.length === 1 ? '' : 's'}: ` +
    r.finals.map((f) => `channel ${f.channel} ${seconds(f.start)} to ${seconds(f.end)}`).join('; ')
}

/**
 * `end`: the summary, and the sha256 of what the page sent against the server's.
 * @param {Run} r
 * @param {StreamEvent} event
 */
function showSummary (r, event) {
  ui.summaryBox.hidden = false
  const dropped = /** @type {{ truncated_audio?: number, max_duration?: number }} */ (event.dropped ?? {})
  /** @type {Array<[string, string]>} */
  const rows = [
    ['Seconds received', perChannel(event.seconds_received, (n) => n.toFixed(3))],
    ['Samples received', perChannel(event.samples_received)],
    ['Bytes received', `${String(event.bytes_received)} (the page sent ${r.sentBytes})`],
    ['Final segments', perChannel(event.segments)],
    ['Interim segments', perChannel(event.interim_segments)],
    ['Interims dropped (slow reader)', perChannel(event.interim_segments_dropped)],
    ['Bytes dropped', `truncated_audio ${dropped.truncated_audio ?? 0}, max_duration ${dropped.max_duration ?? 0}`],
    ['Errors', String(event.errors)],
    ['sha256 (server)', String(event.sha256)]
  ]
  ui.summary.replaceChildren(...rows.map(([name, value]) => {
    const row = document.createElement('div')
    const dt = document.createElement('dt')
    dt.textContent = name
    const dd = document.createElement('dd')
    dd.textContent = value
    row.append(dt, dd)
    return row
  }))
  void checkSha(r, Number(event.bytes_received), String(event.sha256)).then(({ check, text }) => {
    ui.shaCheck.dataset.check = check
    ui.shaCheck.textContent = text
  })
}

/**
 * A per-channel array of `end`, as "ch0 1, ch1 2" (one channel: just the number).
 * @param {unknown} values
 * @param {(n: number) => string} [format]
 */
function perChannel (values, format = String) {
  if (!Array.isArray(values)) return String(values)
  const shown = values.map((v) => format(Number(v)))
  return shown.length === 1 ? String(shown[0]) : shown.map((v, c) => `ch${c} ${v}`).join(', ')
}

/**
 * @param {Run} r
 * @param {number} taken bytes the server took: the first `taken` bytes the page sent
 * @param {string} sha256 theirs
 * @returns {Promise<{ check: 'match' | 'mismatch' | 'skipped', text: string }>}
 */
async function checkSha (r, taken, sha256) {
  if (globalThis.crypto?.subtle === undefined) return { check: 'skipped', text: 'sha256 not checked: crypto.subtle is only available in a secure context (https or localhost)' }
  if (!r.keep) return { check: 'skipped', text: `sha256 not checked: the page keeps at most ${MAX_KEPT_BYTES / 1024 / 1024} MiB of a run's audio, and this run sent ${(r.sentBytes / 1024 / 1024).toFixed(1)} MiB` }
  const all = concat(r.sent)
  if (taken > all.length) return { check: 'mismatch', text: `sha256 mismatch: the server counted ${taken} bytes, the page sent ${all.length}` }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', all.subarray(0, taken)))
  const hex = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('')
  if (hex !== sha256) return { check: 'mismatch', text: `sha256 mismatch: the server took other audio than the page sent (page ${hex})` }
  return taken === all.length
    ? { check: 'match', text: `sha256 matches: all ${taken} bytes the page sent arrived intact` }
    : { check: 'match', text: `sha256 matches the first ${taken} of the ${all.length} bytes sent: the server took no more of it (after a shutdown or a limit: see the log and the errors)` }
}

// ---- drawing --------------------------------------------------------------------------------

/**
 * @param {Run} r
 * @param {Uint8Array} chunk
 */
function addColumns (r, chunk) {
  const peaks = columnPeaks(chunk, r.format, COLUMN_SECONDS, r.carry)
  r.columns.push(...peaks)
  if (peaks.length > 0) ui.level.value = Math.max(...peaks)
  scheduleRender()
}

/** @param {Run} r */
function buildTimeline (r) {
  const tracks = []
  for (let c = 0; c < r.format.channels; c++) {
    const track = document.createElement('div')
    track.className = 'track'
    const label = document.createElement('span')
    label.className = 'track-label'
    label.textContent = `ch${c}`
    const laneElement = document.createElement('div')
    laneElement.className = 'lane'
    laneElement.dataset.channel = String(c)
    track.append(label, laneElement)
    tracks.push(track)
  }
  const axis = document.createElement('div')
  axis.className = 'axis'
  axis.innerHTML = '<span>0 s</span><span class="axis-end"></span>'
  ui.timeline.replaceChildren(...tracks, axis)
  ui.timelineSummary.textContent = 'No final segments yet.'
}

/** @param {number} channel */
const lane = (channel) => ui.timeline.querySelector(`.lane[data-channel="${channel}"]`)

let renderPending = false
/** @type {Run | null} the run last drawn (the view stays after it ends) */
let shown = null

function scheduleRender () {
  if (run !== null) shown = run
  if (renderPending) return
  renderPending = true
  window.requestAnimationFrame(() => {
    renderPending = false
    if (shown !== null) render(shown)
  })
}

/** @param {Run} r */
function render (r) {
  ui.statSent.textContent = seconds(r.sentSeconds)
  ui.statTaken.textContent = `${seconds(r.takenSeconds)} (on its way: ${seconds(Math.max(0, r.sentSeconds - r.takenSeconds))})`
  renderTimeline(r)
  drawWaveform(r)
}

/** @param {Run} r */
function renderTimeline (r) {
  const total = Math.max(1, r.sentSeconds, ...r.finals.map((f) => f.end))
  const percent = (/** @type {number} */ s) => `${(100 * s / total).toFixed(3)}%`
  for (const f of r.finals) {
    f.block.style.left = percent(f.start)
    f.block.style.width = percent(f.end - f.start)
  }
  // Speech still open: a pending block up to the audio sent.
  for (const old of ui.timeline.querySelectorAll('.block.open')) old.remove()
  for (const region of r.regions) {
    if (region.end !== null) continue
    const open = document.createElement('div')
    open.className = 'block open'
    open.style.left = percent(region.start)
    open.style.width = percent(Math.max(0, r.sentSeconds - region.start))
    lane(region.channel)?.append(open)
  }
  const axisEnd = ui.timeline.querySelector('.axis-end')
  if (axisEnd !== null) axisEnd.textContent = seconds(total)
}

/** @param {string} name */
const cssColor = (name) => window.getComputedStyle(document.documentElement).getPropertyValue(name).trim()

/** @param {Run} r */
function drawWaveform (r) {
  const canvas = ui.waveform
  const ratio = window.devicePixelRatio || 1
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio))
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio))
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width
    canvas.height = height
  }
  const g = canvas.getContext('2d')
  if (g === null) return
  const audioEnd = r.columns.length * COLUMN_SECONDS
  const windowEnd = Math.max(WAVEFORM_SECONDS, audioEnd)
  const windowStart = windowEnd - WAVEFORM_SECONDS
  const x = (/** @type {number} */ s) => (s - windowStart) / WAVEFORM_SECONDS * width
  g.fillStyle = cssColor('--wave-bg')
  g.fillRect(0, 0, width, height)
  // Speech, each channel in its own band.
  const band = height / r.format.channels
  g.fillStyle = cssColor('--speech')
  for (const region of r.regions) {
    const from = Math.max(region.start, windowStart)
    const to = Math.min(region.end ?? audioEnd, windowEnd)
    if (to > from) g.fillRect(x(from), region.channel * band, Math.max(1, x(to) - x(from)), band)
  }
  // Seconds.
  g.fillStyle = cssColor('--muted')
  g.font = `${11 * ratio}px system-ui, sans-serif`
  for (let s = Math.ceil(windowStart); s <= windowEnd; s++) {
    g.fillRect(x(s), height - 6 * ratio, ratio, 6 * ratio)
    g.fillText(`${s} s`, x(s) + 3 * ratio, height - 3 * ratio)
  }
  // The waveform: each column's peak, mirrored around the middle.
  g.fillStyle = cssColor('--wave')
  const first = Math.max(0, Math.floor(windowStart / COLUMN_SECONDS))
  const columnWidth = Math.max(1, width * COLUMN_SECONDS / WAVEFORM_SECONDS - ratio)
  for (let i = first; i < r.columns.length; i++) {
    const peak = r.columns[i] ?? 0
    const h = Math.max(ratio, peak * (height - 14 * ratio))
    g.fillRect(x(i * COLUMN_SECONDS), (height - 8 * ratio - h) / 2, columnWidth, h)
  }
}

// ---- wiring ---------------------------------------------------------------------------------

/** @param {unknown} error */
function errorText (error) {
  if (error instanceof Error) return error.message
  return String(error)
}

/**
 * The function, called at most once: later calls get the first call's promise.
 * @param {() => Promise<void>} f
 * @returns {() => Promise<void>}
 */
function once (f) {
  /** @type {Promise<void> | null} */
  let called = null
  return () => (called ??= f())
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

ui.fileFormats.textContent = `${WAV_FORMATS} is sent as it is. Other formats your browser decodes (MP3, Ogg, FLAC, ...) are decoded and sent as 32-bit float at 48 kHz.`
if (!window.isSecureContext) {
  ui.contextWarning.hidden = false
  ui.contextWarning.textContent = 'This page is not in a secure context (it is served over http from a host other than localhost). Browsers allow the microphone, AudioWorklet and crypto.subtle only over https or on localhost: files still stream, without the sha256 check.'
}
setRunning(false)

ui.micStart.addEventListener('click', () => { void startMicrophoneRun() })
ui.fileStart.addEventListener('click', () => { void startFileRun() })
ui.stop.addEventListener('click', () => { if (run !== null) void finish(run) })
ui.file.addEventListener('change', () => setRunning(run !== null))

// Dropping a file on the file box chooses it (the file input stays the keyboard's way).
ui.fileBox.addEventListener('dragover', (event) => {
  event.preventDefault()
  ui.fileBox.classList.add('dragging')
})
ui.fileBox.addEventListener('dragleave', () => ui.fileBox.classList.remove('dragging'))
ui.fileBox.addEventListener('drop', (event) => {
  event.preventDefault()
  ui.fileBox.classList.remove('dragging')
  const files = event.dataTransfer?.files
  if (files === undefined || files.length === 0 || run !== null) return
  ui.file.files = files
  setRunning(false)
  log(`dropped ${files[0]?.name ?? 'a file'}: press Stream file`)
  ui.fileStart.focus()
})
window.addEventListener('resize', scheduleRender)
