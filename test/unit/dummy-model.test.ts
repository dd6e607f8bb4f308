import t from 'tap'
import { DummyModel, createModel, parseDummyOptions } from '../../src/inference/dummy-model.ts'
import type { DummyModelOptions } from '../../schemas/config.ts'

const quiet: DummyModelOptions = { delay: 0, constant_factor: 0, jitter: 0, failure_rate: 0, panic_rate: 0, warmup_penalty: 1 }

// Feeds infer's three draws (jitter, panic, failure) from a list, and records the planned sleeps.
function scripted (options: Partial<DummyModelOptions>, draws: number[]): { model: DummyModel, sleeps: number[] } {
  const sleeps: number[] = []
  const model = new DummyModel({ ...quiet, ...options }, {
    sleep: (seconds) => { sleeps.push(seconds) },
    random: () => {
      const next = draws.shift()
      if (next === undefined) throw new Error('test ran out of random draws')
      return next
    }
  })
  return { model, sleeps }
}

t.test('returns the sample count', async (t) => {
  const model = createModel(quiet) as DummyModel
  t.same(model.infer(new Float32Array(1234)), { count: 1234 })
  t.same(model.infer(new Float32Array(0)), { count: 0 })
})

t.test('defaults are the Rust original config', async (t) => {
  t.same(parseDummyOptions({}), {
    delay: 0.5, constant_factor: 0.3, jitter: 0.2, failure_rate: 0.01, panic_rate: 0, warmup_penalty: 10
  })
  t.same(parseDummyOptions({ delay: 0 }).delay, 0, 'a given option wins over its default')
})

t.test('planned sleep: duration * constant_factor + delay + jitter, warm-up penalty on the first call only', async (t) => {
  // 16000 samples = 1 s of audio; draws 0.5 = zero jitter, 0 = -jitter, ~1 = +jitter; 0.99 = no panic/failure
  const { model, sleeps } = scripted(
    { delay: 0.5, constant_factor: 0.3, jitter: 0.2, failure_rate: 0.01, warmup_penalty: 10 },
    [0.5, 0.99, 0.99, 0.5, 0.99, 0.99, 0, 0.99, 0.99, 0.999999, 0.99, 0.99]
  )
  const second = new Float32Array(16000)
  for (let i = 0; i < 4; i++) model.infer(second)
  t.equal(sleeps.length, 4)
  t.ok(Math.abs((sleeps[0] ?? 0) - 8) < 1e-9, `first call pays 10x: ${sleeps[0]}`)
  t.ok(Math.abs((sleeps[1] ?? 0) - 0.8) < 1e-9, `second call does not: ${sleeps[1]}`)
  t.ok(Math.abs((sleeps[2] ?? 0) - 0.6) < 1e-9, `lowest jitter: ${sleeps[2]}`)
  t.ok(Math.abs((sleeps[3] ?? 0) - 1.0) < 1e-5, `highest jitter: ${sleeps[3]}`)
})

t.test('the sleep is never negative', async (t) => {
  const { model, sleeps } = scripted({ delay: 0.1, jitter: 0.5 }, [0, 0.5, 0.5])
  model.infer(new Float32Array(100))
  t.same(sleeps, [0])
})

t.test('blocks its thread for about the planned time', async (t) => {
  const model = createModel({ ...quiet, delay: 0.05 }) as DummyModel
  const started = performance.now()
  model.infer(new Float32Array(16))
  // A loose lower bound only: the sleep happened at all, and synchronously.
  t.ok(performance.now() - started >= 40, 'slept at least ~40 ms of the planned 50 ms')
})

t.test('failure_rate 1 always throws; failure_rate 0 never does', async (t) => {
  const failing = createModel({ ...quiet, failure_rate: 1 }) as DummyModel
  for (let i = 0; i < 20; i++) t.throws(() => failing.infer(new Float32Array(10)), /dummy model failure/)
  const fine = createModel(quiet) as DummyModel
  for (let i = 0; i < 20; i++) t.same(fine.infer(new Float32Array(10)), { count: 10 })
})

t.test('a panic on the main thread throws instead of ending the process', async (t) => {
  const panicking = createModel({ ...quiet, panic_rate: 1 }) as DummyModel
  t.throws(() => panicking.infer(new Float32Array(10)), /panic/)
})

t.test('bad options are rejected with a message naming the field', async (t) => {
  t.throws(() => createModel({ delay: -1 }), /"delay"/)
  t.throws(() => createModel({ failure_rate: 2 }), /"failure_rate"/)
  t.throws(() => createModel({ warmup_penalty: 0.5 }), /"warmup_penalty"/)
  t.throws(() => createModel({ jitter: 'lots' }), /"jitter"/)
  t.throws(() => createModel({ dealy: 0.5 }), /unknown option "dealy"/)
})
