import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { WebSocketServer } from 'ws'
import type { AckEvent, EndEvent, StartedEvent } from '../../schemas/events.ts'
import { TerminalDisplay } from '../../src/cli/terminal-display.ts'
import { BIN, eachTransport, eventsOf, runCli, streamOk as streamOkAt, TRANSPORT_ALIASES, TRANSPORTS, verifiedLine } from '../helpers/cli-runner.ts'
import { FIXTURE_NAMES, loadFixture, type Fixture } from '../helpers/fixtures.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'
import { FAST_MODEL, startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth, assertSimpleCoversAudio, END_TOLERANCE, START_TOLERANCE } from '../helpers/speech-assertions.ts'
import { sleep, until } from '../helpers/waiting.ts'

// The CLI against a live server, on every transport, with each speech fixture; what it prints,
// and how it fails. WAV files in every sample format: cli-wav-formats.test.ts.
const server = await startServer()
t.teardown(() => server.close())
const dir = mkdtempSync(join(tmpdir(), 'streamer-cli-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const streamOk = (t: Parameters<typeof streamOkAt>[0], args: string[]): ReturnType<typeof streamOkAt> => streamOkAt(t, server.http, args)
// A run whose delivery is verified too: every byte of the fixture's data chunk arrived (sha256).
const streamVerified = (t: Parameters<typeof streamOkAt>[0], args: string[], fixture: Fixture): ReturnType<typeof streamOkAt> =>
  streamOkAt(t, server.http, args, { bytes: fixture.pcm.length })
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

for (const name of FIXTURE_NAMES) {
  const fixture = loadFixture(name)
  t.test(`${name}, segmented, on every transport`, async (t) => {
    await eachTransport(async (transport) => {
      assertSegmentedMatchesTruth(t, await streamVerified(t, ['--transport', transport, fixture.path], fixture), fixture)
    })
  })
  t.test(`${name}, simple, on every transport`, async (t) => {
    await eachTransport(async (transport) => {
      assertSimpleCoversAudio(t, await streamVerified(t, ['--transport', transport, '--mode', 'simple', '--chunk-ms', '250', fixture.path], fixture), fixture)
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
  t.match(human.stdout, /^session_id +\S+$/m, 'summary: the session id')
  t.match(human.stdout, /^errors +0$/m, 'summary: no errors, said plainly')
  t.ok(human.stdout.endsWith(`\nsha256 matches: all ${fixture.pcm.length} bytes arrived\n`), 'the verification line ends the summary')
  t.notMatch(human.stdout, /acked|\back\b/, 'no acknowledgements without --acks: the default output is unchanged')
  t.equal(human.stderr, '', 'nothing on stderr')

  const json = await runCli(['--json', '--url', server.http, fixture.path])
  t.equal(json.code, 0)
  const events = eventsOf(t, json)
  t.equal(events[0]?.type, 'started', 'started first, passed through')
  t.equal(events.at(-1)?.type, 'end', 'stdout is only events, end last')
  t.notOk(events.some((e) => e.type === 'ack'), 'no ack events without --acks')
  t.match(json.stderr, /segments +2 final/, 'the summary went to stderr')
  t.match(json.stderr, /real-time factor/)
  t.match(json.stderr, new RegExp(`^session_id +${(events[0] as StartedEvent).session_id}$`, 'm'), 'the summary names the session of the started event')
  t.match(json.stderr, verifiedLine(fixture.pcm.length), 'the verification line went to stderr with the summary')
  t.notMatch(json.stdout, /sha256 matches/, 'and not to stdout')
  const endEvent = events.at(-1) as EndEvent
  t.equal(endEvent.bytes_received, fixture.pcm.length, 'the server took the data chunk, not the header')
  t.equal(endEvent.sha256, sha256(fixture.pcm), 'the server\'s sha256 is that of the data chunk')

  const quiet = await runCli(['--quiet', '--url', server.http, fixture.path])
  t.equal(quiet.code, 0)
  t.notMatch(quiet.stdout, /sha256|audio +\d/, '--quiet: no summary and no verification line')
})

t.test('--acks: ack events on every transport, acknowledged bytes equal to those sent at the end', async (t) => {
  const fixture = loadFixture('dialogue_44k_stereo')
  await eachTransport(async (transport) => {
    const run = await runCli(['--json', '--acks', '--transport', transport, '--url', server.http, fixture.path])
    t.notOk(run.hung, `${transport}: exits by itself`)
    t.equal(run.code, 0, `${transport}: exit 0 (${run.stderr.trim()})`)
    const events = eventsOf(t, run)
    assertSegmentedMatchesTruth(t, events.filter((e) => e.type !== 'ack'), fixture)
    t.match(events[0], { type: 'started', acks: true }, `${transport}: the server acknowledges this stream`)
    const acks = events.filter((e): e is AckEvent => e.type === 'ack')
    t.ok(acks.length > 0, `${transport}: ack events arrived (${acks.length})`)
    t.ok(acks.every((ack, i) => i === 0 || ack.bytes >= (acks[i - 1] as AckEvent).bytes), `${transport}: acknowledged bytes never go down`)
    t.equal(acks.at(-1)?.bytes, fixture.pcm.length, `${transport}: the last ack covers every byte sent`)
    t.ok(events.findLastIndex((e) => e.type === 'ack') < events.length - 1, `${transport}: end comes after the last ack`)
    const bytes = fixture.pcm.length
    t.match(run.stderr, new RegExp(`^acked +${bytes} of ${bytes} bytes sent \\(lag 0 bytes\\)$`, 'm'), `${transport}: the summary says all were acknowledged`)
    t.match(run.stderr, verifiedLine(bytes), `${transport}: and verified`)
  })
  // The progress line (a terminal only): bytes acknowledged against bytes sent, as acks arrive.
  const written: string[] = []
  const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 200 })
  tty.on('data', (chunk: Buffer) => { written.push(chunk.toString()) })
  const display = new TerminalDisplay({ json: false, quiet: false, acks: true, stdout: new PassThrough(), stderr: tty })
  display.progress(1, 4, 32000)
  display.event({ type: 'ack', channel: null, bytes: 28800, seconds: [0.9] })
  display.progress(4, 4, 128000)
  display.event({ type: 'ack', channel: null, bytes: 128000, seconds: [4] })
  await sleep(100)
  display.progress(4, 4, 128000)
  const shown = written.join('')
  t.match(shown, /sent 1\.0\/4\.0 s +25%, acked 0\/32000 bytes/, 'the progress line shows the bytes acknowledged against sent')
  t.match(shown, /sent 4\.0\/4\.0 s 100%, acked 128000\/128000 bytes/, 'and catches up as acks arrive')
  const plain: string[] = []
  const plainTty = Object.assign(new PassThrough(), { isTTY: true, columns: 200 })
  plainTty.on('data', (chunk: Buffer) => { plain.push(chunk.toString()) })
  new TerminalDisplay({ json: false, quiet: false, acks: false, stdout: new PassThrough(), stderr: plainTty }).progress(1, 4, 32000)
  t.notMatch(plain.join(''), /acked/, 'without --acks the progress line is as before')
})

t.test('a failed inference is counted and explained in the summary, on every transport', async (t) => {
  const failing = await startServer({ model: { threads: 2, options: { ...FAST_MODEL, failure_rate: 1 } } })
  t.teardown(() => failing.close())
  const fixture = loadFixture('hello_16k_mono')
  await eachTransport(async (transport) => {
    const run = await runCli(['--json', '--transport', transport, '--url', failing.http, fixture.path])
    t.equal(run.code, 0, `${transport}: a failed segment does not fail the stream (${run.stderr.trim()})`)
    const failures = eventsOf(t, run).filter((e) => e.type === 'error' && e.code === 'inference_failed')
    t.equal(failures.length, 2, `${transport}: each utterance failed`)
    t.match(run.stderr, /^errors +2: 2 segments failed \(inference_failed: the model returned an error; the dummy model fails 100 % of calls, see model\.options\.failure_rate\)$/m,
      `${transport}: the summary says how many segments failed and why`)
    t.match(run.stderr, verifiedLine(fixture.pcm.length), `${transport}: the audio still arrived whole`)
  })
  const human = await runCli(['--url', failing.http, fixture.path])
  t.match(human.stdout, /^errors +2: 2 segments failed \(inference_failed: .*failure_rate\)$/m, 'the same line in the human summary')
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

// A stand-in for the server, to make it say what a real one must not: a plain WebSocket server
// (any path) that answers a start with `started` and the stop with `end`, whose proof-of-delivery
// fields `end` computes from the audio bytes the fake took, in order.
interface FakeBehaviour {
  events?: Array<Record<string, unknown>> // sent right after `started`
  shutdownAfterFrames?: number // after this many audio frames: a `shutdown` event, and no more audio is taken
  end: (taken: Uint8Array) => Record<string, unknown>
}

async function fakeServer (t: Test, behaviour: FakeBehaviour): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(wss, 'listening')
  t.teardown(async () => {
    for (const client of wss.clients) client.terminate()
    await new Promise((resolve) => { wss.close(resolve) })
  })
  wss.on('connection', (socket) => {
    const taken: Buffer[] = []
    let frames = 0
    let shutDown = false
    let format = { sample_rate: 16000, channels: 1 }
    const send = (event: Record<string, unknown>): void => { socket.send(JSON.stringify({ channel: null, ...event })) }
    socket.on('message', (data, isBinary) => {
      if (isBinary) {
        if (shutDown) return
        taken.push(Buffer.from(data as Buffer))
        if (++frames === behaviour.shutdownAfterFrames) {
          shutDown = true
          send({ type: 'shutdown', deadline_seconds: 30 })
        }
        return
      }
      const message = JSON.parse(data.toString()) as { request: string, format: { sample_rate: number, channels: number } }
      if (message.request === 'start') {
        format = message.format
        send({ type: 'started', session_id: 'fake-session-1', protocol_version: '0.3', mode: 'segmented', format: message.format, interim_results: false, acks: false })
        for (const event of behaviour.events ?? []) send(event)
      } else if (message.request === 'stop') {
        const audio = Buffer.concat(taken)
        const seconds = audio.length / 2 / format.channels / format.sample_rate
        send({ type: 'end', seconds_received: [seconds], samples_received: [seconds * format.sample_rate], segments: [0], interim_segments: [0], interim_segments_dropped: [0], errors: 0, ...behaviour.end(audio) })
        socket.close(1000)
      }
    })
  })
  return `http://127.0.0.1:${(wss.address() as AddressInfo).port}`
}

t.test('a server that took other bytes than were sent: a MISMATCH line and exit 4', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const bytes = fixture.pcm.length
  const wrong = sha256(new TextEncoder().encode('not the audio'))
  const url = await fakeServer(t, { end: (taken) => ({ bytes_received: taken.length, sha256: wrong, dropped: { truncated_audio: 0, max_duration: 0 } }) })
  for (const args of [[], ['--json'], ['--quiet']]) {
    const run = await runCli([...args, '--url', url, fixture.path])
    t.notOk(run.hung, `${args.join(' ')}: exits by itself`)
    t.equal(run.code, 4, `${args.join(' ')}: exit 4, the sha256 mismatch`)
    t.match(run.stderr, `sha256 MISMATCH: sent ${bytes} bytes (sha256 ${sha256(fixture.pcm)}), the server took ${bytes} bytes (sha256 ${wrong})`,
      `${args.join(' ')}: names both counts and both hashes, on stderr (${run.stderr.trim()})`)
    t.notMatch(run.stdout + run.stderr, /sha256 matches/)
  }

  // Fewer bytes, intact as far as they go: still a mismatch, and the line says which were missing.
  const short = await fakeServer(t, { end: (taken) => ({ bytes_received: taken.length - 3200, sha256: sha256(taken.subarray(0, taken.length - 3200)), dropped: { truncated_audio: 0, max_duration: 0 } }) })
  const run = await runCli(['--url', short, fixture.path])
  t.equal(run.code, 4, 'a short delivery: exit 4')
  t.match(run.stderr, `the server took ${bytes - 3200} bytes (sha256 ${sha256(fixture.pcm.subarray(0, bytes - 3200))}); those are the first ${bytes - 3200} bytes sent, intact: the last 3200 were not taken`)
})

t.test('an older server (no sha256 in end), unknown event types and the session id in failures', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const future = { type: 'weather_report', sky: 'clear' }
  const url = await fakeServer(t, { events: [future, { type: 'finalized', seconds: [0] }], end: () => ({}) })
  const human = await runCli(['--url', url, fixture.path])
  t.equal(human.code, 0, `exit 0 (${human.stderr.trim()})`)
  t.notMatch(human.stdout + human.stderr, /sha256/, 'nothing about the sha256 when the server sends none')
  t.notMatch(human.stdout + human.stderr, /weather|unexpected/, 'an unknown event type is ignored')
  t.match(human.stdout, /^session_id +fake-session-1$/m, 'the session id from started')
  const json = await runCli(['--json', '--url', url, fixture.path])
  t.equal(json.code, 0)
  const events = eventsOf(t, json)
  t.same(events.map((e) => e.type), ['started', 'weather_report', 'finalized', 'end'], '--json passes every event through, unknown ones too')
  t.match(events[1], future)

  // A stream broken off after started: the failure names the session, for the server's logs.
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(wss, 'listening')
  t.teardown(() => new Promise((resolve) => { wss.close(resolve) }))
  wss.on('connection', (socket) => {
    socket.once('message', () => {
      socket.send(JSON.stringify({ type: 'started', channel: null, session_id: 'fake-session-2' }))
      setTimeout(() => { socket.close(1011, 'gone') }, 50)
    })
  })
  const broken = await runCli(['--url', `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, fixture.path])
  t.equal(broken.code, 1)
  t.match(broken.stderr, /closed the connection before the stream ended \(close code 1011: gone\) \(session_id fake-session-2\)/)
})

t.test('the summary explains a failure of the dummy model at its default rate', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const url = await fakeServer(t, {
    events: [{ type: 'error', channel: 0, code: 'inference_failed', message: 'Inference failed: dummy model failure (failure_rate 0.01)', start_time: 0.5, end_time: 3 }],
    end: (taken) => ({ bytes_received: taken.length, sha256: sha256(taken), dropped: { truncated_audio: 0, max_duration: 0 } })
  })
  const run = await runCli(['--url', url, fixture.path])
  t.equal(run.code, 0)
  t.match(run.stdout, /^errors +1: 1 segment failed \(inference_failed: the model returned an error; the dummy model fails 1 % of calls by default, see model\.options\.failure_rate\)$/m)
  t.match(run.stderr, /ch0 +0\.50 - +3\.00 s +error inference_failed/, 'the error itself, as it arrived')
  t.match(run.stdout, verifiedLine(fixture.pcm.length))
})

t.test('shutdown: a notice, the results for the audio taken, a verified partial delivery and exit 1', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  // The fake takes one frame of 100 ms (3200 bytes), then announces its shutdown.
  const url = await fakeServer(t, { shutdownAfterFrames: 1, end: (taken) => ({ bytes_received: taken.length, sha256: sha256(taken), dropped: { truncated_audio: 0, max_duration: 0 } }) })
  const fake = await runCli(['--url', url, fixture.path])
  t.equal(fake.code, 1, `exit 1: not all the audio was taken (${fake.stderr.trim()})`)
  t.match(fake.stderr, /^the server is restarting: it takes no more audio on this stream; the results for the audio sent so far will follow$/m, 'the notice')
  t.match(fake.stdout, /^sha256 matches: (the first 3200 of the \d+ bytes sent arrived \(the server stopped taking audio when it began shutting down\)|all 3200 bytes arrived)$/m,
    'what the server took is verified against the start of what was sent')
  t.match(fake.stderr, /the server shut down after taking 0\.10 of the 6\.89 s of audio.*stream the rest \(from 0\.10 s\) again/, 'and says what to do')

  // A real server draining (what SIGTERM does), on every transport at once.
  const draining = await startServer()
  t.teardown(() => draining.close())
  const runs = TRANSPORTS.map((transport) => runCli(['--json', '--real-time', '--acks', '--transport', transport, '--url', draining.http, fixture.path]))
  // Every client's stream open (not a fixed sleep: three CLIs starting at once on a loaded CI
  // machine took longer than 2.5 s once), and some audio taken.
  await until(() => draining.app.streamer.registry.size >= TRANSPORTS.length, 30000)
  await sleep(1000)
  await draining.app.streamer.drain(10)
  for (const [i, run] of (await Promise.all(runs)).entries()) {
    const transport = TRANSPORTS[i] as string
    t.notOk(run.hung, `${transport}: exits by itself`)
    t.equal(run.code, 1, `${transport}: exit 1 (${run.stderr.trim()})`)
    const events = eventsOf(t, run)
    const types = events.map((e) => e.type)
    t.equal(types[0], 'started', `${transport}: started first`)
    t.ok(types.includes('shutdown'), `${transport}: the shutdown event is passed through`)
    t.equal(types.at(-1), 'end', `${transport}: end last`)
    t.match(run.stderr, /^the server is restarting: .*results for the audio sent so far will follow$/m, `${transport}: the notice`)
    const end = events.at(-1) as EndEvent
    t.ok(end.bytes_received > 0 && end.bytes_received < fixture.pcm.length, `${transport}: the server took part of the audio (${end.bytes_received} bytes)`)
    t.equal(end.sha256, sha256(fixture.pcm.subarray(0, end.bytes_received)), `${transport}: the start of the data chunk, intact`)
    t.match(run.stderr, new RegExp(`^sha256 matches: (all ${end.bytes_received} bytes arrived|the first ${end.bytes_received} of the \\d+ bytes sent arrived .*)$`, 'm'), `${transport}: verified`)
    t.match(run.stderr, /the server shut down after taking \d+\.\d\d of the 6\.89 s of audio/, `${transport}: says how far it got`)
  }
})

// The race the draining server above leaves to chance: a chunk answered 503 shutting_down
// before the `shutdown` event reached the reader. A stand-in paired server makes that order
// certain: seq 0 is taken, every later chunk is refused, and only then do `shutdown`, the
// results and `end` arrive on the events stream. The client must wait for them, not give up.
t.test('paired: a chunk refused with 503 shutting_down before the shutdown event: the client waits for the results and end', async (t) => {
  const fixture = loadFixture('hello_16k_mono')
  const taken: Buffer[] = []
  let events: ServerResponse | undefined
  let stops = 0
  let eventId = 0
  let startedFormat: Record<string, unknown> = {}
  const send = (event: Record<string, unknown>): void => { events?.write(`event: ${String(event.type)}\nid: ${++eventId}\ndata: ${JSON.stringify({ channel: null, ...event })}\n\n`) }
  const answer = (response: ServerResponse, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): void => {
    response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body))
  }
  const fake = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://fake')
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => { chunks.push(chunk) })
    request.on('end', () => {
      if (url.pathname === '/api/v1/sessions') {
        startedFormat = (JSON.parse(Buffer.concat(chunks).toString()) as { format: Record<string, unknown> }).format
        answer(response, 201, { id: 'fake-paired-1', events_url: '/events', audio_url: '/audio', stop_url: '/stop', expires_in: 30 })
      } else if (url.pathname === '/events') {
        events = response.writeHead(200, { 'content-type': 'text/event-stream' })
        send({ type: 'started', session_id: 'fake-paired-1', protocol_version: '0.3', mode: 'segmented', format: startedFormat, interim_results: false, acks: false })
      } else if (url.pathname === '/audio' && url.searchParams.get('seq') === '0') {
        taken.push(Buffer.concat(chunks))
        answer(response, 200, { accepted_seq: 0, bytes: taken[0]!.length })
      } else if (url.pathname === '/audio') {
        answer(response, 503, { code: 'shutting_down', message: `seq ${url.searchParams.get('seq')} was not taken: the server ended this stream after seq 0 because it is restarting; start a new session to send the rest`, field: 'seq' }, { 'retry-after': '5' })
        // The events stream speaks only after the refusal was answered.
        if (url.searchParams.get('seq') === '1') {
          response.once('finish', () => {
            setTimeout(() => {
              const audio = Buffer.concat(taken)
              const seconds = audio.length / 2 / 16000
              send({ type: 'shutdown', deadline_seconds: 30 })
              send({ type: 'end', seconds_received: [seconds], samples_received: [seconds * 16000], segments: [0], interim_segments: [0], interim_segments_dropped: [0], errors: 0, bytes_received: audio.length, sha256: sha256(audio), dropped: { truncated_audio: 0, max_duration: 0 } })
              events?.end()
            }, 300)
          })
        }
      } else {
        if (url.pathname === '/stop') stops++
        answer(response, 404, { code: 'not_found', message: 'not here' })
      }
    })
  })
  await new Promise<void>((resolve) => { fake.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { fake.closeAllConnections(); fake.close() })
  const run = await runCli(['--json', '--transport', 'paired', '--url', `http://127.0.0.1:${(fake.address() as AddressInfo).port}`, fixture.path])
  t.notOk(run.hung, 'exits by itself')
  t.equal(run.code, 1, `exit 1: not all the audio was taken (${run.stderr.trim()})`)
  t.notMatch(run.stderr, /refused the stream/, 'the 503 is not reported as a failure: the events stream explained it')
  const types = eventsOf(t, run).map((e) => e.type)
  t.same(types, ['started', 'shutdown', 'end'], 'the shutdown event and end were waited for')
  t.match(run.stderr, new RegExp(`^sha256 matches: the first ${taken[0]?.length ?? -1} of the \\d+ bytes sent arrived`, 'm'), 'what was taken is verified')
  t.equal(stops, 0, 'no stop was sent: the server had ended the stream')
})

t.test('paired: a chunk refused with 429 rate_limited is sent again, and every byte still arrives once', async (t) => {
  // A model slower than the upload and a small bound on the audio held: chunks get 429.
  const slow = await startServer({ model: { threads: 1, options: { ...FAST_MODEL, constant_factor: 0.5 } }, limits: { max_buffered_seconds: 1 } })
  t.teardown(() => slow.close())
  const fixture = loadFixture('hello_16k_mono')
  // The paired transport's requests are HTTP/1.1 (fetch): watched on the server as they finish.
  let rateLimited = 0
  slow.app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    response.once('finish', () => { if (response.statusCode === 429 && request.url?.includes('/audio') === true) rateLimited++ })
  })
  const events = await streamOkAt(t, slow.http, ['--transport', 'paired', fixture.path], { bytes: fixture.pcm.length })
  assertSegmentedMatchesTruth(t, events, fixture)
  t.ok(rateLimited > 0, `the server did refuse chunks with 429 (${rateLimited})`)
})
