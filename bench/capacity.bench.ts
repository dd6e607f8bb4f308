// Capacity: how many real-time segmented WebSocket streams one server carries, and what each
// costs, beside the bare limits measured in the same run.
//
// Per stream count N it runs the load generator (bench/capacity/load-generator.ts, a process of
// its own) twice: against a bare `ws` sink (bench/capacity/bare-ws-sink.ts) and against the real
// server, started as `npm start` starts it (bench/server-process.ts: `node src/server.ts`,
// config from STREAMER_CONFIG: a zero-delay dummy model, so the figures are the server's and not
// the model's). Before the loads it measures Silero v5 alone, batched, in one thread
// (bench/capacity/silero-limit.ts), and what a thread pays here to wake from idle
// (bench/capacity/wake-cost.ts): at low load that, not the work, is most of a stream's cost.
//
// Reported per N: server CPU per second of audio per stream (utime+stime from /proc of the
// server's whole process tree, all threads), the same for the bare sink, final latency p50 /
// p90 / p99 from the moment the frame holding the true end of speech was sent (and the speech
// start and end events' latencies), finals lost,
// peak RSS, and event-loop delay p99 (the server's own monitor, read from /metrics).
// Ratios: server CPU to (bare ws + Silero alone), p99 to the goal (silence wait + 150 ms).
//
// Run: node bench/capacity.bench.ts [streams=10,100,200,300,400] [seconds=20]
// Environment: CAPACITY_CONFIG (JSON merged into the server's config, e.g. '{"vad":{"threads":1}}'),
// BENCH_SERVER_ARGS (Node options for the server, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof').
// Writes bench/results/capacity.json.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { GeneratorPlan, GeneratorReport } from './capacity/load-generator.ts'
import { rssKb, threadCpuSeconds, treeCpuSeconds } from './proc-stats.ts'
import { freePort, startServer, ZERO_DELAY_MODEL } from './server-process.ts'

const counts = (process.argv[2] ?? '10,100,200,300,400').split(',').map(Number)
const seconds = Number(process.argv[3] ?? 20)
const here = fileURLToPath(new URL('.', import.meta.url))
const SILENCE_WAIT_MS = 500 // vad.min_silence_ms, the default
const LATENCY_GOAL_MS = SILENCE_WAIT_MS + 150

// Server memory in MB; 0 once it is gone.
const rssMb = (pid: number): number => (rssKb(pid) ?? 0) / 1024

// ---- processes

// The real server (bench/server-process.ts): the zero-delay dummy, room for every stream.
async function startCapacityServer (port: number): Promise<ChildProcess> {
  const config = {
    model: { options: ZERO_DELAY_MODEL },
    limits: { max_sessions: 5000 },
    ...JSON.parse(process.env.CAPACITY_CONFIG ?? '{}') as Record<string, unknown>
  }
  return await startServer(port, config, 'capacity-')
}

async function startSink (port: number): Promise<ChildProcess> {
  const sink = spawn(process.execPath, [join(here, 'capacity/bare-ws-sink.ts'), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    sink.stdout?.once('data', () => { resolve() })
    sink.once('exit', () => { reject(new Error('the bare sink exited')) })
  })
  return sink
}

async function runChild<T> (file: string, arg: string): Promise<T> {
  const child = spawn(process.execPath, [join(here, file), arg], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout?.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => { child.once('exit', resolve) })
  if (code !== 0) throw new Error(`${file} exited with ${code}`)
  return JSON.parse(out) as T
}

// prom-client's monitor (perf_hooks.monitorEventLoopDelay, sampling every 50 ms: the server's
// eventLoopMonitoringPrecision) records the whole interval between its timer's runs, so an idle
// loop reads 50 ms; the delay is what is beyond it. Reading it resets the histogram.
const EVENT_LOOP_RESOLUTION_MS = 50
async function eventLoopP99Ms (port: number): Promise<number | null> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then(async (r) => await r.text(), () => '')
  const match = /^streamer_nodejs_eventloop_lag_p99_seconds\s+(\S+)/m.exec(text)
  return match === null ? null : Math.max(0, Number(match[1]) * 1000 - EVENT_LOOP_RESOLUTION_MS)
}

// ---- one load

interface LoadFigures {
  cpuMsPerAudioSecond: number
  generatorCpuMsPerAudioSecond: number
  latencyMs: { p50: number, p90: number, p99: number, max: number } | null
  vadEndLatencyMs: { p50: number, p99: number } | null // speech end (`inactive`): the VAD's part of it
  // speech start (`active`) from the frame holding the true start: the VAD's decision (Silero needs
  // some speech first) plus what the VAD pool held its frames for a shared run
  vadStartLatencyMs: { p50: number, p99: number } | null
  expected: number
  matched: number
  extraFinals: number
  streamsEnded: number
  samplesLost: number
  errors: string[]
  peakRssMb: number
  eventLoopP99Ms: number | null
  maxBehindMs: number
  wallSeconds: number
  // ms of CPU per audio second per stream, summed by thread name (WorkerThread covers VAD and model workers)
  byThread: Record<string, number>
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number
}

