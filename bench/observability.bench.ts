// What metrics and tracing cost per audio frame. A session is fed 20 ms frames of 16 kHz s16
// speech-like audio (decode, VAD and model stages all run; the VAD and model are instant fakes
// so the pipeline's own CPU is what is measured), with no observer, with the metrics observer
// (tracing off: what a server without OTEL_* variables runs), and with metrics and tracing on
// (spans handed to an exporter that drops them). Run: node bench/observability.bench.ts
import type { SpanExporter } from '@opentelemetry/sdk-trace-node'
import type { StreamEvent } from '../schemas/events.ts'
import type { SessionServices, StageObserver, VadStreamLike } from '../src/core/services.ts'
import { Session } from '../src/core/session.ts'
import { StreamerMetrics } from '../src/observability/metrics.ts'
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
}

async function stream (variant: Variant): Promise<Run> {
  let ended = 0
  const wrapped = variant(() => { ended++ })
  const session = new Session({ mode: 'segmented', format, interimResults: false, services: services(wrapped.observer), emit: wrapped.emit })
  // Wall time, not process.cpuUsage(): getrusage ticks are too coarse for microseconds/frame.
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
  if (ended === 0) throw new Error('the stream produced no events')
  return { whole, push: Number(push) }
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
const pick = { pushAudio: (r: Run) => r.push / frames, 'whole stream': (r: Run) => r.whole / frames }
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

// The observer calls a frame makes, alone: received() + stage('decode'), without and with a
// session span (tracing adds the decode aggregate: one performance.now() and three adds).
function observerCalls (tracingOn: boolean): number {
  const session = new StreamTelemetry({ metrics, tracing: () => tracingOn }).openSession({ id: 'micro', transport: 'websocket', mode: 'segmented', format, traceparent: undefined })
  const calls = 2_000_000
  for (let i = 0; i < calls / 10; i++) { session.received(640); session.stage('decode', 0.02, 0.00001) }
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < calls; i++) { session.received(640); session.stage('decode', 0.02, 0.00001) }
  return Number(process.hrtime.bigint() - t0) / calls
}
console.log(`observer calls per frame alone (received + stage decode): metrics ${observerCalls(false).toFixed(0)} ns, metrics+tracing ${observerCalls(true).toFixed(0)} ns`)
