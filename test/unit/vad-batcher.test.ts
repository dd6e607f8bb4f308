// VadBatcher's scheduling: which requests share a worker task and when a task goes out. The
// worker is a fake that records the tasks it gets; Silero itself is tested in silero-vad.test.ts.
// No assertion depends on how fast the machine is: holding is shown with a gathering far longer
// than any test (held requests go out only when something else sends them), and a short one is
// only awaited, never timed.
import t from 'tap'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { VAD_FRAME_SAMPLES } from '../../src/audio/silero-vad.ts'
import { VadBatcher, type VadStream, type VadTask, type VadTaskRunner } from '../../src/audio/vad-batcher.ts'

interface Recorder {
  run: VadTaskRunner
  tasks: VadTask[]
  // Settles the oldest task still running (tasks settle at once unless `hold`).
  release: () => void
}

// Each task resolves with one probability per frame: 0.1 * (its stream's index in the task + 1).
function recorder (hold = false): Recorder {
  const tasks: VadTask[] = []
  const waiting: Array<() => void> = []
  const run: VadTaskRunner = async (task) => {
    tasks.push(task)
    if (hold) await new Promise<void>((resolve) => { waiting.push(resolve) })
    const probabilities = new Float32Array(task.frames.length / VAD_FRAME_SAMPLES)
    let at = 0
    task.steps.forEach((steps, i) => { probabilities.fill(0.1 * (i + 1), at, at + steps); at += steps })
    return { probabilities, contexts: task.contexts.slice(), states: task.states.slice() }
  }
  return { run, tasks, release: () => { waiting.shift()?.() } }
}

const frames = (n: number): Float32Array => new Float32Array(n * VAD_FRAME_SAMPLES)
const HELD = 1e6 // a gathering no test outlasts

t.test('without gatherMs the requests of one turn share a task, later ones go at once', async (t) => {
  const r = recorder()
  const batcher = new VadBatcher(r.run)
  const [a, b, c] = [batcher.createStream(), batcher.createStream(), batcher.createStream()]
  const first = await Promise.all([a.process(frames(2)), b.process(frames(1))])
  t.same(r.tasks.map((task) => task.steps), [[2, 1]], 'one task for both')
  t.same([...first[0]].map((p) => p.toFixed(1)), ['0.1', '0.1'], 'each caller gets its own probabilities')
  t.same([...first[1]].map((p) => p.toFixed(1)), ['0.2'])
  await c.process(frames(1))
  t.same(r.tasks.map((task) => task.steps), [[2, 1], [1]], 'a request after the dispatch is sent alone, not held')
})

t.test('with gatherMs a request soon after a dispatch is held for others to join', async (t) => {
  const r = recorder()
  const batcher = new VadBatcher(r.run, { gatherMs: HELD })
  const streams = Array.from({ length: 4 }, () => batcher.createStream())
  await streams[0]?.process(frames(1))
  t.equal(r.tasks.length, 1, 'the first request goes at once: nothing was dispatched before it')

  const held = [streams[1]?.process(frames(1)), streams[2]?.process(frames(2))]
  await nextTurn()
  await nextTurn()
  t.equal(r.tasks.length, 1, 'requests within the gathering are held')

  const urgent = streams[3]?.process(frames(1), { urgent: true })
  await Promise.all([...held, urgent])
  t.same(r.tasks.map((task) => task.steps), [[1], [1, 2, 1]], 'an urgent request goes in the next run, and the held ones with it')
})

t.test('a held request goes out when the gathering ends', async (t) => {
  const r = recorder()
  const batcher = new VadBatcher(r.run, { gatherMs: 20 })
  const [a, b, c] = [batcher.createStream(), batcher.createStream(), batcher.createStream()]
  await a.process(frames(1))
  await Promise.all([b.process(frames(1)), c.process(frames(1))])
  t.same(r.tasks.map((task) => task.steps), [[1], [1, 1]], 'both held requests in one task, sent by the timer')
})

t.test('enough pending frames are a run of their own: nothing is held', async (t) => {
  const r = recorder()
  const batcher = new VadBatcher(r.run, { gatherMs: HELD, readyFrames: 8, aheadFrames: 1000 })
  const [a, b, c] = [batcher.createStream(), batcher.createStream(), batcher.createStream()]
  await a.process(frames(1))
  await Promise.all([b.process(frames(5)), c.process(frames(3))])
  t.same(r.tasks.map((task) => task.steps), [[1], [5, 3]], '8 frames pending: dispatched without waiting for the gathering')
  await a.process(frames(8))
  t.same(r.tasks.at(-1)?.steps, [8], 'nor is one stream\'s request of that many frames')
})

