import t, { type Test } from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { InferenceError, ModelPool, type ModelPoolOptions } from '../../src/inference/model-pool.ts'
import type { ModelConfig } from '../../schemas/config.ts'
import { MARK } from '../fixtures/models/marked-crash-model.ts'
import { MARK as BLOCKING } from '../fixtures/models/blocking-model.ts'
import { CRASH } from '../fixtures/models/slow-load-model.ts'
import { waitUntil } from '../helpers/waiting.ts'

const fixtures = fileURLToPath(new URL('../fixtures/models/', import.meta.url))
const quiet = { delay: 0, constant_factor: 0, jitter: 0, failure_rate: 0, panic_rate: 0, warmup_penalty: 1 }

async function startPool (
  t: Test, model: Partial<ModelConfig>, options: ModelPoolOptions = {}
): Promise<ModelPool> {
  const config: ModelConfig = { module: 'dummy', threads: 2, options: quiet, timeout_seconds: 30, ...model }
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

t.test('a model that crashes on every call fails start-up: no thread can warm up', async (t) => {
  const crashes: unknown[] = []
  // Every thread warms up in its own initialisation, and with panic_rate 1 every warm-up
  // crashes: a pool with no thread that could ever be warm refuses to start, and says why.
  const config: ModelConfig = { module: 'dummy', threads: 2, options: { ...quiet, panic_rate: 1 }, timeout_seconds: 30 }
  await t.rejects(ModelPool.start(config, fixtures, { onWorkerError: (e) => crashes.push(e) }),
    /model failed to start: every model thread crashed while loading or warming up the model \(worker exited with code: 1\)/)
  t.equal(crashes.length, 2, 'both crashed warm-ups were reported')
})

t.test('a thread that crashes while warming up at start-up is reported; its replacement warms up before it takes work', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'model-pool-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const reported: unknown[] = []
  const pool = await startPool(t, { module: 'crash-once-model.ts', threads: 2, options: { marker: join(dir, 'crashed') } },
    { onWorkerError: (e) => reported.push(e) })
  t.equal(reported.length, 1, 'the crash was reported')
  t.equal(pool.crashes, 1)
  t.equal(pool.ready, true, 'the other thread serves meanwhile')
  await waitUntil('the replacement became usable', () => pool.usableThreads === 2)
  const outputs = await Promise.all([pool.infer(new Float32Array(3)), pool.infer(new Float32Array(4))])
  t.same(outputs.map((o) => o.first_call), [false, false], 'no real inference was a first call')
})

t.test('a crash is internal with a fixed message and the reason only in cause', async (t) => {
  const pool = await startPool(t, { module: 'marked-crash-model.ts', threads: 1 })
  const error = await rejection(pool.infer(marked(MARK.crash)))
  t.type(error, InferenceError)
  t.equal((error as InferenceError).code, 'internal')
  t.equal((error as InferenceError).message, 'Internal server error')
  t.ok((error as InferenceError).cause, 'the real reason is kept for logs')
  t.equal(pool.crashes, 1)
  t.equal(pool.timeouts, 0)
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
    ModelPool.start({ module, threads: 2, options, timeout_seconds: 30 }, fixtures, { startTimeoutMs })
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
  const first = pool.infer(new Float32Array(1), { signal: running.signal })
  const second = pool.infer(new Float32Array(2), { signal: queued.signal })
  const third = pool.infer(new Float32Array(3))
  t.equal(pool.queueSize, 2)
  queued.abort(new Error('client left'))
  t.equal(pool.queueSize, 1, 'the aborted inference left the queue at once')
  await t.rejects(second, /client left/)
  running.abort(new Error('gone too'))
  await t.rejects(first, /gone too/)
  t.same(await third, { count: 3 }, 'the rest still run')
  await t.rejects(pool.infer(new Float32Array(1), { signal: AbortSignal.abort(new Error('already')) }), /already/)
})

t.test('after close, infer rejects as internal and ready is false', async (t) => {
  const pool = await startPool(t, {})
  await pool.close()
  t.equal(pool.ready, false)
  const error = await rejection(pool.infer(new Float32Array(1)))
  t.equal((error as InferenceError).code, 'internal')
})

t.test('fairness: a session flooding the pool delays another session by about one inference', async (t) => {
  const pool = await startPool(t, { threads: 1, options: { ...quiet, delay: 0.02 } })
  const done: string[] = []
  const run = (key: string, name: string): Promise<void> =>
    pool.infer(new Float32Array(10), { key }).then(() => { done.push(name) })
  const a = Array.from({ length: 10 }, (_, i) => run('A', `A${i}`))
  t.equal(pool.queuedFor('A'), 9, 'one of A\'s jobs runs, nine wait')
  const b = run('B', 'B0')
  t.equal(pool.queuedFor('B'), 1)
  t.equal(pool.queuedFor(), 0, 'nothing waits without a key')
  t.equal(pool.queueSize, 10, 'queueSize counts every session')
  await Promise.all([...a, b])
  t.ok(done.indexOf('B0') < done.indexOf('A2'), `B's job completed before A's third (order: ${done.join(' ')})`)
  t.same(done.filter((name) => name.startsWith('A')), Array.from({ length: 10 }, (_, i) => `A${i}`), "A's own jobs kept their order")
  t.equal(pool.queuedFor('A'), 0)
})

