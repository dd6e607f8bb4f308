import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { StreamEvent } from '../../schemas/events.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth, assertSimpleCoversAudio } from '../helpers/speech-assertions.ts'

// The README's curl examples, run as written against a live server: each ```sh block that
// follows a `<!-- readme-test: NAME -->` line runs in bash in a folder holding `speech.wav`,
// with the default address (localhost:8080) replaced by the test server's and, as this machine
// has no microphone, sox's default input device (`sox -d`) replaced by that file.
const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8')
const DEFAULT_ADDRESS = 'localhost:8080'
const MICROPHONE = 'sox -d '

interface Example { name: string, script: string }

function examples (): Example[] {
  return [...README.matchAll(/<!-- readme-test: ([\w-]+) -->\s*\n```sh\n([\s\S]*?)\n```/g)]
    .map((m) => ({ name: m[1] as string, script: m[2] as string }))
}

const server = await startServer()
t.teardown(() => server.close())
const dir = mkdtempSync(join(tmpdir(), 'streamer-readme-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const fixture = loadFixture('hello_16k_mono')
copyFileSync(fixture.path, join(dir, 'speech.wav'))

function runScript (script: string): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const runnable = script.replaceAll(DEFAULT_ADDRESS, `127.0.0.1:${server.port}`).replaceAll(MICROPHONE, 'sox speech.wav ')
    const child = spawn('bash', ['-euo', 'pipefail', '-c', runnable], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text })
    child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text })
    // A bound, not a measurement: an example that never ends is a failing example.
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 60000)
    child.once('error', reject)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

// Events as curl prints an SSE stream: the `data:` lines.
const sseEvents = (stdout: string): StreamEvent[] =>
  stdout.split('\n').filter((line) => line.startsWith('data: ')).map((line) => JSON.parse(line.slice(6)) as StreamEvent)

// What each example must show. Every tagged example has a check, and every check an example.
const CHECKS: Record<string, (t: Test, stdout: string) => void> = {
  health: (t, stdout) => { t.match(JSON.parse(stdout), { status: 'healthy' }) },
  'http2-wav': (t, stdout) => { assertSegmentedMatchesTruth(t, sseEvents(stdout), fixture) },
  'http2-microphone': (t, stdout) => {
    const events = sseEvents(stdout)
    assertSegmentedMatchesTruth(t, events, fixture)
    t.ok(events.some((e) => e.type === 'segment' && e.is_final === false), 'interim results, as asked in the query')
  },
  'http1-simple': (t, stdout) => { assertSimpleCoversAudio(t, sseEvents(stdout), fixture) },
  'paired-session': (t, stdout) => {
    assertSegmentedMatchesTruth(t, sseEvents(stdout), fixture)
    t.match(stdout, /"accepted_seq":\d+/, 'the stop was acknowledged')
  }
}

t.test('every curl example in the README is tested', async (t) => {
  const tagged = examples()
  t.same(tagged.map((e) => e.name).sort(), Object.keys(CHECKS).sort(), 'the tagged examples are the checked ones')
  const shBlocks = [...README.matchAll(/```sh\n([\s\S]*?)\n```/g)].map((m) => m[1] as string)
  for (const block of shBlocks.filter((b) => /\bcurl\b/.test(b))) {
    t.ok(tagged.some((e) => e.script === block), `tagged for testing: ${block.split('\n')[0] ?? ''}`)
  }
  // The stand-ins are in use (an example that stopped needing one would be run untouched).
  t.ok(tagged.some((e) => e.script.includes(MICROPHONE)), 'an example reads the microphone')
})

for (const example of examples()) {
  t.test(`README example "${example.name}"`, async (t) => {
    const check = CHECKS[example.name]
    if (check === undefined) return
    const { code, stdout, stderr } = await runScript(example.script)
    t.equal(code, 0, `exits 0 (stderr: ${stderr.trim()})`)
    check(t, stdout)
  })
}
