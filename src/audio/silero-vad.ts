import { fileURLToPath } from 'node:url'
import type * as Ort from 'onnxruntime-node'

// Silero VAD v5 at 16 kHz: each 512-sample (32 ms) frame is fed together with the 64 samples
// that precede it (576 inputs); the LSTM state is [2, B, 128]. These are the model's own numbers.
export const VAD_SAMPLE_RATE = 16000
export const VAD_FRAME_SAMPLES = 512
export const VAD_CONTEXT_SAMPLES = 64
export const VAD_STATE_SIZE = 2 * 128
const STATE_HALF = 128
const INPUT_SAMPLES = VAD_CONTEXT_SAMPLES + VAD_FRAME_SAMPLES

/** One stream's share of a run: `frames` holds steps * 512 samples of 16 kHz mono audio. */
export interface VadItem {
  frames: Float32Array
  /** The 64 samples before `frames`; updated in place to the last 64 samples of `frames`. */
  context: Float32Array
  /** LSTM state, [2][128] for this stream; updated in place. */
  state: Float32Array
}

export interface VadItemResult {
  /** One speech probability per frame, in [0, 1]. */
  probabilities: Float32Array
  context: Float32Array
  state: Float32Array
}

/**
 * A worker task: several streams packed into flat arrays so the caller can transfer one buffer.
 * Item i has steps[i] frames; its frames follow those of items 0..i-1 in `frames`, its context is
 * contexts[i*64, (i+1)*64) and its state states[i*256, (i+1)*256).
 */
export interface VadTask {
  steps: number[]
  frames: Float32Array
  contexts: Float32Array
  states: Float32Array
  /**
   * Where to write the probabilities (one per frame, in the task's order), if given: with a
   * SharedArrayBuffer behind the task (VadBatcher) the results then go back in the same buffer,
   * and the contexts and states, updated in place, with them.
   */
  probabilities?: Float32Array
}

/** Probabilities of all items, concatenated in the task's order; contexts and states updated. */
export interface VadResult {
  probabilities: Float32Array
  contexts: Float32Array
  states: Float32Array
}

/**
 * Path of the model SileroVad runs: Silero v5's 16 kHz graph reshaped to take many frames of a
 * stream in one run (scripts/derive-silero-sequence.py says how and why; same weights, MIT
 * licence in models/LICENSE).
 */
export function sileroModelPath (): string {
  return fileURLToPath(new URL('./models/silero_vad_v5_sequence.onnx', import.meta.url))
}

/** Path of the upstream Silero v5 model, unchanged: the source of the derived one, and what tests compare it with. */
export function sileroUpstreamModelPath (): string {
  return fileURLToPath(new URL('./models/silero_vad_v5.onnx', import.meta.url))
}

// One ONNX session, as SileroVad uses it: run the feeds, get the outputs by name.
interface VadSession {
  /** True when `run` runs at once in the calling thread (see nativeSession). */
  readonly synchronous: boolean
  readonly inputNames: readonly string[]
  readonly outputNames: readonly string[]
  run: (feeds: Record<string, Ort.Tensor>) => Record<string, { data: unknown }> | Promise<Record<string, { data: unknown }>>
  release: () => void | Promise<void>
}

// One thread per session: parallelism comes from the pool's threads, and batching streams into
// one run is cheaper than splitting one small run across cores.
const SESSION_OPTIONS: Ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' }
const FETCHES = { output: null, stateN: null }

// The binding onnxruntime-node's own InferenceSession wraps (dist/binding.d.ts: "a simple
// synchronized inference session object wrap"). The public session.run defers every run to a
// setImmediate and back through a promise; a VAD thread runs thousands of tiny runs a second,
// and on this project's 2-core VM that hop was a quarter of each: Silero at batch 1 took 129 us
// per run through session.run and 98 us through the binding (batch 2: 163 and 137 us). The
// binding is not the package's documented API, so its shape is checked, and if a later version
// changes it the public session is used instead (SileroVad.synchronous says which runs;
// test/unit/silero-vad.test.ts checks the installed version takes the fast path).
interface NativeSession {
  loadModel: (path: string, options: Ort.InferenceSession.SessionOptions) => void
  readonly inputMetadata: ReadonlyArray<{ name: string }>
  readonly outputMetadata: ReadonlyArray<{ name: string }>
  run: (feeds: Record<string, Ort.Tensor>, fetches: Record<string, null>, options: Record<string, never>) => Record<string, { data: unknown }>
  dispose: () => void
}
interface NativeBinding {
  binding?: { InferenceSession?: new () => NativeSession }
  initOrt?: () => void
}

async function nativeSession (path: string): Promise<VadSession | null> {
  let module: NativeBinding
  try {
    // A CommonJS module: its exports come as the default export.
    module = ((await import('onnxruntime-node/dist/binding.js')) as { default: NativeBinding }).default
  } catch {
    return null
  }
  const Session = module.binding?.InferenceSession
  if (typeof Session !== 'function' || typeof module.initOrt !== 'function') return null
  module.initOrt()
  const native = new Session()
  if (typeof native.loadModel !== 'function' || typeof native.run !== 'function' || typeof native.dispose !== 'function') return null
  native.loadModel(path, SESSION_OPTIONS)
  return {
    synchronous: true,
    inputNames: native.inputMetadata.map((m) => m.name),
    outputNames: native.outputMetadata.map((m) => m.name),
    run: (feeds) => native.run(feeds, FETCHES, {}),
    release: () => { native.dispose() }
  }
}

