import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { InferenceError, ModelPool, type ModelPoolOptions } from '../../src/inference/model-pool.ts'
import type { ModelConfig } from '../../schemas/config.ts'
import { MARK } from '../fixtures/models/marked-crash-model.ts'

const fixtures = fileURLToPath(new URL('../fixtures/models/', import.meta.url))
const quiet = { delay: 0, constant_factor: 0, jitter: 0, failure_rate: 0, panic_rate: 0, warmup_penalty: 1 }

async function startPool (
  t: Test, model: Partial<ModelConfig>, options: ModelPoolOptions = {}
): Promise<ModelPool> {
  const config: ModelConfig = { module: 'dummy', threads: 2, options: quiet, ...model }
  const pool = await ModelPool.start(config, fixtures, options)
  t.teardown(() => pool.close())
  return pool
}

function marked (mark: number, samples = 100): Float32Array {
  const audio = new Float32Array(samples)
  audio[0] = mark
  return audio
}

async function rejection (promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

t.test('the dummy: infer returns the count', async (t) => {
  const pool = await startPool(t, {})
  t.equal(pool.ready, true)
  t.same(await pool.infer(new Float32Array(16000)), { count: 16000 })
})

t.test('many inferences on two threads all resolve, each with its own result', async (t) => {
  const pool = await startPool(t, { options: { ...quiet, delay: 0.01 } })
  const sizes = Array.from({ length: 24 }, (_, i) => 100 + i)
  const outputs = await Promise.all(sizes.map((n) => pool.infer(new Float32Array(n))))
  t.same(outputs, sizes.map((count) => ({ count })))
  t.equal(pool.queueSize, 0)
})

t.test('a model error is inference_failed with its message, and the pool goes on', async (t) => {
  const pool = await startPool(t, { options: { ...quiet, failure_rate: 1 } })
  for (let i = 0; i < 3; i++) {
    const error = await rejection(pool.infer(new Float32Array(10)))
    t.type(error, InferenceError)
    t.equal((error as InferenceError).code, 'inference_failed')
    t.match((error as InferenceError).message, /dummy model failure/)
  }
  t.equal(pool.failures, 3)
  t.equal(pool.crashes, 0)

  const marking = await startPool(t, { module: 'marked-crash-model.ts' })
  const error = await rejection(marking.infer(marked(MARK.fail)))
  t.equal((error as InferenceError).code, 'inference_failed')
  t.equal((error as InferenceError).message, 'marked failure')
  const next = await marking.infer(new Float32Array(7))
  t.equal(next.count, 7, 'the same pool answers the next inference')
  t.equal(marking.crashes, 0)
})

t.test('a crash is internal with a fixed message and the reason only in cause', async (t) => {
  const crashes: unknown[] = []
  // Warm-up crashes too (panic_rate 1): start-up survives that and reports it.
  const pool = await startPool(t, { options: { ...quiet, panic_rate: 1 } }, { onWorkerError: (e) => crashes.push(e) })
  t.equal(crashes.length, 2, 'both warm-ups crashed and were reported')
  const error = await rejection(pool.infer(new Float32Array(10)))
  t.type(error, InferenceError)
  t.equal((error as InferenceError).code, 'internal')
  t.equal((error as InferenceError).message, 'Internal server error')
  t.ok((error as InferenceError).cause, 'the real reason is kept for logs')
  t.ok(pool.crashes >= 3)
})

t.test('a crashed thread is replaced and the next inference succeeds', async (t) => {
  const reported: unknown[] = []
  const pool = await startPool(t, { module: 'marked-crash-model.ts', threads: 1 }, { onWorkerError: (e) => reported.push(e) })
  const before = await pool.infer(new Float32Array(5)) as { thread: number }

  const error = await rejection(pool.infer(marked(MARK.crash)))
  t.equal((error as InferenceError).code, 'internal')
  const after = await pool.infer(new Float32Array(5)) as { count: number, thread: number }
  t.equal(after.count, 5)
  t.not(after.thread, before.thread, 'answered by a new thread')
  t.equal(pool.crashes, 1)
  t.equal(reported.length, 0, 'a crash during an inference goes to its caller, not to onWorkerError')
})

t.test('a thread that crashes while idle is reported, replaced, and the process lives', async (t) => {
  const { promise: reported, resolve } = Promise.withResolvers<unknown>()
  // Idle threads are unref'd: without some handle of our own this process would simply end
  // before the crash (a server has its listening socket).
  const keepAlive = setInterval(() => {}, 1000)
  t.teardown(() => { clearInterval(keepAlive) })
  const listening = await startPool(t, { module: 'marked-crash-model.ts', threads: 1 }, { onWorkerError: resolve })
  const first = await listening.infer(marked(MARK.crashWhenIdle)) as { thread: number }
  const error = await reported
  t.match(String(error), /marked idle crash/)
  t.equal(listening.crashes, 1)
  const next = await listening.infer(new Float32Array(9)) as { count: number, thread: number }
  t.equal(next.count, 9)
  t.not(next.thread, first.thread, 'answered by the replacement thread')
})

t.test('a custom model module is loaded from a path relative to the config directory', async (t) => {
  const pool = await startPool(t, { module: 'echo-model.ts', options: { label: 'mine' } })
  const audio = new Float32Array([0.25, -0.5, 0.125])
  t.same(await pool.infer(audio), { count: 3, peak: 0.5, label: 'mine' })
  const absolute = await startPool(t, { module: `${fixtures}echo-model.ts`, threads: 1 })
  t.same(await absolute.infer(new Float32Array(2)), { count: 2, peak: 0, label: 'none' }, 'an absolute path works too')
})

t.test('a model that cannot start rejects start() with a clear message, without hanging', async (t) => {
  const start = (module: string, options: Record<string, unknown> = {}, startTimeoutMs?: number): Promise<ModelPool> =>
    ModelPool.start({ module, threads: 2, options }, fixtures, { startTimeoutMs })
  await t.rejects(start('broken-model.ts'), /model failed to start: .*broken-model\.ts.*createModel failed: weights file missing/)
  await t.rejects(start('no-create-model.ts'), /exports no createModel function/)
  await t.rejects(start('missing-model.ts'), /model\.module "missing-model\.ts": no such file/)
  await t.rejects(start('dummy', { delay: -1 }), /dummy model: option "delay"/)
  await t.rejects(start('hanging-model.ts', {}, 500), /did not load within 500 ms/)
})

t.test('audio is transferred, but a view into a larger buffer is copied first', async (t) => {
  const pool = await startPool(t, {})
  const whole = new Float32Array(50)
  await pool.infer(whole)
  t.equal(whole.buffer.detached, true, 'a whole buffer is moved to the worker')
  const backing = new Float32Array(100).fill(0.5)
  const view = backing.subarray(10, 30)
  t.same(await pool.infer(view), { count: 20 })
  t.equal(backing.buffer.detached, false, "the caller's larger buffer is left alone")
  t.equal(backing[99], 0.5)
})

t.test('abort: a queued inference leaves the queue, a running one is dropped', async (t) => {
  const pool = await startPool(t, { threads: 1, options: { ...quiet, delay: 0.2 } })
  const running = new AbortController()
  const queued = new AbortController()
  const first = pool.infer(new Float32Array(1), running.signal)
  const second = pool.infer(new Float32Array(2), queued.signal)
  const third = pool.infer(new Float32Array(3))
  t.equal(pool.queueSize, 2)
  queued.abort(new Error('client left'))
  t.equal(pool.queueSize, 1, 'the aborted inference left the queue at once')
  await t.rejects(second, /client left/)
  running.abort(new Error('gone too'))
  await t.rejects(first, /gone too/)
  t.same(await third, { count: 3 }, 'the rest still run')
  await t.rejects(pool.infer(new Float32Array(1), AbortSignal.abort(new Error('already'))), /already/)
})

t.test('after close, infer rejects as internal and ready is false', async (t) => {
  const pool = await startPool(t, {})
  await pool.close()
  t.equal(pool.ready, false)
  const error = await rejection(pool.infer(new Float32Array(1)))
  t.equal((error as InferenceError).code, 'internal')
})
