// What metrics and tracing cost per audio frame. A session is fed 20 ms frames of 16 kHz s16
// speech-like audio (decode, VAD and model stages all run; the VAD and model are instant fakes
// so the pipeline's own CPU is what is measured), with no observer, with the metrics observer
// (tracing off: what a server without OTEL_* variables runs), and with metrics and tracing on
// (spans handed to an exporter that drops them). Then the metric updates alone, per frame and
// per audio second against the capacity budget, and prom-client's per-call costs.
// Run: node bench/observability.bench.ts
import type { SpanExporter } from '@opentelemetry/sdk-trace-node'
import { Counter, Histogram, Registry } from 'prom-client'
import { MODEL_SAMPLE_RATE } from '../schemas/audio-format.ts'
import type { StreamEvent } from '../schemas/events.ts'
import type { InferenceOutcome, SessionServices, Stage, StageObserver, VadStreamLike } from '../src/core/services.ts'
import { Session } from '../src/core/session.ts'
import { PROCESSING_BUCKETS, RTF_BUCKETS, StreamerMetrics } from '../src/observability/metrics.ts'
import { StreamTelemetry } from '../src/observability/session-telemetry.ts'
import { startTracing } from '../src/observability/tracing.ts'
import { TEST_LIMITS } from '../test/helpers/fake-services.ts'

const RATE = 16000
const FRAME_BYTES = RATE * 0.02 * 2 // 20 ms of s16 mono
const SECONDS = 20
const ROUNDS = 41

// 1 s of tone, 1 s of silence, repeated: utterances for the VAD and the model.
function audio (seconds: number): Uint8Array {
  const samples = new Int16Array(RATE * seconds)
  for (let i = 0; i < samples.length; i++) {
    const speaking = Math.floor(i / RATE) % 2 === 0
    samples[i] = speaking ? Math.round(8000 * Math.sin(2 * Math.PI * 220 * i / RATE)) : 0
  }
  return new Uint8Array(samples.buffer)
}

// Speech when a 512-sample frame's RMS is above 0.05; answers in a microtask.
const instantVad = (): VadStreamLike => ({
  process: async (frames) => {
    const out = new Float32Array(frames.length / 512)
    for (let f = 0; f < out.length; f++) {
      let sum = 0
      for (let i = f * 512; i < (f + 1) * 512; i++) sum += (frames[i] ?? 0) ** 2
      out[f] = Math.sqrt(sum / 512) > 0.05 ? 0.9 : 0.1
    }
    return out
  }
})

const services = (observer: StageObserver | undefined): SessionServices => ({
  infer: async (samples) => ({ count: samples.length }),
  createVadStream: instantVad,
  vad: { threshold: 0.5, min_silence_ms: 300, speech_pad_ms: 30, threads: 1 },
  limits: TEST_LIMITS,
  observer
})

const pcm = audio(SECONDS)
const frames = pcm.length / FRAME_BYTES
const format = { channels: 1, sample_rate: RATE, bit_depth: 16, is_float: false }

type Variant = (emit: (event: StreamEvent) => void) => { observer: StageObserver | undefined, emit: (event: StreamEvent) => void, done: () => void }

interface Run {
  whole: number // wall nanoseconds for the whole stream, VAD and inference callbacks included
  push: number // wall nanoseconds inside pushAudio (decode + resample + hand-off), summed
  cpu: number // process CPU nanoseconds for the whole stream
}

async function stream (variant: Variant): Promise<Run> {
  let ended = 0
  const wrapped = variant(() => { ended++ })
  const session = new Session({ mode: 'segmented', format, interimResults: false, services: services(wrapped.observer), emit: wrapped.emit })
  // Wall time per push: getrusage is too coarse for one push. Per stream (milliseconds) CPU
  // time is fine, and on a shared machine it leaves out other processes' turns.
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  let push = 0n
  for (let at = 0; at < pcm.length; at += FRAME_BYTES) {
    const before = process.hrtime.bigint()
    session.pushAudio(pcm.subarray(at, at + FRAME_BYTES))
    push += process.hrtime.bigint() - before
    // A live stream's frames arrive in separate turns of the event loop: let the VAD run.
    if ((at / FRAME_BYTES) % 5 === 4) await new Promise((resolve) => setImmediate(resolve))
  }
  await session.finish()
  wrapped.done()
  const whole = Number(process.hrtime.bigint() - start)
  const used = process.cpuUsage(cpu)
  if (ended === 0) throw new Error('the stream produced no events')
  return { whole, push: Number(push), cpu: (used.user + used.system) * 1000 }
}

