import t from 'tap'
import type { StreamEvent } from '../../schemas/events.ts'
import type { InferFn } from '../../src/core/services.ts'
import { Session } from '../../src/core/session.ts'
import { SimpleRunner } from '../../src/core/simple-runner.ts'
import { Stream } from '../../src/core/stream.ts'
import type { ModelOutput } from '../../src/inference/model.ts'
import { collector, fakeServices, TEST_LIMITS } from '../helpers/fake-services.ts'
import { synth, toS16 } from '../helpers/signals.ts'

// A model the test answers by hand: every call is recorded (a copy of its audio) and waits
// until answer() settles it.
function manualModel (): { infer: InferFn, calls: Float32Array[], answer: (index: number) => void } {
  const calls: Float32Array[] = []
  const pending: Array<(output: ModelOutput) => void> = []
  const infer: InferFn = async (audio) => {
    calls.push(audio.slice())
    return await new Promise<ModelOutput>((resolve) => { pending.push(resolve) })
  }
  return { infer, calls, answer: (index) => { pending[index]?.({ count: (calls[index] as Float32Array).length }) } }
}

const turn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }
// Only microtasks: no timer (the flow-control poll) can run meanwhile.
const microtasks = async (count = 50): Promise<void> => {
  for (let i = 0; i < count; i++) await new Promise<void>((resolve) => { queueMicrotask(resolve) })
}

function runner (infer: InferFn, emit: (event: StreamEvent) => void = () => {}): SimpleRunner {
  return new SimpleRunner({ channel: 0, services: fakeServices(infer), interimResults: false, emit, signal: new AbortController().signal })
}

const frame = (samples: number, value = 0.25): Float32Array => new Float32Array(samples).fill(value)

t.test('a stream in real time goes to the model as it comes, one inference per frame while a slot is free', async (t) => {
  const model = manualModel()
  const r = runner(model.infer)
  r.push(frame(320))
  t.equal(model.calls.length, 1, 'the first frame at once, within push()')
  r.push(frame(320))
  t.equal(model.calls.length, 2, 'the second takes the second slot at once')
  r.push(frame(320))
  r.push(frame(320))
  t.equal(model.calls.length, 2, 'with both slots busy the next frames wait')
  model.answer(0)
  await microtasks()
  t.equal(model.calls.length, 3, 'a free slot takes what waited, merged')
  t.equal(model.calls[2]?.length, 640)
  model.answer(1)
  model.answer(2)
  await r.finish()
})

t.test('a stream sent faster than real time is merged per turn of the event loop', async (t) => {
  const model = manualModel()
  const r = runner(model.infer)
  // 3 s of 20 ms frames in one go: the first second goes as a live stream would (two slots),
  // after that the stream is more than 1 s ahead of real time.
  for (let i = 0; i < 150; i++) r.push(frame(320))
  t.equal(model.calls.length, 2)
  model.answer(0)
  model.answer(1)
  await microtasks()
  t.equal(model.calls.length, 2, 'freed slots wait for the end of the turn')
  await turn()
  t.equal(model.calls.length, 3, 'then everything queued goes in one inference')
  t.equal(model.calls[2]?.length, 148 * 320)
  // Frames that arrive together (one socket read) with slots free: one inference for all.
  model.answer(2)
  await microtasks()
  for (let i = 0; i < 10; i++) r.push(frame(320, i / 10))
  t.equal(model.calls.length, 3, 'not one inference per frame')
  await turn()
  t.equal(model.calls.length, 4)
  t.same(Array.from(model.calls[3] ?? []).filter((_, k) => k % 320 === 0), Array.from({ length: 10 }, (_, i) => Math.fround(i / 10)), 'the frames in order')
  // finish() does not wait for the end of the turn.
  r.push(frame(320))
  const finished = r.finish()
  t.equal(model.calls.length, 5, 'finish dispatches at once')
  model.answer(3)
  model.answer(4)
  await finished
  t.equal(model.calls.reduce((n, c) => n + c.length, 0), 161 * 320, 'every sample went to the model once')
})

t.test('the runner copies what it is given: the caller may reuse its array', async (t) => {
  const model = manualModel()
  const r = runner(model.infer)
  const reused = frame(320, 0.5)
  r.push(reused) // dispatched at once
  r.push(reused) // second slot
  r.push(reused) // queued
  reused.fill(-0.5)
  r.push(reused) // queued
  model.answer(0)
  await microtasks()
  t.same([...new Set(model.calls[2])], [0.5, -0.5], 'the queued frame kept the values it was pushed with')
  t.equal(model.calls[2]?.indexOf(-0.5), 320)
  model.answer(1)
  model.answer(2)
  await r.finish()
})

t.test('a queue spanning many blocks is taken in order, in pieces of any size', async (t) => {
  const model = manualModel()
  // Inferences of at most 0.1 s (1600 samples): the takes start and end inside the 4096-sample blocks.
  const r = new SimpleRunner({ channel: 0, services: fakeServices(model.infer, { simple_max_chunk_seconds: 0.1 }), interimResults: false, emit: () => {}, signal: new AbortController().signal })
  let next = 0
  for (let i = 0; i < 100; i++) {
    const chunk = new Float32Array(1 + ((i * 7919) % 5000))
    for (let k = 0; k < chunk.length; k++) chunk[k] = (next++ % 1000) / 1000
    r.push(chunk)
  }
  const state = { done: false } // set by finish
  const finished = r.finish().then(() => { state.done = true })
  for (let answered = 0; !state.done; answered++) {
    while (model.calls.length <= answered && !state.done) await turn()
    model.answer(answered)
    await microtasks()
  }
  await finished
  const taken = model.calls.flatMap((c) => Array.from(c))
  t.equal(taken.length, next, 'every sample once')
  t.ok(taken.every((v, k) => v === Math.fround((k % 1000) / 1000)), 'in order')
  t.ok(model.calls.every((c) => c.length <= 1600), 'no inference over simple_max_chunk_seconds')
})

t.test('flow control resumes reading as soon as results free the held work, not at its next poll', async (t) => {
  const model = manualModel()
  const { emit } = collector()
  const limits = { ...TEST_LIMITS, max_buffered_seconds: 1 }
  const session = new Session({ mode: 'simple', format: { channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }, interimResults: false, services: fakeServices(model.infer, limits), emit })
  const log: string[] = []
  const stream = new Stream({ id: 's', transport: 'websocket', session, limits, client: undefined, sink: { send: () => {}, close: () => {}, pause: () => { log.push('pause') }, resume: () => { log.push('resume') } } })
  const bytes = toS16([synth([{ seconds: 1.5, tone: 300 }], 16000)])
  // Two half seconds take the two slots, the third is held: 1.5 s > 1 s, the stream pauses.
  for (let at = 0; at < bytes.length; at += 16000) stream.pushAudio(bytes.subarray(at, at + 16000))
  t.same(log, ['pause'])
  t.ok(stream.paused)
  model.answer(0)
  model.answer(1)
  await microtasks()
  t.same(log, ['pause', 'resume'], 'resumed by the results themselves (0.5 s held, half the bound)')
  t.notOk(stream.paused)
  const finished = stream.finish()
  await turn()
  model.answer(2)
  const end = await finished
  t.same(end.samples_received, [24000])
})
