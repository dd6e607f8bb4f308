import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { EndEvent } from '../../schemas/events.ts'
import { BIN, eachTransport, eventsOf, runCli, streamOk as streamOkAt, TRANSPORT_ALIASES } from '../helpers/cli-runner.ts'
import { FIXTURE_NAMES, loadFixture } from '../helpers/fixtures.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'
import { startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth, assertSimpleCoversAudio, END_TOLERANCE, START_TOLERANCE } from '../helpers/speech-assertions.ts'

// The CLI against a live server, on every transport, with each speech fixture; what it prints,
// and how it fails. WAV files in every sample format: cli-wav-formats.test.ts.
const server = await startServer()
t.teardown(() => server.close())
const dir = mkdtempSync(join(tmpdir(), 'streamer-cli-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const streamOk = (t: Parameters<typeof streamOkAt>[0], args: string[]): ReturnType<typeof streamOkAt> => streamOkAt(t, server.http, args)

for (const name of FIXTURE_NAMES) {
  const fixture = loadFixture(name)
  t.test(`${name}, segmented, on every transport`, async (t) => {
    await eachTransport(async (transport) => {
      assertSegmentedMatchesTruth(t, await streamOk(t, ['--transport', transport, fixture.path]), fixture)
    })
  })
  t.test(`${name}, simple, on every transport`, async (t) => {
    await eachTransport(async (transport) => {
      assertSimpleCoversAudio(t, await streamOk(t, ['--transport', transport, '--mode', 'simple', '--chunk-ms', '250', fixture.path]), fixture)
    })
  })
}

t.test('--interim-results brings interim segments on every transport', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  await eachTransport(async (transport) => {
    const events = await streamOk(t, ['--transport', transport, '--interim-results', '--chunk-ms', '20', fixture.path])
    assertSegmentedMatchesTruth(t, events, fixture)
    t.ok(events.some((e) => e.type === 'segment' && e.is_final === false), `${transport}: interim results arrived`)
  })
})

t.test('human output: results and the summary on stdout; --json keeps stdout pure', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const human = await runCli(['--url', server.http, fixture.path])
  t.equal(human.code, 0)
  // The first final line is the first true region, within the tolerance the other tests use.
  const [, start, end] = /ch0 +(\d+\.\d\d) - +(\d+\.\d\d) s +count=\d+/.exec(human.stdout) ?? []
  const [trueStart, trueEnd] = fixture.speech[0]?.[0] ?? [NaN, NaN]
  t.ok(Math.abs(Number(start) - trueStart) <= START_TOLERANCE && Math.abs(Number(end) - trueEnd) <= END_TOLERANCE,
    `a final result line for the first utterance (${String(start)} - ${String(end)} s vs ${trueStart} - ${trueEnd} s)`)
  t.match(human.stdout, /audio +\d+\.\d\d s \(16000 Hz, 1 ch, s16\) over websocket, segmented mode/, 'summary: the default transport, by its canonical name')
  t.match(human.stdout, /segments +2 final/, 'summary: segments')
  t.match(human.stdout, /first result +\d+\.\d+ s after the first audio was sent/, 'summary: time to first result')
  t.match(human.stdout, /end +\d+\.\d+ s after the upload ended/, 'summary: upload end to end')
  const audioSeconds = Number(/real-time factor +\d+\.\d+ \(\d+\.\d+ s for (\d+\.\d\d) s of audio\)/.exec(human.stdout)?.[1])
  t.ok(Math.abs(audioSeconds - fixture.duration) <= 0.01, `summary: real-time factor, for the file's ${fixture.duration} s of audio (${audioSeconds} s)`)

  const json = await runCli(['--json', '--url', server.http, fixture.path])
  t.equal(json.code, 0)
  const events = eventsOf(t, json)
  t.equal(events.at(-1)?.type, 'end', 'stdout is only events, end last')
  t.match(json.stderr, /segments +2 final/, 'the summary went to stderr')
  t.match(json.stderr, /real-time factor/)
})

