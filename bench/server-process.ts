// The real server as the benchmarks run it: a child process started as `npm start` starts it
// (`node src/server.ts`), its config from a temporary file named by STREAMER_CONFIG, on a free
// loopback port, awaited until /api/v1/ready answers 200. Shared by capacity.bench.ts,
// single-stream.bench.ts and stream-memory.bench.ts.
// BENCH_SERVER_ARGS adds Node options to the server, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { answersReady, until } from '../test/helpers/waiting.ts'

const root = fileURLToPath(new URL('..', import.meta.url))

/** The dummy model with no delay, no jitter and no failures: the figures are the server's, not the model's. */
export const ZERO_DELAY_MODEL = { delay: 0, constant_factor: 0, jitter: 0, failure_rate: 0, panic_rate: 0, warmup_penalty: 1 }

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    }).on('error', reject)
  })
}

/**
 * Starts the server on `port` with `config` (written to a temporary config.json; PORT, HOST and
 * LOG_LEVEL=warn come from the environment) and resolves once it is ready (at most 60 s).
 * `nodeArgs` are Node options for the server, before BENCH_SERVER_ARGS.
 */
export async function startServer (port: number, config: Record<string, unknown>, tmpPrefix = 'bench-', nodeArgs: string[] = []): Promise<ChildProcess> {
  const dir = mkdtempSync(join(tmpdir(), tmpPrefix))
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config))
  const args = [...nodeArgs, ...(process.env.BENCH_SERVER_ARGS ?? '').split(' ').filter(Boolean), 'src/server.ts']
  const server = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', STREAMER_CONFIG: join(dir, 'config.json') },
    stdio: ['ignore', 'inherit', 'inherit']
  })
  const ready = await until(async () => server.exitCode !== null || await answersReady(`http://127.0.0.1:${port}`), 60_000)
  if (ready && server.exitCode === null) return server
  server.kill('SIGKILL')
  throw new Error(server.exitCode !== null ? `the server exited (code ${server.exitCode}) before it was ready` : 'the server did not become ready within 60 s')
}

/** SIGTERM (the server drains what is still open), then SIGKILL if it has not exited within `graceMs`. */
export async function stopServer (server: ChildProcess, graceMs = 5000): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return
  const exited = new Promise<void>((resolve) => { server.once('exit', () => { resolve() }) })
  server.kill('SIGTERM')
  const timer = setTimeout(() => { server.kill('SIGKILL') }, graceMs)
  await exited
  clearTimeout(timer)
}

/** Kills `server` if this process exits (an uncaught error, process.exit) or is interrupted first. */
export function killOnExit (server: ChildProcess): void {
  const kill = (): void => { if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL') }
  process.once('exit', kill)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      kill()
      process.exit(130)
    })
  }
}

/** Unlabelled metrics' values from the server's /metrics, by name; a name absent (or /metrics unreachable) is null. */
export async function metricValues<Name extends string> (port: number, names: readonly Name[]): Promise<Record<Name, number | null>> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then(async (r) => await r.text(), () => '')
  const out = {} as Record<Name, number | null>
  for (const name of names) {
    const match = new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(text)
    out[name] = match === null ? null : Number(match[1])
  }
  return out
}

/**
 * Bytes sent to `port` that the server has not read yet, held by the kernel: the receive queues
 * of the server's sockets plus the send queues of the clients' sockets to it (/proc/net/tcp,
 * tcp6). This is where TCP backpressure leaves a client's audio while the server does not read.
 */
export function unreadBytes (port: number): number {
  const portOf = (address: string): number => Number.parseInt(address.slice(address.lastIndexOf(':') + 1), 16)
  let total = 0
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, remote, state, queues] = line.trim().split(/\s+/)
      if (local === undefined || remote === undefined || queues === undefined || state === '0A') continue // 0A: listening
      const [tx = '0', rx = '0'] = queues.split(':')
      if (portOf(local) === port) total += Number.parseInt(rx, 16)
      else if (portOf(remote) === port) total += Number.parseInt(tx, 16)
    }
  }
  return total
}
