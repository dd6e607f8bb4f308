import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import wavefile from 'wavefile'
import {
  SileroVad,
  sileroModelPath,
  sileroUpstreamModelPath,
  VAD_CONTEXT_SAMPLES,
  VAD_FRAME_SAMPLES,
  VAD_STATE_SIZE,
  type VadItem,
  type VadResult,
  type VadTask
} from '../../src/audio/silero-vad.ts'
import { AUDIO_DIR } from '../helpers/fixtures.ts'
import { identityModel } from '../helpers/onnx-model.ts'
import { VadBatcher, type VadStream, type VadTaskRunner } from '../../src/audio/vad-batcher.ts'

// hello_16k_mono.wav is already 16 kHz mono 16-bit: read it directly, scaled to [-1, 1).
function helloSpeech (): Float32Array {
  const wav = new wavefile.WaveFile(readFileSync(join(AUDIO_DIR, 'hello_16k_mono.wav')))
  const ints = wav.getSamples(false, Int16Array) as unknown as Int16Array
  const whole = Math.floor(ints.length / VAD_FRAME_SAMPLES) * VAD_FRAME_SAMPLES
  return Float32Array.from(ints.subarray(0, whole), x => x / 32768)
}

// Deterministic noise, so a failure reproduces.
function noise (samples: number, amplitude: number, seed: number): Float32Array {
  const out = new Float32Array(samples)
  let x = seed
  for (let i = 0; i < samples; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = ((x / 4294967296) * 2 - 1) * amplitude
  }
  return out
}

function freshItem (frames: Float32Array): VadItem {
  return { frames, context: new Float32Array(VAD_CONTEXT_SAMPLES), state: new Float32Array(VAD_STATE_SIZE) }
}

function maxAbsDiff (a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity
  let max = 0
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)))
  return max
}

const speech = helloSpeech()
// Its true speech regions in seconds (hello_16k_mono.json), to know where silence and speech are.
const helloRegions = (JSON.parse(readFileSync(join(AUDIO_DIR, 'hello_16k_mono.json'), 'utf8')) as { speech: Array<[number, number]> }).speech

