// What a thread pays on this machine to wake from idle: the CPU one Node thread spends per wake
// when a timer wakes its idle loop every 20 ms (a live stream's frame interval) and it does
// nothing else. On the 2-core VM of bench/README.md this was 225-260 us, against 2-3 us for a
// turn of a loop that never sleeps, and it is why a lightly loaded server costs more per stream than a busy
// one: at 10 streams every frame and every VAD task meets a cold thread (and cold caches),
// at 300 they meet a busy one. Prints one JSON line: { "timerWakeUs", "busyTurnUs" }.
// Run by capacity.bench.ts: node bench/capacity/wake-cost.ts
import { setTimeout as sleep } from 'node:timers/promises'

const WAKES = 150
const INTERVAL_MS = 20

const cpuUs = (): number => {
  const used = process.threadCpuUsage()
  return used.user + used.system
}

await sleep(100) // start-up work out of the way
let from = cpuUs()
for (let i = 0; i < WAKES; i++) await sleep(INTERVAL_MS)
const timerWakeUs = (cpuUs() - from) / WAKES

// The same number of loop turns without sleeping: what a turn costs when the thread stays busy.
from = cpuUs()
for (let i = 0; i < WAKES * 20; i++) await new Promise<void>((resolve) => { setImmediate(resolve) })
const busyTurnUs = (cpuUs() - from) / (WAKES * 20)

process.stdout.write(JSON.stringify({ timerWakeUs, busyTurnUs }) + '\n')