t.test('fairness: the next job goes to the session served least recently, jobs without a key share one queue', async (t) => {
  const pool = await startPool(t, { threads: 1, options: { ...quiet, delay: 0.02 } })
  const done: string[] = []
  const run = (key: string | undefined, name: string): Promise<void> =>
    pool.infer(new Float32Array(10), key === undefined ? {} : { key }).then(() => { done.push(name) })
  const jobs = [
    run('A', 'A0'), run('A', 'A1'), run('A', 'A2'),
    run(undefined, 'x0'), run(undefined, 'x1'),
    run('C', 'C0')
  ]
  t.equal(pool.queuedFor(), 2, 'two jobs without a key wait in one queue')
  await Promise.all(jobs)
  // A0 was running; then each waiting asker once, in the order they came, then round again.
  t.same(done, ['A0', 'x0', 'C0', 'A1', 'x1', 'A2'])
})

t.test('deadline: a job past model.timeout_seconds is inference_timeout and its thread is replaced by a warm one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'model-pool-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const hold = join(dir, 'hold')
  const pool = await startPool(t, { module: 'blocking-model.ts', threads: 1, timeout_seconds: 0.5, options: { hold } })
  const before = await pool.infer(new Float32Array(5))
  t.same(before, { count: 5, thread: before.thread, first_call: false }, 'the start-up thread was warm')
  t.equal(pool.usableThreads, 1)

  // From here, a new thread's warm-up waits until the test removes `hold`.
  writeFileSync(hold, '')
  const timings: string[] = []
  const blocked = pool.infer(marked(BLOCKING.block), { onTiming: (timing) => { timings.push(timing.outcome) } })
  const next = pool.infer(new Float32Array(7))
  t.equal(pool.ready, true, 'a thread busy within its deadline is not stuck')
  const error = await rejection(blocked)
  t.type(error, InferenceError)
  t.equal((error as InferenceError).code, 'inference_timeout')
  t.equal((error as InferenceError).message, 'The model did not answer within 0.5 s (model.timeout_seconds)')
  t.same(timings, ['inference_timeout'])
  t.equal(pool.timeouts, 1)
  t.equal(pool.crashes, 0, 'a deadline is not a crash')
  // The only thread was terminated and its replacement is held cold: nothing is usable.
  t.equal(pool.usableThreads, 0)
  t.equal(pool.ready, false, 'not ready while every thread is stuck')
  t.equal(pool.queuedFor(), 1, 'the next job waits in the pool, not on the cold thread')

  rmSync(hold)
  const after = await next
  t.equal(after.count, 7, 'the next job works')
  t.not(after.thread, before.thread, 'on a new thread')
  t.equal(after.first_call, false, 'which had warmed up before it took the job')
  await waitUntil('the pool is ready again', () => pool.ready)
  t.equal(pool.usableThreads, 1)
  t.equal(pool.timeouts, 1)
})

t.test('deadline: a stuck job whose caller gave up still has its thread replaced', async (t) => {
  const pool = await startPool(t, { module: 'blocking-model.ts', threads: 1, timeout_seconds: 0.5, options: {} })
  const gone = new AbortController()
  const blocked = pool.infer(marked(BLOCKING.block), { signal: gone.signal })
  const next = pool.infer(new Float32Array(3))
  gone.abort(new Error('client left'))
  await t.rejects(blocked, /client left/, 'the caller hears of its abort at once')
  const after = await next
  t.equal(after.count, 3, 'the job behind it ran once the stuck thread was replaced')
  t.equal(after.first_call, false)
  t.equal(pool.timeouts, 1)
  t.equal(pool.crashes, 0)
})

t.test('close ends even while threads are blocked for ever (Atomics.wait, busy loop)', async (t) => {
  const pool = await startPool(t, { module: 'blocking-model.ts', threads: 2, options: {} }, { closeGraceMs: 200 })
  const outcomes: string[] = []
  const stuck = [BLOCKING.block, BLOCKING.spin].map((mark) =>
    rejection(pool.infer(marked(mark), { onTiming: (timing) => { outcomes.push(timing.outcome) } })))
  const queued = rejection(pool.infer(new Float32Array(1)))
  // Both threads hold a job (their deadline is 30 s away) and a third job waits.
  await waitUntil('both threads are busy', () => pool.queuedFor() === 1 && pool.usableThreads === 2)
  await pool.close()
  t.equal(pool.ready, false)
  const errors = await Promise.all([...stuck, queued])
  t.same(errors.map((error) => (error as InferenceError).code), ['internal', 'internal', 'internal'])
  t.same(outcomes, ['internal', 'internal'])
  t.equal(pool.crashes, 0, 'threads ended by close are not crashes')
  t.equal(pool.timeouts, 0)
})

// onnxruntime-node aborts the whole process when a thread is terminated while it loads a model,
// so close must not end a replacement thread mid-load (it did: it destroyed the threads at once).
t.test('close waits for a replacement thread that is still loading the model', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'model-pool-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const log = join(dir, 'loads.log')
  const pool = await startPool(t, { module: 'slow-load-model.ts', threads: 1, options: { log, load_ms: 300 } })
  const error = await rejection(pool.infer(marked(CRASH)))
  t.equal((error as InferenceError).code, 'internal', 'the crash')
  await pool.close()
  const lines = readFileSync(log, 'utf8').trim().split('\n')
  t.equal(lines.filter((line) => line.startsWith('start')).length, 2, 'a replacement started loading', { lines })
  t.equal(lines.filter((line) => line.startsWith('loaded')).length, 2, 'and finished before close ended it', { lines })
})

t.test('close lets a running job finish within its grace', async (t) => {
  const pool = await startPool(t, { threads: 1, options: { ...quiet, delay: 0.1 } })
  const running = pool.infer(new Float32Array(4))
  const queued = rejection(pool.infer(new Float32Array(5)))
  await pool.close()
  t.same(await running, { count: 4 })
  t.equal(((await queued) as InferenceError).code, 'internal')
})