t.test('SileroVad', async t => {
  const vad = await SileroVad.load()
  t.teardown(() => vad.close())

  t.match(sileroModelPath(), /silero_vad_v5_sequence\.onnx$/)

  await t.test('silence is not speech, speech is, all probabilities in [0, 1]', async t => {
    const [silent] = await vad.run([freshItem(new Float32Array(20 * VAD_FRAME_SAMPLES))])
    t.equal(silent?.probabilities.length, 20)
    t.ok(Math.max(...(silent?.probabilities ?? [1])) < 0.05, 'digital silence stays near 0')

    const [spoken] = await vad.run([freshItem(speech)])
    const p = spoken?.probabilities ?? new Float32Array()
    t.equal(p.length, speech.length / VAD_FRAME_SAMPLES)
    t.ok(p.every(x => x >= 0 && x <= 1), 'every probability is in [0, 1]')
    // Up to 0.16 s before the first true region is silence; its inside (from 0.2 s after its
    // start to 0.04 s before its end) is speech.
    const [start, end] = helloRegions[0] ?? [NaN, NaN]
    const frameSeconds = VAD_FRAME_SAMPLES / 16000
    const silentFrames = Math.floor((start - 0.16) / frameSeconds)
    t.ok(silentFrames >= 10, `${silentFrames} frames of leading silence to check`)
    t.ok(Math.max(...p.subarray(0, silentFrames)) < 0.1, `leading silence (0-${(silentFrames * frameSeconds).toFixed(2)} s) is below 0.1`)
    const speechFrames = p.subarray(Math.ceil((start + 0.2) / frameSeconds), Math.floor((end - 0.04) / frameSeconds))
    t.ok(speechFrames.length > 50, `${speechFrames.length} frames of speech to check`)
    t.ok(speechFrames.filter(x => x >= 0.5).length > 0.8 * speechFrames.length, `most of ${(start + 0.2).toFixed(2)}-${(end - 0.04).toFixed(2)} s is speech`)
  })

  await t.test('context and state are carried: one run equals the same audio in pieces', async t => {
    const whole = freshItem(speech.slice(0, 40 * VAD_FRAME_SAMPLES))
    const [all] = await vad.run([whole])
    const piece = freshItem(speech.slice(0, 7 * VAD_FRAME_SAMPLES))
    const [first] = await vad.run([piece])
    t.same(piece.context, speech.subarray(7 * VAD_FRAME_SAMPLES - VAD_CONTEXT_SAMPLES, 7 * VAD_FRAME_SAMPLES), 'context is the last 64 samples')
    t.notOk(piece.state.every(x => x === 0), 'state has moved')
    const [rest] = await vad.run([{ ...piece, frames: speech.slice(7 * VAD_FRAME_SAMPLES, 40 * VAD_FRAME_SAMPLES) }])
    const joined = new Float32Array(40)
    joined.set(first?.probabilities ?? [], 0)
    joined.set(rest?.probabilities ?? [], 7)
    t.ok(maxAbsDiff(joined, all?.probabilities ?? new Float32Array()) <= 1e-6)
    t.ok(maxAbsDiff(piece.state, whole.state) <= 1e-6, 'same final state')
  })

  await t.test('a batch of 3 streams of different lengths equals each stream alone', async t => {
    const audio = [
      speech.slice(0, 60 * VAD_FRAME_SAMPLES),
      noise(25 * VAD_FRAME_SAMPLES, 0.1, 7),
      speech.slice(80 * VAD_FRAME_SAMPLES, 120 * VAD_FRAME_SAMPLES)
    ]
    const alone: Array<{ probabilities: Float32Array, state: Float32Array, context: Float32Array }> = []
    for (const frames of audio) {
      const item = freshItem(frames)
      const [r] = await vad.run([item])
      alone.push({ probabilities: r?.probabilities ?? new Float32Array(), state: item.state, context: item.context })
    }
    const batched = await vad.run(audio.map(freshItem))
    t.equal(batched.length, 3)
    batched.forEach((r, i) => {
      const solo = alone[i]
      t.equal(r.probabilities.length, audio[i]!.length / VAD_FRAME_SAMPLES, `stream ${i}: one probability per frame`)
      t.ok(maxAbsDiff(r.probabilities, solo?.probabilities ?? new Float32Array()) <= 1e-6, `stream ${i}: same probabilities`)
      t.ok(maxAbsDiff(r.state, solo?.state ?? new Float32Array()) <= 1e-6, `stream ${i}: same state`)
      t.same(r.context, solo?.context, `stream ${i}: same context`)
    })
  })

  await t.test('runs go straight to the native session, with the same results as session.run', async t => {
    // The binding is onnxruntime-node's undocumented layer (silero-vad.ts, nativeSession): if an
    // upgrade changes it the VAD still works through session.run, only slower, and this says so.
    t.ok(vad.synchronous, 'the installed onnxruntime-node takes the synchronous path')
    const viaPublic = await SileroVad.load(sileroModelPath(), { api: 'public' })
    t.teardown(() => viaPublic.close())
    t.notOk(viaPublic.synchronous)
    const audio = speech.slice(0, 30 * VAD_FRAME_SAMPLES)
    const [native] = await vad.run([freshItem(audio)])
    const [documented] = await viaPublic.run([freshItem(audio)])
    t.equal(maxAbsDiff(native?.probabilities ?? new Float32Array(), documented?.probabilities ?? new Float32Array()), 0, 'identical probabilities')
  })

  await t.test('runTask unpacks, runs and repacks', async t => {
    const a = speech.slice(0, 3 * VAD_FRAME_SAMPLES)
    const b = speech.slice(100 * VAD_FRAME_SAMPLES, 101 * VAD_FRAME_SAMPLES)
    const frames = new Float32Array(4 * VAD_FRAME_SAMPLES)
    frames.set(a, 0)
    frames.set(b, a.length)
    const result = await vad.runTask({
      steps: [3, 1],
      frames,
      contexts: new Float32Array(2 * VAD_CONTEXT_SAMPLES),
      states: new Float32Array(2 * VAD_STATE_SIZE)
    })
    const [ra, rb] = await vad.run([freshItem(a), freshItem(b)])
    const expected = new Float32Array(4)
    expected.set(ra?.probabilities ?? [], 0)
    expected.set(rb?.probabilities ?? [], 3)
    t.ok(maxAbsDiff(result.probabilities, expected) <= 1e-6)
    t.same(result.contexts.subarray(0, VAD_CONTEXT_SAMPLES), a.subarray(a.length - VAD_CONTEXT_SAMPLES))
    t.same(result.contexts.subarray(VAD_CONTEXT_SAMPLES), b.subarray(b.length - VAD_CONTEXT_SAMPLES))
    t.equal(result.states.buffer.byteLength, 2 * VAD_STATE_SIZE * 4, 'the result does not carry the frames buffer back')
    await t.rejects(vad.runTask({ steps: [2], frames, contexts: new Float32Array(VAD_CONTEXT_SAMPLES), states: new Float32Array(VAD_STATE_SIZE) }),
      RangeError, 'steps must account for every sample')
  })

  await t.test('the derived model gives upstream Silero v5 probabilities and states, frame by frame', async t => {
    // The reference: upstream's graph through onnxruntime's documented API, one frame per run,
    // as upstream's own wrapper feeds it (the 64 samples before each frame, sr 16000).
    const ort = await import('onnxruntime-node')
    const upstream = await ort.InferenceSession.create(sileroUpstreamModelPath())
    t.teardown(() => upstream.release())
    const sr = new ort.Tensor('int64', BigInt64Array.from([16000n]), [])
    const streams = [speech, noise(90 * VAD_FRAME_SAMPLES, 0.3, 11), speech.slice(30 * VAD_FRAME_SAMPLES)]
    const reference: Array<{ probabilities: Float32Array, state: Float32Array }> = []
    for (const audio of streams) {
      const frames = audio.length / VAD_FRAME_SAMPLES
      const probabilities = new Float32Array(frames)
      let state = new Float32Array(VAD_STATE_SIZE)
      const withContext = new Float32Array(VAD_CONTEXT_SAMPLES + audio.length)
      withContext.set(audio, VAD_CONTEXT_SAMPLES)
      for (let f = 0; f < frames; f++) {
        const input = withContext.slice(f * VAD_FRAME_SAMPLES, (f + 1) * VAD_FRAME_SAMPLES + VAD_CONTEXT_SAMPLES)
        const out = await upstream.run({
          input: new ort.Tensor('float32', input, [1, input.length]),
          state: new ort.Tensor('float32', state, [2, 1, 128]),
          sr
        })
        probabilities[f] = (out.output?.data as Float32Array)[0] as number
        state = Float32Array.from(out.stateN?.data as Float32Array)
      }
      reference.push({ probabilities, state })
    }
    t.ok(streams[0]!.length / VAD_FRAME_SAMPLES > 128, 'a stream longer than one run (64 frames) is among them')
    const items = streams.map(freshItem)
    const results = await vad.run(items)
    results.forEach((r, i) => {
      const expected = reference[i]!
      const probabilityDiff = maxAbsDiff(r.probabilities, expected.probabilities)
      t.ok(probabilityDiff <= 1e-5, `stream ${i}: probabilities within 1e-5 of upstream's (max difference ${probabilityDiff})`)
      const stateDiff = maxAbsDiff(items[i]!.state, expected.state)
      t.ok(stateDiff <= 1e-5, `stream ${i}: final state within 1e-5 of upstream's (max difference ${stateDiff})`)
    })
  })

  await t.test('rejects audio that is not whole frames', async t => {
    await t.rejects(vad.run([freshItem(new Float32Array(VAD_FRAME_SAMPLES + 1))]), RangeError)
  })
})