async function publicSession (ort: typeof Ort, path: string): Promise<VadSession> {
  const session = await ort.InferenceSession.create(path, SESSION_OPTIONS)
  return {
    synchronous: false,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    run: async (feeds) => await session.run(feeds),
    release: async () => { await session.release() }
  }
}

// One run shape's inputs (see SileroVad.#feedsFor).
interface Feeds { input: Float32Array, state: Float32Array, feeds: Record<string, Ort.Tensor> }

// Most frames per stream in one run: a longer request runs as several, the state carried between
// them, so the input buffer stays bounded whatever a request holds (2.3 KiB a frame: 4.5 MiB at
// the pool's 2,048-frame task cap, 9 MiB at most for 64 streams of 64 frames, per VAD thread).
const MAX_RUN_STEPS = 64
// Run shapes whose tensors are kept for reuse; live streams use a handful (batch x 1-3 frames).
const MAX_CACHED_SHAPES = 64

/**
 * One ONNX session. `run` blocks the calling thread (~0.1-0.2 ms per frame), so outside tests it
 * lives in a worker thread (src/core/vad-worker.ts), one session per thread.
 */
export class SileroVad {
  readonly #ort: typeof Ort
  readonly #session: VadSession
  #input = new Float32Array(0)
  #state = new Float32Array(0)
  readonly #feeds = new Map<string, Feeds>()

  private constructor (ort: typeof Ort, session: VadSession) {
    this.#ort = ort
    this.#session = session
  }

  // The input arrays and tensors of a run of b streams by t frames, refilled every run (every
  // value is written: a run reads them while it runs and keeps nothing). The arrays are views of
  // two buffers sized for the largest run so far, so a run shape seen before costs nothing new.
  #feedsFor (b: number, t: number): Feeds {
    // A grown buffer leaves the cached tensors viewing the old one: they go.
    if (b * t * INPUT_SAMPLES > this.#input.length) {
      this.#input = new Float32Array(b * t * INPUT_SAMPLES)
      this.#feeds.clear()
    }
    if (2 * b * STATE_HALF > this.#state.length) {
      this.#state = new Float32Array(2 * b * STATE_HALF)
      this.#feeds.clear()
    }
    const key = `${b}x${t}`
    let entry = this.#feeds.get(key)
    if (entry === undefined) {
      if (this.#feeds.size >= MAX_CACHED_SHAPES) this.#feeds.clear()
      const input = this.#input.subarray(0, b * t * INPUT_SAMPLES)
      const state = this.#state.subarray(0, 2 * b * STATE_HALF)
      const feeds = {
        input: new this.#ort.Tensor('float32', input, [b, t, INPUT_SAMPLES]),
        state: new this.#ort.Tensor('float32', state, [2, b, STATE_HALF])
      }
      entry = { input, state, feeds }
      this.#feeds.set(key, entry)
    }
    return entry
  }

