import t, { type Test } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { CLI, eventsOf, TRANSPORTS, verifiedLine, type CliRun } from '../helpers/cli-runner.ts'
import { loadFixture, type Fixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'

// `streamer-client -` reads the audio from stdin: raw PCM described by --sample-rate,
// --channels and --sample-format, or a WAV stream (as `sox ... -t wav -` writes it, with an
// unknown length). What the server hears is checked against the fixtures' true speech, and
// every run's delivery is verified by the server's sha256 of the bytes it took.
const server = await startServer()
t.teardown(() => server.close())

// The CLI with `input` written to its stdin (then closed), as a pipe would feed it.
function runWithStdin (args: string[], input: Uint8Array): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text })
    child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text })
    // A CLI that refuses its arguments exits before reading: the unread rest is not an error here.
    child.stdin.on('error', () => {})
    child.stdin.end(input)
    let hung = false
    const timer = setTimeout(() => { hung = true; child.kill('SIGKILL') }, 60000)
    child.once('error', reject)
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, hung, stdout, stderr }) })
  })
}

async function streamStdinOk (t: Test, args: string[], input: Uint8Array, bytes: number): Promise<ReturnType<typeof eventsOf>> {
  const run = await runWithStdin(['--json', '--url', server.http, ...args, '-'], input)
  t.notOk(run.hung, 'the CLI exits by itself')
  t.equal(run.code, 0, `exit 0 (stderr: ${run.stderr.trim()})`)
  t.match(run.stderr, verifiedLine(bytes), `all ${bytes} bytes arrived, sha256 verified`)
  return eventsOf(t, run)
}

const rawFlags = (fixture: Fixture, sampleFormat: string): string[] =>
  ['--sample-rate', String(fixture.format.sample_rate), '--channels', String(fixture.format.channels), '--sample-format', sampleFormat]

const hello = loadFixture('hello_16k_mono')
const dialogue = loadFixture('dialogue_44k_stereo')
const weather = loadFixture('weather_48k_f32')

t.test('raw s16le PCM on stdin, on every transport', async (t) => {
  await Promise.all(TRANSPORTS.map(async (transport) => {
    const events = await streamStdinOk(t, ['--transport', transport, ...rawFlags(hello, 's16le')], hello.pcm, hello.pcm.length)
    assertSegmentedMatchesTruth(t, events, hello)
  }))
})

t.test('raw PCM in other formats: stereo 44.1 kHz s16le, 48 kHz f32le, 8 kHz mu-law', async (t) => {
  assertSegmentedMatchesTruth(t, await streamStdinOk(t, rawFlags(dialogue, 's16le'), dialogue.pcm, dialogue.pcm.length), dialogue)
  assertSegmentedMatchesTruth(t, await streamStdinOk(t, rawFlags(weather, 'f32le'), weather.pcm, weather.pcm.length), weather)
  const mulaw = execFileSync('sox', [hello.path, '-t', 'raw', '-r', '8000', '-e', 'u-law', '-c', '1', '-'])
  const events = await streamStdinOk(t, ['--sample-rate', '8000', '--channels', '1', '--sample-format', 'mulaw'], mulaw, mulaw.length)
  assertSegmentedMatchesTruth(t, events, hello)
})

t.test('a WAV on stdin: the fixture file, and sox writing to a pipe (unknown length)', async (t) => {
  assertSegmentedMatchesTruth(t, await streamStdinOk(t, [], hello.wav, hello.pcm.length), hello)
  const piped = execFileSync('sox', [dialogue.path, '-t', 'wav', '-'])
  const events = await streamStdinOk(t, ['--transport', 'http'], piped, dialogue.pcm.length)
  assertSegmentedMatchesTruth(t, events, dialogue)
})

t.test('the README recipe: sox | streamer-client - through a shell pipe', async (t) => {
  // A file stands in for `sox -d` (the microphone).
  const command = `sox '${hello.path}' -t raw -r 16000 -e signed -b 16 -c 1 - | '${process.execPath}' '${CLI}' --json --url ${server.http} --sample-rate 16000 --channels 1 --sample-format s16le -`
  const run = await new Promise<CliRun>((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text })
    child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text })
    child.once('error', reject)
    child.once('close', (code) => { resolve({ code, hung: false, stdout, stderr }) })
  })
  t.equal(run.code, 0, `exit 0 (stderr: ${run.stderr.trim()})`)
  t.match(run.stderr, verifiedLine(hello.pcm.length), 'every byte sox wrote arrived')
  assertSegmentedMatchesTruth(t, eventsOf(t, run), hello)
})

t.test('the human summary of a stdin run', async (t) => {
  const run = await runWithStdin(['--url', server.http, ...rawFlags(hello, 's16le'), '-'], hello.pcm)
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /^audio +6\.89 s \(16000 Hz, 1 ch, s16\) over websocket, segmented mode$/m, 'the summary names the format given by the flags')
  t.match(run.stdout, verifiedLine(hello.pcm.length))
})

t.test('bad combinations: a clear usage error and exit 2', async (t) => {
  const cases: Array<[string, string[], Uint8Array, RegExp]> = [
    ['raw PCM without the format flags', ['-'], hello.pcm, /not a WAV stream.*--sample-rate \.\.\. --channels \.\.\. --sample-format \.\.\./],
    ['only some of the flags', ['--sample-rate', '16000', '-'], hello.pcm, /needs --sample-rate, --channels, --sample-format: --channels and --sample-format are missing/],
    ['format flags with a WAV file', ['--sample-rate', '16000', '--channels', '1', hello.path], new Uint8Array(), /--sample-rate, --channels describe raw PCM on stdin .*is a WAV file, whose header gives its format: drop them/],
    ['an unknown sample format', [...rawFlags(hello, 's16be'), '-'], hello.pcm, /--sample-format 's16be' is not one of u8, s16le, s24le, s32le, f32le, f64le, mulaw, alaw/],
    ['a sample rate that is not a number', ['--sample-rate', '16k', '--channels', '1', '--sample-format', 's16le', '-'], hello.pcm, /--sample-rate '16k' must be a whole number above 0/],
    ['a WAV on stdin with raw-format flags', [...rawFlags(hello, 's16le'), '-'], hello.wav, /stdin is a WAV stream, whose header gives its format: drop --sample-rate, --channels, --sample-format/],
    ['an empty stdin', ['-'], new Uint8Array(), /stdin is empty: no audio to send/],
    ['a WAV stream cut inside its header', ['-'], hello.wav.subarray(0, 30), /stdin is not a complete WAV stream: it ends inside its header/]
  ]
  for (const [what, args, input, message] of cases) {
    const run = await runWithStdin(['--url', server.http, ...args], input)
    t.equal(run.code, 2, `${what}: exit 2`)
    t.match(run.stderr, message, `${what}: ${run.stderr.split('\n')[0] ?? ''}`)
    t.notMatch(run.stderr, /\n\s+at /, `${what}: no stack trace`)
  }
})