t.test('load rejects a model that is not Silero v5', async t => {
  // A valid ONNX model with the wrong inputs (as Silero v4's h and c would be).
  const path = join(t.testdir({ 'identity.onnx': Buffer.from(identityModel()) }), 'identity.onnx')
  await t.rejects(SileroVad.load(path), /no input named input, no input named state, no output named output, no output named stateN; not Silero VAD v5 in the sequence form/)
  // Upstream's own file, fed one frame per run, is not what run() feeds.
  await t.rejects(SileroVad.load(sileroUpstreamModelPath()), /an input named sr \(the upstream graph, not its sequence form\)/)
})

t.test('VadBatcher with one thread: requests that arrive while its task runs go out together when it frees up', async t => {
  const tasks: VadTask[] = []
  const release: Array<() => void> = []
  const run: VadTaskRunner = async (task) => {
    tasks.push(task)
    await new Promise<void>((resolve) => { release.push(resolve) })
    return { probabilities: new Float32Array(task.frames.length / VAD_FRAME_SAMPLES), contexts: task.contexts.slice(), states: task.states.slice() }
  }
  const batcher = new VadBatcher(run, { maxInFlight: 1 })
  const streams = [0, 1, 2, 3].map(() => batcher.createStream())
  const first = (streams[0] as VadStream).process(new Float32Array(VAD_FRAME_SAMPLES))
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(tasks.length, 1, 'an idle batcher sends at once')
  const rest = streams.slice(1).map(async (stream) => await stream.process(new Float32Array(2 * VAD_FRAME_SAMPLES)))
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(tasks.length, 1, 'nothing more is sent while the thread is busy')
  release.shift()?.()
  await first
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(tasks.length, 2, 'when it frees up, one task...')
  t.same(tasks[1]?.steps, [2, 2, 2], '...carries every request that waited')
  release.shift()?.()
  t.same((await Promise.all(rest)).map((p) => p.length), [2, 2, 2])
})