const bare: Variant = (emit) => ({ observer: undefined, emit, done: () => {} })
const observed = (telemetry: StreamTelemetry): Variant => (emit) => {
  const session = telemetry.openSession({ id: 'bench', transport: 'websocket', mode: 'segmented', format, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' })
  return { observer: session, emit: (event) => { session.event(event); emit(event) }, done: () => { session.closed('ended') } }
}

const metrics = new StreamerMetrics()
const metricsOnly = observed(new StreamTelemetry({ metrics, tracing: () => false }))
const withTracing = observed(new StreamTelemetry({ metrics, tracing: () => true }))

// ROUNDS of each, variants interleaved so drift (JIT, GC, frequency, other processes) hits all
// alike.
const runs: Record<string, Run[]> = { none: [], metrics: [], 'metrics+tracing': [] }
let spans = 0
const dropping: SpanExporter = {
  export: (batch, done) => { spans += batch.length; done({ code: 0 }) },
  shutdown: async () => {}
}
const tracing = await startTracing({ exporter: dropping, env: {} })
const variants: Array<[string, Variant]> = [['none', bare], ['metrics', metricsOnly], ['metrics+tracing', withTracing]]
for (let i = 0; i < 2; i++) for (const [, variant] of variants) await stream(variant) // warm-up
for (let round = 0; round < ROUNDS; round++) {
  // The order rotates each round so no variant always runs first (after the others' garbage).
  for (let k = 0; k < variants.length; k++) {
    const [name, variant] = variants[(round + k) % variants.length] as [string, Variant]
    runs[name]?.push(await stream(variant))
  }
}
await tracing?.shutdown()

const quantile = (values: number[], q: number): number => values.slice().sort((a, b) => a - b)[Math.floor(q * (values.length - 1))] ?? NaN
const ns = (value: number): string => `${value >= 0 ? ' ' : ''}${value.toFixed(0)}`.padStart(6)
console.log(`${SECONDS} s of 16 kHz s16 mono in 20 ms frames (${frames} pushes per stream), segmented, instant fake VAD and model; ${ROUNDS} rounds`)
console.log('ns per frame, median [p25 .. p75] over rounds:')
const pick = { pushAudio: (r: Run) => r.push / frames, 'whole stream': (r: Run) => r.whole / frames, 'stream CPU': (r: Run) => r.cpu / frames }
for (const [what, get] of Object.entries(pick)) {
  for (const [name] of variants) {
    const values = (runs[name] ?? []).map(get)
    console.log(`  ${what.padEnd(13)} ${name.padEnd(16)} ${ns(quantile(values, 0.5))} [${ns(quantile(values, 0.25))} .. ${ns(quantile(values, 0.75))}]`)
  }
}
// Each round's variants ran back to back: their difference cancels most of the machine's drift.
console.log('cost over none, paired per round, median [p25 .. p75]:')
for (const [what, get] of Object.entries(pick)) {
  for (const [name] of variants.slice(1)) {
    const diffs = (runs[name] ?? []).map((run, i) => get(run) - get((runs.none ?? [])[i] as Run))
    console.log(`  ${what.padEnd(13)} ${name.padEnd(16)} ${ns(quantile(diffs, 0.5))} [${ns(quantile(diffs, 0.25))} .. ${ns(quantile(diffs, 0.75))}]`)
  }
}
console.log(`spans exported with tracing on: ${spans / (ROUNDS + 2)} per stream`)

// The metric updates alone, in the budget's terms. The whole-stream figures above are too noisy
// to resolve ~1 us per frame, so the observer calls one real stream makes (recorded, with their
// real values: bucket scans depend on them) are replayed into a metrics-only session telemetry
// (tracing off, as a server without OTEL_* variables) many times over, timed as a whole.
const BUDGET_MS = 4 // server CPU per audio second per stream, all of it (the capacity goal)
type Call =
  | { kind: 'received', bytes: number }
  | { kind: 'stage', stage: Stage, audioSeconds: number, wallSeconds: number }
  | { kind: 'inference', audioSeconds: number }
  | { kind: 'event', event: StreamEvent }

async function recordCalls (): Promise<Call[]> {
  const calls: Call[] = []
  const observer: StageObserver = {
    stage: (stage, audioSeconds, wallSeconds) => { calls.push({ kind: 'stage', stage, audioSeconds, wallSeconds }) },
    received: (bytes) => { calls.push({ kind: 'received', bytes }) }
  }
  const base = services(observer)
  // The streamer core times each inference for the observer (Streamer.#observed); the bench's
  // session has no core around it, so the call is recorded here.
  const infer: SessionServices['infer'] = async (samples, signal) => {
    const result = await base.infer(samples, signal)
    calls.push({ kind: 'inference', audioSeconds: samples.length / MODEL_SAMPLE_RATE })
    return result
  }
  const session = new Session({ mode: 'segmented', format, interimResults: false, services: { ...base, infer }, emit: (event) => { calls.push({ kind: 'event', event }) } })
  for (let at = 0; at < pcm.length; at += FRAME_BYTES) {
    session.pushAudio(pcm.subarray(at, at + FRAME_BYTES))
    if ((at / FRAME_BYTES) % 5 === 4) await new Promise((resolve) => setImmediate(resolve))
  }
  await session.finish()
  return calls
}

interface ReplayTarget {
  received: (bytes: number) => void
  stage: (stage: Stage, audioSeconds: number, wallSeconds: number) => void
  inference: ((audioSeconds: number, startedAt: number, endedAt: number, outcome: InferenceOutcome) => void) | undefined
  event: (event: StreamEvent) => void
  closed: (state: 'ended' | 'aborted') => void
}

function replay (calls: Call[], open: () => ReplayTarget): void {
  const session = open()
  for (const call of calls) {
    switch (call.kind) {
      case 'received': session.received(call.bytes); break
      case 'stage': session.stage(call.stage, call.audioSeconds, call.wallSeconds); break
      case 'inference': session.inference?.(call.audioSeconds, 0, 2, 'ok'); break
      case 'event': session.event(call.event); break
    }
  }
  session.closed('ended')
}

const calls = await recordCalls()
const tally = (kind: string): number => calls.filter((call) => (call.kind === 'stage' ? call.stage : call.kind) === kind).length
console.log(`\nmetric updates alone: the observer calls of one ${SECONDS} s stream, replayed (tracing off)`)
const kinds: Array<[string, string]> = [['received', 'received'], ['decode', 'stage decode'], ['vad', 'stage vad'], ['model', 'stage model'], ['inference', 'inference'], ['event', 'event']]
console.log(`  calls per audio second: ${kinds.map(([kind, name]) => `${(tally(kind) / SECONDS).toFixed(1)} ${name}`).join(', ')}`)

const replayMetrics = new StreamerMetrics({ runtime: false })
const replayTelemetry = new StreamTelemetry({ metrics: replayMetrics, tracing: () => false })
const openObserved = (): ReplayTarget => replayTelemetry.openSession({ id: 'replay', transport: 'websocket', mode: 'segmented', format, traceparent: undefined })
// The same loop calling methods that do nothing: what the replay itself costs.
const openEmpty = (): ReplayTarget => ({ received: () => {}, stage: () => {}, inference: () => {}, event: () => {}, closed: () => {} })
const REPLAYS = 100
const REPLAY_ROUNDS = 11
function timeReplays (open: () => ReplayTarget): number[] {
  for (let i = 0; i < REPLAYS / 4; i++) replay(calls, open) // warm-up
  const perRound: number[] = []
  for (let round = 0; round < REPLAY_ROUNDS; round++) {
    // CPU time, the budget's unit (GC helper threads included): on a shared machine wall time
    // would also count other processes' turns. A round is ~0.1 s, far above getrusage's grain.
    const cpu = process.cpuUsage()
    for (let i = 0; i < REPLAYS; i++) replay(calls, open)
    const used = process.cpuUsage(cpu)
    perRound.push((used.user + used.system) * 1000 / (REPLAYS * SECONDS)) // ns per audio second
  }
  return perRound
}
const empty = quantile(timeReplays(openEmpty), 0.5)
const observedRounds = timeReplays(openObserved).map((value) => value - empty)
const perSecond = quantile(observedRounds, 0.5)
// received: a counter; decode: three histograms and a counter; vad, model: three histograms;
// inference: a histogram; event: a counter (two for an error).
const errorEvents = calls.filter((call) => call.kind === 'event' && call.event.type === 'error').length
const updates = tally('received') + 4 * tally('decode') + 3 * (tally('vad') + tally('model')) + tally('inference') + tally('event') + errorEvents
const updatesPerFrame = (updates / frames).toFixed(1)
console.log(`  ${updatesPerFrame} metric updates per 20 ms frame: ${(perSecond / 50).toFixed(0)} ns per frame, ${(perSecond / (updates / SECONDS)).toFixed(0)} ns per update`)
console.log(`  ${(perSecond / 1e6).toFixed(4)} ms CPU per audio second per stream [${(quantile(observedRounds, 0.25) / 1e6).toFixed(4)} .. ${(quantile(observedRounds, 0.75) / 1e6).toFixed(4)}], ${(100 * perSecond / 1e6 / BUDGET_MS).toFixed(2)} % of the ${BUDGET_MS} ms budget`)

// prom-client's children (bound with labels() once) on their own: ns per call, with the
// recorded decode values (processing seconds, RTF) and VAD processing seconds.
function perCall (update: (value: number) => void, values: readonly number[]): number {
  const n = 1_000_000
  for (let i = 0; i < n / 4; i++) update(values[i % values.length] as number)
  const rounds: number[] = []
  for (let round = 0; round < 7; round++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) update(values[i % values.length] as number)
    rounds.push(Number(process.hrtime.bigint() - t0) / n)
  }
  return quantile(rounds, 0.5)
}
const stageValues = (stage: Stage, pick: (call: Extract<Call, { kind: 'stage' }>) => number): number[] =>
  calls.flatMap((call) => call.kind === 'stage' && call.stage === stage ? [pick(call)] : [])
const primitives = new Registry()
const histogram = new Histogram({ name: 'h', help: 'h', labelNames: ['stage'] as const, buckets: PROCESSING_BUCKETS, registers: [primitives] }).labels('decode')
const rtfHistogram = new Histogram({ name: 'r', help: 'r', labelNames: ['stage'] as const, buckets: RTF_BUCKETS, registers: [primitives] }).labels('decode')
const counter = new Counter({ name: 'c', help: 'c', labelNames: ['transport'] as const, registers: [primitives] }).labels('websocket')
console.log(`prom-client children, ns per call: histogram observe ${perCall((v) => { histogram.observe(v) }, stageValues('decode', (c) => c.wallSeconds)).toFixed(0)} (decode seconds), ` +
  `${perCall((v) => { rtfHistogram.observe(v) }, stageValues('decode', (c) => c.wallSeconds / c.audioSeconds)).toFixed(0)} (decode RTF), ` +
  `${perCall((v) => { histogram.observe(v) }, stageValues('vad', (c) => c.wallSeconds)).toFixed(0)} (vad seconds); ` +
  `counter inc ${perCall((v) => { counter.inc(v) }, stageValues('decode', (c) => c.audioSeconds)).toFixed(0)}`)
