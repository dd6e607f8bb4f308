// The capacity benchmark's load generator, a process of its own so its CPU is not the server's.
// It opens N WebSocket streams, sends each a speech fixture at real time in 20 ms frames and
// measures, per stream, the latency of every final from the moment the frame holding the true
// end of that utterance was sent. Streams are staggered twice over: their frames are spread
// across the 20 ms period (not all sent in one burst), and each starts at a different point of
// the looped fixture (so utterances do not all end at once, as they would not on a real service).
//
// Input: one JSON argument (GeneratorPlan). Output: one JSON line on stdout (GeneratorReport).
// Against the bare sink (bare-ws-sink.ts) there are no finals: only `end` is awaited.
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { loadFixture } from '../../test/helpers/fixtures.ts'

export interface GeneratorPlan {
  url: string // ws://host:port/api/v1/segmented or the bare sink
  streams: number
  seconds: number // audio per stream
  fixture: string
  bare: boolean
  // Tolerance when matching a final to a true utterance end, in seconds.
  tolerance: number
}

export interface StreamOutcome {
  latencies: number[] // ms, one per matched final
  vadEndLatencies: number[] // ms, the `inactive` (speech end) event of the same utterances: the VAD's share
  vadStartLatencies: number[] // ms, the `active` (speech start) event, from the frame holding the true start of speech
  expected: number // true utterance ends in the audio sent
  matched: number // of those, how many got a final
  extraFinals: number // finals that matched no true end (mis-segmentation, not loss)
  ended: boolean
  samplesSent: number
  samplesReceived: number | null // from `end`
  errors: string[]
}

export interface GeneratorReport {
  outcomes: StreamOutcome[]
  generatorCpuMs: number
  wallSeconds: number // first frame to last `end`
  sendingSeconds: number // first frame to last frame
  maxBehindMs: number // worst lateness of a frame against its schedule
  audioSeconds: number
}

const FRAME_MS = 20

interface Live {
  socket: WebSocket
  pcm: Uint8Array // this stream's audio: the fixture looped, starting at its own offset
  frameBytes: number
  frames: number
  startAt: number // performance.now() of frame 0
  next: number // next frame to send
  sentAt: Float64Array // when each frame was sent
  trueEnds: number[] // seconds into this stream's audio
  trueStarts: number[] // of the same utterances
  finals: Array<{ end: number, at: number }>
  inactives: Array<{ end: number, at: number }>
  actives: Array<{ start: number, at: number }>
  outcome: StreamOutcome
  done: Promise<void>
}

