// The bare limit of voice activity detection: Silero v5 (the sequence form the server runs)
// alone in one thread (no Piscina, no server): one 32 ms frame per stream per run, `batch`
// streams per run. Live streams' requests carry 3 frames (segmented-runner.ts), which that form
// runs in one run, so per frame the server's runs can cost less than this. Prints one JSON line: CPU ms per second of audio per stream at each batch size (runs back to
// back, so the thread and its caches stay warm), and the CPU of one batch-8 run when the thread
// has been idle for 64 ms first (VAD_SHARED_RUN_MS: how a lightly loaded server runs it) beside
// the same run warm.
// Run by capacity.bench.ts: node bench/capacity/silero-limit.ts <batch,batch,...>
import { setTimeout as sleep } from 'node:timers/promises'
import { SileroVad, VAD_CONTEXT_SAMPLES, VAD_FRAME_SAMPLES, VAD_SAMPLE_RATE, VAD_STATE_SIZE, type VadItem } from '../../src/audio/silero-vad.ts'

const batches = (process.argv[2] ?? '1,8,32').split(',').map(Number)
const FRAME_SECONDS = VAD_FRAME_SAMPLES / VAD_SAMPLE_RATE

function noise (seed: number): Float32Array {
  const out = new Float32Array(VAD_FRAME_SAMPLES)
  let x = seed
  for (let i = 0; i < out.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = ((x / 4294967296) * 2 - 1) * 0.3
  }
  return out
}

const vad = await SileroVad.load()
const items = (batch: number): VadItem[] => Array.from({ length: batch }, (_, i) => ({ frames: noise(i + 1), context: new Float32Array(VAD_CONTEXT_SAMPLES), state: new Float32Array(VAD_STATE_SIZE) }))
await vad.run(items(8)) // warm-up
const result: Record<string, number> = {}
for (const batch of batches) {
  const runs = Math.max(20, Math.round(4000 / batch))
  const cpu = process.cpuUsage()
  for (let r = 0; r < runs; r++) await vad.run(items(batch))
  const used = process.cpuUsage(cpu)
  const audioSeconds = runs * batch * FRAME_SECONDS
  result[String(batch)] = (used.user + used.system) / 1000 / audioSeconds
}
// Idle first: the wake and the cold caches are part of the run's cost (see wake-cost.ts).
const IDLE_MS = 64
const COLD_RUNS = 40
const eight = items(8)
const runUs = async (idleMs: number): Promise<number> => {
  let total = 0
  for (let r = 0; r < COLD_RUNS; r++) {
    if (idleMs > 0) await sleep(idleMs)
    const cpu = process.cpuUsage()
    await vad.run(eight)
    const used = process.cpuUsage(cpu)
    total += used.user + used.system
  }
  return total / COLD_RUNS
}
const warmRunUs = await runUs(0)
const coldRunUs = await runUs(IDLE_MS)
await vad.close()
process.stdout.write(JSON.stringify({ byBatch: result, batch8: { warmRunUs, coldRunUs, idleMs: IDLE_MS } }) + '\n')
