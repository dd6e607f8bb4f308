import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { VAD_FRAME_SAMPLES } from '../../src/audio/silero-vad.ts'
import { VadPool } from '../../src/core/vad-pool.ts'

const CLOSE_VAD_POOLS = fileURLToPath(new URL('../fixtures/scripts/close-vad-pools.ts', import.meta.url))

interface Exit { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

// Runs a script in its own process: what this test guards against is onnxruntime aborting the
// whole process, which would take the test runner down with it.
function runScript (path: string): Promise<Exit> {
  const child = spawn(process.execPath, [path], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  return new Promise((resolve) => {
    child.on('close', (code, signal) => { resolve({ code, signal, stdout, stderr }) })
  })
}

t.test('every thread has the model loaded once check() resolves, and streams run on them', async (t) => {
  const pool = new VadPool({ threads: 2 })
  t.teardown(() => pool.close())
  await pool.check()
  // Two streams at once: with two threads in flight, both threads take a batch.
  const streams = [pool.createStream(), pool.createStream()]
  const results = await Promise.all(streams.map(async (stream) => await stream.process(new Float32Array(4 * VAD_FRAME_SAMPLES))))
  for (const probabilities of results) {
    t.equal(probabilities.length, 4, 'one probability per frame')
    t.ok(probabilities.every((p) => p >= 0 && p < 0.5), 'silence is not speech')
  }
})

// A VAD thread terminated while onnxruntime loads the Silero model aborts the process
// ("terminate called after throwing an instance of 'Napi::Error'", SIGABRT). Seen when a
// two-thread pool was closed right after check() (which used to wait for one thread only) or
// while its threads were still loading. Closing at every moment of the load, for two and three
// threads, must end the process cleanly. Against the old pool this aborted within a few rounds.
t.test('closing a pool while its threads load the model or run batches ends cleanly', async (t) => {
  const exit = await runScript(CLOSE_VAD_POOLS)
  t.equal(exit.signal, null, 'not killed by a signal', { stderr: exit.stderr })
  t.equal(exit.code, 0, 'exits 0', { stderr: exit.stderr })
  t.notMatch(exit.stderr, /terminate called/, 'onnxruntime did not abort')
  t.match(exit.stdout, /closed every pool while loading/)
  t.match(exit.stdout, /answered both requests in 6 of 6 pools closed while both threads ran/,
    'close lets both threads finish their batches (Piscina\'s close terminated one mid-run)')
})