t.test('--real-time paces the upload at the audio speed', async (t) => {
  const fixture = loadFixture('dialogue_44k_stereo')
  const run = await runCli(['--json', '--real-time', '--transport', 'http', '--url', server.http, fixture.path])
  t.equal(run.code, 0)
  assertSegmentedMatchesTruth(t, eventsOf(t, run), fixture)
  // A lower bound only: the last 100 ms chunk leaves at its own time in the audio.
  const wall = Number(/\((\d+\.\d+) s for/.exec(run.stderr)?.[1])
  t.ok(wall >= fixture.duration - 0.2, `the run took at least the audio's duration (${wall} s for ${fixture.duration} s)`)
})

t.test('the server refuses: non-zero exit with the server\'s reason, on every transport', async (t) => {
  const nine = join(dir, 'nine-channels.wav')
  execFileSync('sox', ['-n', '-r', '16000', '-c', '9', '-b', '16', nine, 'synth', '1', 'sine', '440'])
  const slow = join(dir, '4k.wav')
  execFileSync('sox', ['-n', '-r', '4000', '-c', '1', '-b', '16', slow, 'synth', '1', 'sine', '440'])
  await eachTransport(async (transport) => {
    for (const [file, reason] of [[nine, /unsupported_format.*channels.*1 to 8, got 9/], [slow, /unsupported_format.*sample_rate.*8000 to 192000, got 4000/]] as const) {
      const run = await runCli(['--transport', transport, '--url', server.http, file])
      t.notOk(run.hung, `${transport}: exits by itself`)
      t.equal(run.code, 1, `${transport}: exit 1`)
      t.match(run.stderr, reason, `${transport}: says why (${run.stderr.trim()})`)
      t.notMatch(run.stderr, /\n\s+at /, `${transport}: no stack trace`)
    }
  })
})

t.test('an unreachable server: exit 3 and a message naming the address', async (t) => {
  // A port that was free a moment ago: nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
  const fixture = loadFixture('hello_16k_mono')
  await eachTransport(async (transport) => {
    const run = await runCli(['--transport', transport, '--url', `http://127.0.0.1:${port}`, fixture.path])
    t.notOk(run.hung, `${transport}: exits by itself`)
    t.equal(run.code, 3, `${transport}: exit 3`)
    t.match(run.stderr, new RegExp(`Cannot reach the server at \\S*127\\.0\\.0\\.1:${port}.*ECONNREFUSED`), `${transport}: ${run.stderr.trim()}`)
  })
})

t.test('TLS: websocket over wss, http over HTTP/2 with TLS, paired over https; a self-signed certificate needs --insecure', async (t) => {
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' })
  const tls = await startServer({ tls_key: key, tls_cert: cert })
  t.teardown(() => tls.close())
  const url = `https://127.0.0.1:${tls.port}`
  const fixture = loadFixture('hello_16k_mono')
  await eachTransport(async (transport) => {
    const run = await runCli(['--json', '--quiet', '--insecure', '--transport', transport, '--url', url, fixture.path])
    t.equal(run.code, 0, `${transport} with --insecure: exit 0 (${run.stderr.trim()})`)
    assertSegmentedMatchesTruth(t, eventsOf(t, run), fixture)
    const refused = await runCli(['--quiet', '--transport', transport, '--url', url, fixture.path])
    t.equal(refused.code, 3, `${transport} without --insecure: exit 3`)
    t.match(refused.stderr, /self-signed certificate.*--insecure/, `${transport}: says why and what to do`)
  })
})

t.test('usage errors and unreadable files: exit 2', async (t) => {
  const notWav = join(dir, 'not.wav')
  writeFileSync(notWav, 'this is not audio')
  const cases: Array<[string[], RegExp]> = [
    [[], /No WAV file given/],
    [['--transport', 'carrier-pigeon', notWav], /--transport 'carrier-pigeon' is not one of websocket, http, paired$/m],
    [['--mode', 'fast', notWav], /--mode 'fast'/],
    [['--chunk-ms', '0', notWav], /--chunk-ms/],
    [['--url', 'ftp://x', notWav], /--url/],
    [['--bogus', notWav], /Unknown option '--bogus'/],
    [[join(dir, 'missing.wav')], /Cannot read .*missing\.wav/],
    [[notWav], /not a WAV file/]
  ]
  await Promise.all(cases.map(async ([args, message]) => {
    const run = await runCli(args)
    t.equal(run.code, 2, `${args.join(' ')}: exit 2`)
    t.match(run.stderr, message, `${args.join(' ')}: ${run.stderr.split('\n')[0] ?? ''}`)
  }))
  const help = await runCli(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /--transport <websocket\|http\|paired>/)
  t.match(help.stdout, /default websocket; aliases: ws, h2, session\)/)
})

t.test('the earlier names ws, h2 and session still work, and only the canonical names are reported', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const started = async (): Promise<Record<string, number>> => {
    const response = await fetch(`${server.http}/metrics`)
    const families = parsePrometheusText(await response.text())
    return Object.fromEntries(Object.values(TRANSPORT_ALIASES).map((transport) => [transport,
      sampleValue(families, 'streamer_sessions_started_total', 'streamer_sessions_started_total', { transport, mode: 'segmented' }) ?? 0]))
  }
  // Nothing else streams to this server meanwhile: tap runs this file's tests one at a time.
  const before = await started()
  await Promise.all(Object.entries(TRANSPORT_ALIASES).map(async ([alias, transport]) => {
    const run = await runCli(['--json', '--transport', alias, '--url', server.http, fixture.path])
    t.notOk(run.hung, `${alias}: exits by itself`)
    t.equal(run.code, 0, `${alias}: exit 0 (stderr: ${run.stderr.trim()})`)
    assertSegmentedMatchesTruth(t, eventsOf(t, run), fixture)
    t.match(run.stderr, new RegExp(`^audio .* over ${transport}, segmented mode$`, 'm'), `${alias}: the summary names ${transport}`)
    t.notMatch(run.stderr, new RegExp(`\\b${alias}\\b`), `${alias}: the alias is not printed`)
  }))
  const after = await started()
  for (const transport of Object.values(TRANSPORT_ALIASES)) {
    t.equal(after[transport], (before[transport] ?? 0) + 1, `the server counted one stream over ${transport}`)
  }
})

t.test('the package bin runs the same CLI', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const run = await runCli(['--json', '--quiet', '--url', server.http, fixture.path], BIN)
  t.equal(run.code, 0, run.stderr)
  const events = eventsOf(t, run)
  assertSegmentedMatchesTruth(t, events, fixture)
  t.same((events.at(-1) as EndEvent).segments, [2])
})
