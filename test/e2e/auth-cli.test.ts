import t from 'tap'
import { CLI, eachTransport, eventsOf, runCli, verifiedLine } from '../helpers/cli-runner.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { assertSegmentedMatchesTruth } from '../helpers/speech-assertions.ts'
import { KEY, OTHER_KEY, startAuthServer } from '../helpers/auth-server.ts'

// The CLI against a server with authentication on: --api-key (or STREAMER_API_KEY) is sent as
// a bearer on every transport, the WebSocket upgrade included; without it the CLI fails with a
// line that says what to do.

// The wrong keys below must not get this test's own address blocked.
const server = await startAuthServer({ auth: { max_failures: 1000 } })
t.teardown(() => server.close())
const fixture = loadFixture('hello_16k_mono')

t.test('--api-key streams on every transport', async (t) => {
  await eachTransport(async (transport) => {
    const run = await runCli(['--json', '--url', server.http, '--transport', transport, '--api-key', KEY, fixture.path])
    t.equal(run.code, 0, `${transport}: exit 0 (${run.stderr.trim()})`)
    t.match(run.stderr, verifiedLine(fixture.pcm.length), `${transport}: all the audio arrived`)
    assertSegmentedMatchesTruth(t, eventsOf(t, run), fixture)
  })
})

t.test('STREAMER_API_KEY does the same; --api-key wins over it', async (t) => {
  await eachTransport(async (transport) => {
    const run = await runCli(['--json', '--quiet', '--url', server.http, '--transport', transport, fixture.path], CLI, { STREAMER_API_KEY: OTHER_KEY })
    t.equal(run.code, 0, `${transport}: exit 0 (${run.stderr.trim()})`)
    assertSegmentedMatchesTruth(t, eventsOf(t, run), fixture)
  })
  const overridden = await runCli(['--quiet', '--url', server.http, '--api-key', 'wrong', fixture.path], CLI, { STREAMER_API_KEY: KEY })
  t.equal(overridden.code, 1, 'the option is the one sent')
})

t.test('without a key, or with a wrong one, it fails clearly', async (t) => {
  await eachTransport(async (transport) => {
    const none = await runCli(['--quiet', '--url', server.http, '--transport', transport, fixture.path], CLI, { STREAMER_API_KEY: '' })
    t.equal(none.code, 1, `${transport}, no key: exit 1`)
    t.notOk(none.hung)
    t.match(none.stderr, /^streamer-client: The server refused the (stream|WebSocket upgrade at \S+): HTTP 401 unauthorized: This server requires credentials.*; this server needs an API key: pass --api-key <key> or set STREAMER_API_KEY\n$/,
      `${transport}, no key: one line that says what to do`)
    const wrong = await runCli(['--quiet', '--url', server.http, '--transport', transport, '--api-key', 'not-the-key', fixture.path], CLI, {})
    t.equal(wrong.code, 1, `${transport}, a wrong key: exit 1`)
    t.match(wrong.stderr, /HTTP 401 unauthorized: The API key is not valid on this server \(field authorization\)/, `${transport}, a wrong key: says so`)
    t.notMatch(wrong.stderr, /not-the-key/, 'and does not print the key')
  })
})

t.test('--api-key in the help; an empty one is a usage error', async (t) => {
  const help = await runCli(['--help'])
  t.match(help.stdout, /--api-key <key>.*Authorization: Bearer/s)
  const empty = await runCli(['--url', server.http, '--api-key', ' ', fixture.path])
  t.equal(empty.code, 2)
  t.match(empty.stderr, /--api-key must be a non-empty key/)
})