async function load (pid: number, port: number, plan: GeneratorPlan, metrics: boolean): Promise<LoadFigures> {
  if (metrics) await eventLoopP99Ms(port) // resets the server's histogram
  const cpuFrom = treeCpuSeconds(pid)
  const threadsFrom = threadCpuSeconds(pid)
  let peakRss = rssMb(pid)
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, rssMb(pid)) }, 250)
  const report = await runChild<GeneratorReport>('capacity/load-generator.ts', JSON.stringify(plan))
  clearInterval(sampler)
  const cpu = treeCpuSeconds(pid) - cpuFrom
  const byThread: Record<string, number> = {}
  for (const [key, to] of threadCpuSeconds(pid)) {
    const name = key.split('#')[0] as string
    byThread[name] = (byThread[name] ?? 0) + (to - (threadsFrom.get(key) ?? 0)) * 1000 / report.audioSeconds
  }
  const latencies = report.outcomes.flatMap((o) => o.latencies).sort((a, b) => a - b)
  const vadEnds = report.outcomes.flatMap((o) => o.vadEndLatencies).sort((a, b) => a - b)
  const vadStarts = report.outcomes.flatMap((o) => o.vadStartLatencies).sort((a, b) => a - b)
  const sum = (pick: (o: GeneratorReport['outcomes'][number]) => number): number => report.outcomes.reduce((total, o) => total + pick(o), 0)
  return {
    cpuMsPerAudioSecond: cpu * 1000 / report.audioSeconds,
    generatorCpuMsPerAudioSecond: report.generatorCpuMs / report.audioSeconds,
    latencyMs: latencies.length === 0 ? null : { p50: percentile(latencies, 0.5), p90: percentile(latencies, 0.9), p99: percentile(latencies, 0.99), max: latencies.at(-1) as number },
    vadEndLatencyMs: vadEnds.length === 0 ? null : { p50: percentile(vadEnds, 0.5), p99: percentile(vadEnds, 0.99) },
    vadStartLatencyMs: vadStarts.length === 0 ? null : { p50: percentile(vadStarts, 0.5), p99: percentile(vadStarts, 0.99) },
    expected: sum((o) => o.expected),
    matched: sum((o) => o.matched),
    extraFinals: sum((o) => o.extraFinals),
    streamsEnded: sum((o) => o.ended ? 1 : 0),
    samplesLost: sum((o) => o.samplesSent - (o.samplesReceived ?? 0)),
    errors: [...new Set(report.outcomes.flatMap((o) => o.errors))].slice(0, 5),
    peakRssMb: peakRss,
    eventLoopP99Ms: metrics ? await eventLoopP99Ms(port) : null,
    maxBehindMs: report.maxBehindMs,
    wallSeconds: report.wallSeconds,
    byThread
  }
}

// ---- the run

const fixture = 'hello_16k_mono'
console.log(`capacity: ${counts.join(', ')} real-time segmented streams, ${seconds} s of ${fixture} each, 20 ms frames; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`)
const sileroLimit = await runChild<{ byBatch: Record<string, number>, batch8: { warmRunUs: number, coldRunUs: number, idleMs: number } }>('capacity/silero-limit.ts', '1,8,32,64')
const silero = sileroLimit.byBatch
console.log(`Silero v5 alone, one thread, ms CPU per audio second per stream by batch size: ${Object.entries(silero).map(([b, ms]) => `${b}: ${ms.toFixed(2)}`).join(', ')}; ` +
  `one batch-8 run ${sileroLimit.batch8.warmRunUs.toFixed(0)} us warm, ${sileroLimit.batch8.coldRunUs.toFixed(0)} us after ${sileroLimit.batch8.idleMs} ms idle`)
// Not part of the limits (a server cannot avoid them at low load, but neither is it their cause):
// they show what being lightly loaded costs on this machine.
const wake = await runChild<{ timerWakeUs: number, busyTurnUs: number }>('capacity/wake-cost.ts', '')
console.log(`a thread waking from 20 ms idle: ${wake.timerWakeUs.toFixed(0)} us CPU per wake (a loop turn of a busy thread: ${wake.busyTurnUs.toFixed(1)} us)`)

