import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { StreamEvent } from '../../schemas/events.ts'

// The CLI as a user runs it: a child process, its exit code and its two output streams.
export const CLI = fileURLToPath(new URL('../../src/cli/streamer-client.ts', import.meta.url))
export const BIN = fileURLToPath(new URL('../../bin/streamer-client.js', import.meta.url))
// Written out rather than imported from src/cli: the test holds the CLI to the server's names.
export const TRANSPORTS = ['websocket', 'http', 'paired'] as const
// The CLI's earlier names, which must still work: alias -> the transport it means.
export const TRANSPORT_ALIASES = { ws: 'websocket', h2: 'http', session: 'paired' } as const
// Far above any run here: a CLI still alive then is hung, and the test says so.
const HANG_MS = 60000

export interface CliRun { code: number | null, hung: boolean, stdout: string, stderr: string }

// `env` adds to (or, with '', clears) the test's own environment, which the CLI otherwise inherits.
export function runCli (args: string[], entry = CLI, env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text })
    child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text })
    let hung = false
    const timer = setTimeout(() => { hung = true; child.kill('SIGKILL') }, HANG_MS)
    child.once('error', reject)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, hung, stdout, stderr })
    })
  })
}

// stdout of --json: every line one event.
export function eventsOf (t: Test, run: CliRun): StreamEvent[] {
  const events: StreamEvent[] = []
  for (const line of run.stdout.split('\n').filter((l) => l !== '')) {
    try {
      events.push(JSON.parse(line) as StreamEvent)
    } catch {
      t.fail(`stdout line is not JSON: ${line}`)
    }
  }
  return events
}

// The proof-of-delivery line of a run in which all `bytes` arrived (the summary's last line).
export function verifiedLine (bytes: number): RegExp {
  return new RegExp(`^sha256 matches: all ${bytes} bytes arrived$`, 'm')
}

// A run that must succeed: exit 0, by itself, and its events. With `bytes` (the WAV's data
// chunk size: exactly what every transport sends) the run keeps its summary (on stderr, with
// --json) and must say that all of them arrived, verified by the server's sha256.
export async function streamOk (t: Test, url: string, args: string[], expected: { bytes?: number } = {}): Promise<StreamEvent[]> {
  const run = await runCli(['--json', ...(expected.bytes === undefined ? ['--quiet'] : []), '--url', url, ...args])
  t.notOk(run.hung, 'the CLI exits by itself')
  t.equal(run.code, 0, `exit 0 (stderr: ${run.stderr.trim()})`)
  if (expected.bytes !== undefined) t.match(run.stderr, verifiedLine(expected.bytes), `all ${expected.bytes} bytes arrived, sha256 verified`)
  return eventsOf(t, run)
}

// The transports side by side (each run is its own process and stream).
export async function eachTransport (run: (transport: string) => Promise<void>): Promise<void> {
  await Promise.all(TRANSPORTS.map(run))
}
