import t, { type Test } from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { StreamEvent } from '../../schemas/events.ts'
import { runExample, type ExampleRun } from '../helpers/example-finals.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth, assertSimpleCoversAudio } from '../helpers/speech-assertions.ts'

// The README's curl examples, run as written against a live server: each ```sh block that
// follows a `<!-- readme-test: NAME -->` line runs in bash in a folder that stands in for the
// repository's root: its `examples/speech.wav` links to the repository's own file, and the files
// the examples write land in that temporary folder. The default address (localhost:8080) is
// replaced by the test server's and, as this machine has no microphone, sox's default input
// device (`sox -d`) by that file.
const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8')
const SPEECH = 'examples/speech.wav'
const SPEECH_FILE = fileURLToPath(new URL(`../../${SPEECH}`, import.meta.url))
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
// examples/speech.wav is scripts/generate-fixtures.sh's copy of this fixture, so its truth holds.
const fixture = loadFixture('hello_16k_mono')
mkdirSync(join(dir, 'examples'))
symlinkSync(SPEECH_FILE, join(dir, SPEECH))

function runScript (script: string): Promise<ExampleRun> {
  const runnable = script.replaceAll(DEFAULT_ADDRESS, `127.0.0.1:${server.port}`).replaceAll(MICROPHONE, `sox ${SPEECH} `)
  return runExample('bash', ['-euo', 'pipefail', '-c', runnable], { cwd: dir })
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

t.test('the README\'s example file is the hello fixture, and the examples use it', async (t) => {
  t.ok(Buffer.from(readFileSync(SPEECH_FILE)).equals(Buffer.from(fixture.wav)), `${SPEECH} is hello_16k_mono.wav`)
  // Every code block, the CLI's too: they are all meant to run from the repository's root.
  const blocks = [...README.matchAll(/```\w*\n([\s\S]*?)\n```/g)].map((m) => m[1] as string)
  const mentions = blocks.join('\n').match(/\S*speech\.wav/g) ?? []
  t.ok(mentions.length > 0, 'the examples read a speech file')
  t.same([...new Set(mentions)], [SPEECH], `every example reads ${SPEECH}, a path that exists from the repository's root`)
})

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
