import t from 'tap'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { assertFinalsMatchTruth, printedFinals, runExample } from '../helpers/example-finals.ts'
import { loadFixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'

// examples/python/ against a live server, run as its README shows (`./stream_websocket.py
// <file.wav> <url>`), with Debian's python3 (which has python3-websockets): the finals each
// prints are held to the fixture's true speech, and each verifies the server's sha256.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
const DIR = fileURLToPath(new URL('../../examples/python/', import.meta.url))
const server = await startServer()
t.teardown(() => server.close())

const fixtures = ['hello_16k_mono', 'dialogue_44k_stereo', 'counting_8k_mono'].map(loadFixture)

for (const [script, url] of [['stream_websocket.py', server.ws], ['upload_sse.py', server.http]] as const) {
  t.test(script, async (t) => {
    for (const fixture of fixtures) {
      const run = await runExample(PYTHON, [`${DIR}${script}`, fixture.path, url])
      t.equal(run.code, 0, `${fixture.name}: exit 0 (stderr: ${run.stderr.slice(-300)})`)
      t.match(run.stderr, new RegExp(`^sha256 matches: all ${fixture.pcm.length} bytes arrived$`, 'm'), 'the server took exactly the audio sent')
      const finals = printedFinals(run.stdout)
      assertFinalsMatchTruth(t, finals, fixture)
      t.ok(finals.every((f) => /^\{"count": \d+\}$/.test(f.rest)), 'each final carries the model output as JSON')
    }
  })
}

t.test('a usage line without arguments', async (t) => {
  const run = await runExample(PYTHON, [`${DIR}stream_websocket.py`])
  t.not(run.code, 0)
  t.match(run.stderr, /usage: .*stream_websocket\.py <file\.wav>/)
})
