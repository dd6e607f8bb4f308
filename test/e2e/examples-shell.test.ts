import t from 'tap'
import { fileURLToPath } from 'node:url'
import { assertFinalsMatchTruth, printedFinals, runExample } from '../helpers/example-finals.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'

// examples/shell/stream.sh against a live server, run as its README shows: sox converts the
// fixture to 16 kHz mono s16le, curl streams it over HTTP/1.1, and the finals it prints are
// held to the fixture's true speech (mono fixtures: the script mixes every channel into one).
const SCRIPT = fileURLToPath(new URL('../../examples/shell/stream.sh', import.meta.url))
const server = await startServer()
t.teardown(() => server.close())

for (const name of ['hello_16k_mono', 'counting_8k_mono', 'weather_48k_f32']) {
  t.test(name, async (t) => {
    const fixture = loadFixture(name)
    const run = await runExample(SCRIPT, [fixture.path, server.http])
    t.equal(run.code, 0, `exit 0 (stderr: ${run.stderr})`)
    t.equal(run.stderr, '', 'no error event, no complaint from sox or curl')
    assertFinalsMatchTruth(t, printedFinals(run.stdout), fixture)
  })
}

t.test('a usage line and exit 2 without arguments', async (t) => {
  const run = await runExample(SCRIPT, [])
  t.equal(run.code, 2)
  t.match(run.stderr, /usage: .*stream\.sh <audio file/)
})