async function run (plan: GeneratorPlan): Promise<GeneratorReport> {
  const fixture = loadFixture(plan.fixture)
  const { format } = fixture
  const bytesPerSecond = format.sample_rate * format.channels * format.bit_depth / 8
  const frameBytes = bytesPerSecond * FRAME_MS / 1000
  const frames = Math.round(plan.seconds * 1000 / FRAME_MS)
  const totalBytes = frames * frameBytes
  const speech = fixture.speech[0] ?? []
  const cpu = process.cpuUsage()

  const open = async (index: number): Promise<Live> => {
    // Start at a fraction of the fixture, whole sample frames only.
    const bytesPerSample = format.channels * format.bit_depth / 8
    const offsetBytes = Math.floor(fixture.pcm.length * index / plan.streams / bytesPerSample) * bytesPerSample
    const pcm = new Uint8Array(totalBytes)
    for (let at = 0; at < totalBytes;) {
      const from = at === 0 ? offsetBytes : 0
      const piece = fixture.pcm.subarray(from, Math.min(fixture.pcm.length, from + totalBytes - at))
      pcm.set(piece, at)
      at += piece.length
    }
    // The true ends in this stream's own time.
    const offset = offsetBytes / bytesPerSecond
    const trueEnds: number[] = []
    const trueStarts: number[] = []
    for (let rep = 0; rep * fixture.duration - offset < plan.seconds + fixture.duration; rep++) {
      for (const [start, end] of speech) {
        const at = rep * fixture.duration + end - offset
        // An utterance cut by the stream's start or stop is not counted: its end is not speech's.
        if (at > 0.2 && rep * fixture.duration + start - offset >= 0 && at < plan.seconds - 0.1) {
          trueEnds.push(at)
          trueStarts.push(rep * fixture.duration + start - offset)
        }
      }
    }
    const socket = new WebSocket(plan.url, { perMessageDeflate: false })
    await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
    const outcome: StreamOutcome = { latencies: [], vadEndLatencies: [], vadStartLatencies: [], expected: plan.bare ? 0 : trueEnds.length, matched: 0, extraFinals: 0, ended: false, samplesSent: frames * frameBytes / bytesPerSample, samplesReceived: null, errors: [] }
    const live: Live = { socket, pcm, frameBytes, frames, startAt: 0, next: 0, sentAt: new Float64Array(frames), trueEnds, trueStarts, finals: [], inactives: [], actives: [], outcome, done: Promise.resolve() }
    live.done = new Promise<void>((resolve) => {
      socket.on('message', (data, isBinary) => {
        if (isBinary) return
        const event = JSON.parse(data.toString()) as { type: string, is_final?: boolean, end_time?: number, time?: number, samples_received?: number[], code?: string, message?: string }
        if (event.type === 'segment' && event.is_final === true && typeof event.end_time === 'number') live.finals.push({ end: event.end_time, at: performance.now() })
        if (event.type === 'inactive' && typeof event.time === 'number') live.inactives.push({ end: event.time, at: performance.now() })
        if (event.type === 'active' && typeof event.time === 'number') live.actives.push({ start: event.time, at: performance.now() })
        if (event.type === 'error') outcome.errors.push(`${event.code ?? '?'}: ${event.message ?? ''}`)
        if (event.type === 'end') {
          outcome.ended = true
          outcome.samplesReceived = event.samples_received?.[0] ?? null
          resolve()
        }
      })
      socket.once('close', () => { resolve() })
    })
    socket.send(JSON.stringify({ request: 'start', format, interim_results: false }))
    return live
  }

  // Open the connections a few at a time, as clients arriving would.
  const lives: Live[] = []
  for (let i = 0; i < plan.streams; i += 20) {
    lives.push(...await Promise.all(Array.from({ length: Math.min(20, plan.streams - i) }, (_, k) => open(i + k))))
  }

  const t0 = performance.now() + 100
  lives.forEach((live, i) => { live.startAt = t0 + i * FRAME_MS / plan.streams })
  let maxBehind = 0
  let remaining = lives.length
  while (remaining > 0) {
    const now = performance.now()
    for (const live of lives) {
      while (live.next < live.frames && live.startAt + live.next * FRAME_MS <= now) {
        const k = live.next++
        maxBehind = Math.max(maxBehind, now - (live.startAt + k * FRAME_MS))
        live.sentAt[k] = now
        live.socket.send(live.pcm.subarray(k * live.frameBytes, (k + 1) * live.frameBytes))
        if (live.next === live.frames) {
          live.socket.send(JSON.stringify({ request: 'stop' }))
          remaining--
        }
      }
    }
    await sleep(1)
  }
  const sendingSeconds = (performance.now() - t0) / 1000
  // The 60 s wait is cancelled once every stream ended: its timer would keep the process (and
  // the benchmark waiting for its report) alive for the rest of the minute.
  const giveUp = new AbortController()
  await Promise.race([Promise.all(lives.map((live) => live.done)), sleep(60_000, undefined, { signal: giveUp.signal }).catch(() => {})])
  giveUp.abort()
  const wallSeconds = (performance.now() - t0) / 1000

  for (const live of lives) {
    const { outcome } = live
    if (!outcome.ended) outcome.errors.push('no end within 60 s of the stop')
    live.socket.close()
    if (plan.bare) continue
    const used = new Set<number>()
    // When the frame holding this moment of the stream's audio was sent.
    const sentAt = (seconds: number): number => live.sentAt[Math.min(live.frames - 1, Math.floor(seconds * 1000 / FRAME_MS))] as number
    for (const trueStart of live.trueStarts) {
      const active = live.actives.find((a) => Math.abs(a.start - trueStart) <= plan.tolerance)
      if (active !== undefined) outcome.vadStartLatencies.push(active.at - sentAt(trueStart))
    }
    for (const trueEnd of live.trueEnds) {
      let best = -1
      for (let f = 0; f < live.finals.length; f++) {
        if (used.has(f)) continue
        const distance = Math.abs((live.finals[f] as { end: number }).end - trueEnd)
        if (distance <= plan.tolerance && (best < 0 || distance < Math.abs((live.finals[best] as { end: number }).end - trueEnd))) best = f
      }
      if (best < 0) continue
      used.add(best)
      outcome.matched++
      outcome.latencies.push((live.finals[best] as { at: number }).at - sentAt(trueEnd))
      const inactive = live.inactives.find((i) => Math.abs(i.end - trueEnd) <= plan.tolerance)
      if (inactive !== undefined) outcome.vadEndLatencies.push(inactive.at - sentAt(trueEnd))
    }
    outcome.extraFinals = live.finals.length - used.size
  }
  const used = process.cpuUsage(cpu)
  return {
    outcomes: lives.map((live) => live.outcome),
    generatorCpuMs: (used.user + used.system) / 1000,
    wallSeconds,
    sendingSeconds,
    maxBehindMs: maxBehind,
    audioSeconds: plan.streams * frames * FRAME_MS / 1000
  }
}

const plan = JSON.parse(process.argv[2] ?? '{}') as GeneratorPlan
process.stdout.write(JSON.stringify(await run(plan)) + '\n')