t.test('VadBatcher', async t => {
  // A runner that records tasks and answers with probabilities = stream index + step / 100 and
  // states filled with a marker, so state hand-back can be followed.
  function recordingRunner (): { run: VadTaskRunner, tasks: VadTask[] } {
    const tasks: VadTask[] = []
    const run: VadTaskRunner = async (task) => {
      tasks.push(task)
      const probabilities: number[] = []
      task.steps.forEach((n, i) => { for (let s = 0; s < n; s++) probabilities.push(i + s / 100) })
      const states = task.states.slice()
      for (let i = 0; i < task.steps.length; i++) states.fill(tasks.length, i * VAD_STATE_SIZE, (i + 1) * VAD_STATE_SIZE)
      return { probabilities: Float32Array.from(probabilities), contexts: task.contexts.slice(), states }
    }
    return { run, tasks }
  }

  await t.test('requests made in one tick go in one task; maxBatch splits them', async t => {
    const { run, tasks } = recordingRunner()
    const batcher = new VadBatcher(run, { maxBatch: 2 })
    const streams = [batcher.createStream(), batcher.createStream(), batcher.createStream()]
    const inputs = [1, 3, 2].map((k, i) => new Float32Array(k * VAD_FRAME_SAMPLES).fill(i + 1))
    const results = await Promise.all(streams.map((s, i) => s.process(inputs[i] as Float32Array)))
    t.equal(tasks.length, 2, 'two tasks for three streams with maxBatch 2')
    t.same(tasks.map(task => task.steps), [[1, 3], [2]])
    t.same(tasks[0]?.frames.subarray(0, VAD_FRAME_SAMPLES), inputs[0], 'frames packed in order')
    t.same(tasks[0]?.frames.subarray(VAD_FRAME_SAMPLES), inputs[1])
    t.ok(tasks[0]?.frames.buffer instanceof SharedArrayBuffer, 'one shared buffer: posted to the thread, not copied')
    t.equal(tasks[0]?.contexts.buffer, tasks[0]?.frames.buffer, 'frames, contexts, states and the room for probabilities share it')
    t.equal(tasks[0]?.states.buffer, tasks[0]?.frames.buffer)
    t.equal(tasks[0]?.probabilities?.buffer, tasks[0]?.frames.buffer)
    t.equal(tasks[0]?.probabilities?.length, 4, 'one probability per frame')
    t.not(tasks[1]?.frames.buffer, tasks[0]?.frames.buffer, 'tasks in flight together have buffers of their own')
    t.same(results.map(r => Array.from(r)), [[0], [1, 1.01, 1.02].map(Math.fround), [0, 0.01].map(Math.fround)])
    t.ok(inputs.every((a, i) => a.length > 0 && a[0] === i + 1), 'callers\' arrays are not detached')
    const buffers = new Set(tasks.map((task) => task.frames.buffer))
    const again = await streams[0]?.process(new Float32Array(VAD_FRAME_SAMPLES).fill(7))
    t.ok(buffers.has(tasks[2]?.frames.buffer as ArrayBufferLike), 'a buffer is reused once its results are read')
    t.equal(tasks[2]?.frames[0], 7, 'refilled with the new request')
    t.same(Array.from(again ?? []), [0])
    t.same(results.map(r => Array.from(r)), [[0], [1, 1.01, 1.02].map(Math.fround), [0, 0.01].map(Math.fround)], 'results already handed out are copies, unchanged by the reuse')
  })

  await t.test('with the real model, results written into the shared buffer equal fresh ones', async t => {
    const vad = await SileroVad.load()
    t.teardown(() => vad.close())
    const batcher = new VadBatcher(async (task) => await vad.runTask(task))
    const direct = new VadBatcher(async (task) => await vad.runTask({ ...task, probabilities: undefined }))
    const [a, b] = [batcher.createStream(), direct.createStream()]
    for (let at = 0; at < 40; at += 5) {
      const chunk = speech.subarray(at * VAD_FRAME_SAMPLES, (at + 5) * VAD_FRAME_SAMPLES)
      const [inPlace, fresh] = await Promise.all([a.process(chunk), b.process(chunk)])
      t.same(Array.from(inPlace), Array.from(fresh), `frames ${at}-${at + 4}`)
    }
  })

  await t.test('state goes back to the stream; reset clears it, even mid-flight', async t => {
    const { run, tasks } = recordingRunner()
    const batcher = new VadBatcher(run)
    const stream = batcher.createStream()
    const frame = new Float32Array(VAD_FRAME_SAMPLES).fill(0.5)
    await stream.process(frame)
    t.ok(tasks[0]?.states.every(x => x === 0), 'first call starts from zero state')
    t.ok(tasks[0]?.contexts.every(x => x === 0), 'and zero context')
    await stream.process(frame)
    t.ok(tasks[1]?.states.every(x => x === 1), 'second call carries the state the worker returned')
    stream.reset()
    await stream.process(frame)
    t.ok(tasks[2]?.states.every(x => x === 0), 'reset zeroes the state')
    const inFlight = stream.process(frame)
    stream.reset()
    await inFlight
    await stream.process(frame)
    t.ok(tasks[4]?.states.every(x => x === 0), 'a result arriving after reset does not restore the old state')
  })

  await t.test('a failed task rejects its requests and leaves the streams usable', async t => {
    let fail = true
    const { run: ok, tasks } = recordingRunner()
    const batcher = new VadBatcher(async (task) => {
      if (fail) throw new Error('worker died')
      return await ok(task)
    })
    const a = batcher.createStream()
    const b = batcher.createStream()
    const frame = new Float32Array(VAD_FRAME_SAMPLES)
    const results = await Promise.allSettled([a.process(frame), b.process(frame)])
    t.same(results.map(r => r.status), ['rejected', 'rejected'])
    fail = false
    t.same(Array.from(await a.process(frame)), [0])
    t.ok(tasks[0]?.states.every(x => x === 0), 'state unchanged by the failed task')
  })

  await t.test('a runner that throws synchronously rejects too', async t => {
    const batcher = new VadBatcher(() => { throw new Error('pool closed') })
    await t.rejects(batcher.createStream().process(new Float32Array(VAD_FRAME_SAMPLES)), /pool closed/)
  })

  await t.test('misuse is rejected', async t => {
    const { run } = recordingRunner()
    const stream = new VadBatcher(run).createStream()
    await t.rejects(stream.process(new Float32Array(0)), RangeError)
    await t.rejects(stream.process(new Float32Array(VAD_FRAME_SAMPLES + 3)), RangeError)
    const first = stream.process(new Float32Array(VAD_FRAME_SAMPLES))
    await t.rejects(stream.process(new Float32Array(VAD_FRAME_SAMPLES)), /previous call/)
    await first
    t.throws(() => new VadBatcher(run, { maxBatch: 0 }), RangeError)
  })

  await t.test('with the real model, chunking and batching do not change the probabilities', async t => {
    const vad = await SileroVad.load()
    t.teardown(() => vad.close())
    const run: VadTaskRunner = async (task): Promise<VadResult> => await vad.runTask(task)
    const frames = speech.length / VAD_FRAME_SAMPLES
    const [alone] = await vad.run([freshItem(speech)])
    const batcher = new VadBatcher(run)
    // Three streams of the same audio, fed in different chunk sizes, concurrently.
    const chunkings = [1, 4, 13]
    const outputs = await Promise.all(chunkings.map(async chunk => {
      const stream = batcher.createStream()
      const out = new Float32Array(frames)
      for (let f = 0; f < frames; f += chunk) {
        const n = Math.min(chunk, frames - f)
        out.set(await stream.process(speech.subarray(f * VAD_FRAME_SAMPLES, (f + n) * VAD_FRAME_SAMPLES)), f)
      }
      return out
    }))
    outputs.forEach((out, i) => {
      t.ok(maxAbsDiff(out, alone?.probabilities ?? new Float32Array()) <= 1e-6, `chunks of ${chunkings[i]} frames`)
    })
  })
})