t.test('a request of aheadFrames or more is not held, however few frames are pending', async (t) => {
  const r = recorder()
  const batcher = new VadBatcher(r.run, { gatherMs: HELD, readyFrames: 1000, aheadFrames: 8 })
  const [a, b] = [batcher.createStream(), batcher.createStream()]
  await a.process(frames(1))
  const held = b.process(frames(7))
  await nextTurn()
  await nextTurn()
  t.equal(r.tasks.length, 1, 'a 7-frame request is held')
  await Promise.all([held, a.process(frames(8))])
  t.same(r.tasks.map((task) => task.steps), [[1], [7, 8]], 'an 8-frame request goes at once, taking the held one along')
})

t.test('maxTaskFrames splits what is pending into tasks of at most that many frames', async (t) => {
  const r = recorder(true)
  const batcher = new VadBatcher(r.run, { maxInFlight: 1, maxTaskFrames: 8 })
  const streams = Array.from({ length: 6 }, () => batcher.createStream())
  const first = (streams[0] as VadStream).process(frames(1))
  await nextTurn()
  // Told apart by their frame counts; 12 is more than a task takes, so it goes alone.
  const rest = [5, 3, 4, 12, 2].map(async (n, i) => await (streams[i + 1] as VadStream).process(frames(n), { urgent: n === 2 }))
  await nextTurn()
  for (let i = 0; i < 5; i++) {
    r.release()
    await nextTurn()
    await nextTurn()
  }
  await Promise.all([first, ...rest])
  t.same(r.tasks.map((task) => task.steps), [[1], [2, 5], [3, 4], [12]],
    'the urgent request first, then the oldest that fit in 8 frames; a request over the bound goes alone')
})

t.test('while every thread is busy requests wait, then go together', async (t) => {
  const r = recorder(true)
  const batcher = new VadBatcher(r.run, { maxInFlight: 1 })
  const [a, b, c] = [batcher.createStream(), batcher.createStream(), batcher.createStream()]
  const first = a.process(frames(1))
  await nextTurn()
  const rest = [b.process(frames(1)), c.process(frames(2), { urgent: true })]
  await nextTurn()
  t.equal(r.tasks.length, 1, 'one task in flight, even for an urgent request')
  r.release()
  await first
  await nextTurn()
  t.same(r.tasks.map((task) => task.steps), [[1], [1, 2]], 'what waited goes in one task once the thread is free')
  r.release()
  await Promise.all(rest)
})

t.test('when more are pending than one task takes, the urgent go first', async (t) => {
  const r = recorder(true)
  const batcher = new VadBatcher(r.run, { maxInFlight: 1, maxBatch: 2 })
  const streams = Array.from({ length: 5 }, () => batcher.createStream())
  const first = streams[0]?.process(frames(1))
  await nextTurn()
  // Told apart by their frame counts: 1, 2, 3 wait; 4 is urgent.
  const rest = [1, 2, 3, 4].map(async (n) => await (streams[n] as VadStream).process(frames(n), { urgent: n === 4 }))
  await nextTurn()
  r.release()
  await first
  await nextTurn()
  t.same(r.tasks.map((task) => task.steps), [[1], [4, 1]], 'the urgent request, then the oldest waiting one')
  r.release()
  await nextTurn()
  await nextTurn()
  t.same(r.tasks.at(-1)?.steps, [2, 3], 'then the others, in order')
  r.release()
  await Promise.all(rest)
})

t.test('held requests stay in order with the streams\' state', async (t) => {
  const r = recorder()
  const batcher = new VadBatcher(r.run, { gatherMs: HELD })
  const a = batcher.createStream()
  await a.process(frames(1))
  const held = a.process(frames(1))
  await t.rejects(a.process(frames(1)), /before the previous call settled/, 'a stream still has one call at a time while held')
  const other = batcher.createStream().process(frames(1), { urgent: true })
  await Promise.all([held, other])
  t.same(r.tasks.map((task) => task.steps), [[1], [1, 1]])
})

t.test('options are checked', async (t) => {
  const r = recorder()
  t.throws(() => new VadBatcher(r.run, { gatherMs: -1 }), /gatherMs/)
  t.throws(() => new VadBatcher(r.run, { gatherMs: Infinity }), /gatherMs/)
  t.throws(() => new VadBatcher(r.run, { maxTaskFrames: 0 }), /maxTaskFrames/)
})