const serverPort = await freePort()
const server = await startCapacityServer(serverPort)
const serverPid = server.pid as number
const results: Array<{ streams: number, bare: LoadFigures, server: LoadFigures, limitMsPerAudioSecond: number }> = []
try {
  // A short load first, so the figures are of warm code (JIT, worker warm-up), not start-up.
  await load(serverPid, serverPort, { streams: 20, seconds: 5, fixture, tolerance: 0.35, url: `ws://127.0.0.1:${serverPort}/api/v1/segmented`, bare: false }, false)
  await sleep(1000)
  for (const streams of counts) {
    const sinkPort = await freePort()
    const sink = await startSink(sinkPort)
    const base = { streams, seconds, fixture, tolerance: 0.35 }
    const bare = await load(sink.pid as number, sinkPort, { ...base, url: `ws://127.0.0.1:${sinkPort}/`, bare: true }, false)
    sink.kill('SIGTERM')
    const measured = await load(serverPid, serverPort, { ...base, url: `ws://127.0.0.1:${serverPort}/api/v1/segmented`, bare: false }, true)
    // Silero's cost at the batch the load can give it: N streams deliver about N frames per 32 ms.
    const batch = [64, 32, 8, 1].find((b) => b <= streams) ?? 1
    const limit = bare.cpuMsPerAudioSecond + (silero[String(batch)] ?? 0)
    results.push({ streams, bare, server: measured, limitMsPerAudioSecond: limit })
    const l = measured.latencyMs
    console.log(`N=${streams}: server ${measured.cpuMsPerAudioSecond.toFixed(2)} ms/audio-s/stream (bare ws ${bare.cpuMsPerAudioSecond.toFixed(2)} + Silero@${batch} ${(silero[String(batch)] ?? 0).toFixed(2)} = ${limit.toFixed(2)}; ratio ${(measured.cpuMsPerAudioSecond / limit).toFixed(2)}), ` +
      `final latency p50/p90/p99 ${l === null ? 'n/a' : `${l.p50.toFixed(0)}/${l.p90.toFixed(0)}/${l.p99.toFixed(0)} ms (p99/goal ${(l.p99 / LATENCY_GOAL_MS).toFixed(2)})`}, ` +
      `speech end (inactive) p50/p99 ${measured.vadEndLatencyMs === null ? 'n/a' : `${measured.vadEndLatencyMs.p50.toFixed(0)}/${measured.vadEndLatencyMs.p99.toFixed(0)} ms`}, ` +
      `speech start (active) p50/p99 ${measured.vadStartLatencyMs === null ? 'n/a' : `${measured.vadStartLatencyMs.p50.toFixed(0)}/${measured.vadStartLatencyMs.p99.toFixed(0)} ms`}, finals ${measured.matched}/${measured.expected}, samples lost ${measured.samplesLost}, ended ${measured.streamsEnded}/${streams}, RSS peak ${measured.peakRssMb.toFixed(0)} MB, event loop p99 ${measured.eventLoopP99Ms?.toFixed(1) ?? '?'} ms, generator max lateness ${measured.maxBehindMs.toFixed(0)} ms` +
      `\n  server CPU by thread (ms/audio-s/stream): ${Object.entries(measured.byThread).filter(([, v]) => v >= 0.01).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}` +
      (measured.errors.length > 0 ? `, errors: ${measured.errors.join('; ')}` : ''))
    await sleep(2000)
  }
} finally {
  server.kill('SIGTERM')
}

const rows = results.map(({ streams, bare, server: s, limitMsPerAudioSecond: limit }) => {
  const l = s.latencyMs
  return `| ${streams} | ${s.cpuMsPerAudioSecond.toFixed(2)} | ${bare.cpuMsPerAudioSecond.toFixed(2)} | ${limit.toFixed(2)} | ${(s.cpuMsPerAudioSecond / limit).toFixed(2)} | ${l === null ? 'n/a' : `${l.p50.toFixed(0)} / ${l.p90.toFixed(0)} / ${l.p99.toFixed(0)}`} | ${l === null ? 'n/a' : (l.p99 / LATENCY_GOAL_MS).toFixed(2)} | ${s.expected - s.matched} of ${s.expected} | ${s.samplesLost} | ${s.peakRssMb.toFixed(0)} | ${s.eventLoopP99Ms?.toFixed(1) ?? '?'} |`
})
console.log('\n| streams | server CPU ms / audio s / stream | bare ws | limit (bare ws + Silero) | ratio | final latency p50 / p90 / p99 ms | p99 / goal (650 ms) | finals missing | samples lost | peak RSS MB | event loop p99 ms |')
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
console.log(rows.join('\n'))
mkdirSync(join(here, 'results'), { recursive: true })
const out = join(here, 'results', 'capacity.json')
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: totalmem() / 2 ** 30, node: process.version }, seconds, fixture, latencyGoalMs: LATENCY_GOAL_MS, silero: sileroLimit, wake, config: process.env.CAPACITY_CONFIG ?? null, results }, null, 2))
console.log(`wrote ${out}`)
