// CPU time and memory of a process and of its threads, read from /proc (Linux), for the
// benchmarks that run the server as a child process.
import { readFileSync, readdirSync } from 'node:fs'

const TICKS_PER_SECOND = 100 // Linux USER_HZ

// The fields of /proc/<pid>[/task/<tid>]/stat after the command name, or null if it is gone.
function statFields (path: string): { name: string, fields: string[] } | null {
  try {
    const stat = readFileSync(path, 'utf8')
    return { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), fields: stat.slice(stat.lastIndexOf(') ') + 2).split(' ') }
  } catch {
    return null
  }
}

// utime + stime, in seconds (sampled at the 10 ms tick).
function ticksSeconds (fields: string[]): number {
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND
}

/** CPU seconds of one process, all its threads. Throws once the process is gone: a figure of a dead server is no figure. */
export function processCpuSeconds (pid: number): number {
  const stat = statFields(`/proc/${pid}/stat`)
  if (stat === null) throw new Error(`process ${pid} is gone`)
  return ticksSeconds(stat.fields)
}

/** Resident set size in kB, or null once the process is gone. */
export function rssKb (pid: number): number | null {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match === null ? null : Number(match[1])
  } catch {
    return null
  }
}

/** CPU seconds of `pid` and every descendant process (each with all its threads). */
export function treeCpuSeconds (pid: number): number {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = statFields(`/proc/${entry}/stat`)
    if (stat === null) continue
    const parent = Number(stat.fields[1])
    children.set(parent, [...(children.get(parent) ?? []), Number(entry)])
  }
  let total = 0
  const queue = [pid]
  while (queue.length > 0) {
    const next = queue.pop() as number
    const stat = statFields(`/proc/${next}/stat`)
    if (stat !== null) total += ticksSeconds(stat.fields) // a descendant may have exited meanwhile
    queue.push(...(children.get(next) ?? []))
  }
  return total
}

/**
 * CPU seconds per thread of one process, keyed `name#tid` (main loop, VAD and model workers,
 * libuv, GC). utime + stime are sampled at the tick, which misattributes threads that wake
 * often for short bursts (a VAD task is ~1 ms); schedstat's first field is the scheduler's exact
 * run time in ns, used when the kernel provides it.
 */
export function threadCpuSeconds (pid: number): Map<string, number> {
  const out = new Map<string, number>()
  let tids: string[]
  try {
    tids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return out // the process ended
  }
  for (const tid of tids) {
    const stat = statFields(`/proc/${pid}/task/${tid}/stat`)
    if (stat === null) continue // the thread ended
    const ns = scheduledNs(`/proc/${pid}/task/${tid}/schedstat`)
    out.set(`${stat.name}#${tid}`, ns !== null ? ns / 1e9 : ticksSeconds(stat.fields))
  }
  return out
}

function scheduledNs (file: string): number | null {
  try {
    const ns = Number(readFileSync(file, 'utf8').split(' ')[0])
    return Number.isFinite(ns) && ns > 0 ? ns : null
  } catch {
    return null
  }
}