  /** Whether runs go straight to the native session (see nativeSession) or through session.run. */
  get synchronous (): boolean { return this.#session.synchronous }

  /** `options.api: 'public'` forces onnxruntime-node's documented session (for a test of that path). */
  static async load (path: string = sileroModelPath(), options: { api?: 'native' | 'public' } = {}): Promise<SileroVad> {
    // Imported here, not at the top: the main thread imports this module for its constants and
    // types (vad-batcher.ts, vad-segmenter.ts) and should not load the native runtime for them.
    const ort = await import('onnxruntime-node')
    const session = (options.api === 'public' ? null : await nativeSession(path)) ?? await publicSession(ort, path)
    const problems = [
      ...['input', 'state'].filter(name => !session.inputNames.includes(name)).map(name => `no input named ${name}`),
      // Upstream's graph has these names too, and sr besides: one frame per run, which run() does not feed.
      ...(session.inputNames.includes('sr') ? ['an input named sr (the upstream graph, not its sequence form)'] : []),
      ...['output', 'stateN'].filter(name => !session.outputNames.includes(name)).map(name => `no output named ${name}`)
    ]
    if (problems.length > 0) {
      await session.release()
      throw new Error(`${path}: ${problems.join(', ')}; not Silero VAD v5 in the sequence form of scripts/derive-silero-sequence.py`)
    }
    return new SileroVad(ort, session)
  }

  /**
   * Runs all items: items with the same number of frames share runs of [streams, frames] (the
   * model runs one stream's frames in order inside one run), so a task costs one run per distinct
   * frame count (live streams send 1-3 frames each: a few runs), not one per frame. Contexts and
   * states are updated in place (and returned).
   */
  async run (items: VadItem[]): Promise<VadItemResult[]> {
    const byLength = new Map<number, number[]>()
    items.forEach((item, i) => {
      if (item.frames.length % VAD_FRAME_SAMPLES !== 0) {
        throw new RangeError(`item ${i}: ${item.frames.length} samples is not a whole number of ${VAD_FRAME_SAMPLES}-sample frames`)
      }
      if (item.context.length !== VAD_CONTEXT_SAMPLES) throw new RangeError(`item ${i}: context must have ${VAD_CONTEXT_SAMPLES} samples`)
      if (item.state.length !== VAD_STATE_SIZE) throw new RangeError(`item ${i}: state must have ${VAD_STATE_SIZE} values`)
      const steps = item.frames.length / VAD_FRAME_SAMPLES
      if (steps === 0) return
      const group = byLength.get(steps)
      if (group === undefined) byLength.set(steps, [i])
      else group.push(i)
    })
    const probabilities = items.map(item => new Float32Array(item.frames.length / VAD_FRAME_SAMPLES))
    for (const [steps, group] of byLength) {
      for (let first = 0; first < steps; first += MAX_RUN_STEPS) {
        await this.#runSteps(items, group, first, Math.min(MAX_RUN_STEPS, steps - first), probabilities)
      }
    }
    return items.map((item, i) => ({ probabilities: probabilities[i] as Float32Array, context: item.context, state: item.state }))
  }

  // One run: frames [first, first + t) of each item in `group`.
  async #runSteps (items: VadItem[], group: number[], first: number, t: number, probabilities: Float32Array[]): Promise<void> {
    const b = group.length
    const { input, state, feeds } = this.#feedsFor(b, t)
    group.forEach((i, row) => {
      const item = items[i] as VadItem
      // Each frame goes in with the 64 samples before it: the stream's context for its first
      // frame, the end of the previous frame after that.
      for (let step = 0; step < t; step++) {
        const at = (row * t + step) * INPUT_SAMPLES
        const start = (first + step) * VAD_FRAME_SAMPLES
        if (start === 0) {
          input.set(item.context, at)
          input.set(item.frames.subarray(0, VAD_FRAME_SAMPLES), at + VAD_CONTEXT_SAMPLES)
        } else {
          input.set(item.frames.subarray(start - VAD_CONTEXT_SAMPLES, start + VAD_FRAME_SAMPLES), at)
        }
      }
      // Per stream the state is [2][128]; batched it is [2][B][128].
      state.set(item.state.subarray(0, STATE_HALF), row * STATE_HALF)
      state.set(item.state.subarray(STATE_HALF), (b + row) * STATE_HALF)
    })
    const out = await this.#session.run(feeds)
    const output = out.output?.data as Float32Array
    const stateN = out.stateN?.data as Float32Array
    group.forEach((i, row) => {
      const item = items[i] as VadItem
      ;(probabilities[i] as Float32Array).set(output.subarray(row * t, (row + 1) * t), first)
      item.state.set(stateN.subarray(row * STATE_HALF, (row + 1) * STATE_HALF), 0)
      item.state.set(stateN.subarray((b + row) * STATE_HALF, (b + row + 1) * STATE_HALF), STATE_HALF)
      const end = (first + t) * VAD_FRAME_SAMPLES
      item.context.set(item.frames.subarray(end - VAD_CONTEXT_SAMPLES, end))
    })
  }

  /**
   * Runs a packed task (see VadTask). With task.probabilities the results are written into the
   * task's own arrays and returned as those views (a shared buffer goes back without a copy);
   * without, the result's arrays are fresh and compact (the task's contexts and states may be
   * views into one big buffer that also holds the frames; returning those views from a worker
   * would copy the whole buffer back).
   */
  async runTask (task: VadTask): Promise<VadResult> {
    const items: VadItem[] = []
    let offset = 0
    task.steps.forEach((n, i) => {
      items.push({
        frames: task.frames.subarray(offset, offset + n * VAD_FRAME_SAMPLES),
        context: task.contexts.subarray(i * VAD_CONTEXT_SAMPLES, (i + 1) * VAD_CONTEXT_SAMPLES),
        state: task.states.subarray(i * VAD_STATE_SIZE, (i + 1) * VAD_STATE_SIZE)
      })
      offset += n * VAD_FRAME_SAMPLES
    })
    if (offset !== task.frames.length) throw new RangeError(`task has ${task.frames.length} samples, steps say ${offset}`)
    const results = await this.run(items)
    const inPlace = task.probabilities !== undefined
    const probabilities = task.probabilities ?? new Float32Array(offset / VAD_FRAME_SAMPLES)
    if (probabilities.length !== offset / VAD_FRAME_SAMPLES) throw new RangeError(`task has room for ${probabilities.length} probabilities, steps say ${offset / VAD_FRAME_SAMPLES}`)
    let at = 0
    for (const r of results) {
      probabilities.set(r.probabilities, at)
      at += r.probabilities.length
    }
    return inPlace
      ? { probabilities, contexts: task.contexts, states: task.states }
      : { probabilities, contexts: task.contexts.slice(), states: task.states.slice() }
  }

  async close (): Promise<void> {
    await this.#session.release()
  }
}
