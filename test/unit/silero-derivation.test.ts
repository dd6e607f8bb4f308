// The derived Silero model (src/audio/models/silero_vad_v5_sequence.onnx) is committed; this
// checks that scripts/derive-silero-sequence.py still makes exactly that file from upstream's,
// so the script and the file the server runs cannot drift apart. (silero-vad.test.ts checks
// that the file gives upstream's probabilities.)
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { sileroModelPath, sileroUpstreamModelPath } from '../../src/audio/silero-vad.ts'

const ROOT = new URL('../..', import.meta.url).pathname
// Debian's Python, where `apt-get install python3-onnx` puts the onnx package.
const PYTHON = '/usr/bin/python3'

t.test('scripts/derive-silero-sequence.py makes the committed sequence model from upstream Silero v5', async t => {
  const probe = spawnSync(PYTHON, ['-c', 'import onnx'], { encoding: 'utf8' })
  if (probe.status !== 0) {
    t.fail(`${PYTHON} with the onnx package is needed to run the derivation (apt-get install -y python3-onnx): ${(probe.stderr ?? String(probe.error)).trim().split('\n').pop() ?? ''}`)
    return
  }
  const out = join(t.testdir(), 'derived.onnx')
  execFileSync(PYTHON, [join(ROOT, 'scripts/derive-silero-sequence.py'), sileroUpstreamModelPath(), out], { stdio: 'pipe' })
  const derived = readFileSync(out)
  const committed = readFileSync(sileroModelPath())
  t.equal(derived.length, committed.length, 'same size')
  t.ok(derived.equals(committed), 'byte for byte the committed file (if the script changed, run it and commit its output)')
})
