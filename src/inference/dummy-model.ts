// The Rust original's dummy model: it "infers" by blocking its thread for
//   (seconds of audio * constant_factor + delay +- jitter) seconds, never less than zero,
// the first call of each instance warmup_penalty times longer, then fails or crashes at the
// configured rates. It stands in for a slow, blocking, sometimes unreliable real model, so it
// blocks with Atomics.wait rather than awaiting a timer: a timer would leave its thread free.
import { isMainThread } from 'node:worker_threads'
import { Value } from '@sinclair/typebox/value'
import { DummyModelOptions } from '../../schemas/config.ts'
import { MODEL_SAMPLE_RATE } from '../../schemas/audio-format.ts'
import type { CreateModel, Model, ModelOutput } from './model.ts'

export interface DummyModelHooks {
  // Both replaceable so a test can check the planned sleep without timing anything.
  sleep?: (seconds: number) => void
  random?: () => number // uniform in [0, 1)
}

const knownOptions = new Set(Object.keys(DummyModelOptions.properties))

// config.json's model.options -> complete dummy options (schema defaults filled in). Throws a
// message naming the offending field, so a typo fails server start-up instead of being ignored.
export function parseDummyOptions (options: Record<string, unknown>): DummyModelOptions {
  for (const key of Object.keys(options)) {
    if (!knownOptions.has(key)) {
      throw new Error(`dummy model: unknown option "${key}" (known: ${[...knownOptions].join(', ')})`)
    }
  }
  const withDefaults = Value.Default(DummyModelOptions, Value.Clone(options))
  const error = Value.Errors(DummyModelOptions, withDefaults).First()
  if (error !== undefined) {
    const field = error.path.replace(/^\//, '')
    throw new Error(`dummy model: option "${field}" ${error.message} (got ${JSON.stringify(error.value)})`)
  }
  return withDefaults as DummyModelOptions
}

// One Int32 nobody ever notifies: Atomics.wait on it is a plain blocking sleep.
const sleepCell = new Int32Array(new SharedArrayBuffer(4))
export function blockingSleep (seconds: number): void {
  if (seconds > 0) Atomics.wait(sleepCell, 0, 0, seconds * 1000)
}

export class DummyModel implements Model {
  readonly options: DummyModelOptions
  readonly #sleep: (seconds: number) => void
  readonly #random: () => number
  #calls = 0

  constructor (options: DummyModelOptions, hooks: DummyModelHooks = {}) {
    this.options = options
    this.#sleep = hooks.sleep ?? blockingSleep
    this.#random = hooks.random ?? Math.random
  }

  infer (audio: Float32Array): ModelOutput {
    const o = this.options
    const audioSeconds = audio.length / MODEL_SAMPLE_RATE
    const jitter = (this.#random() * 2 - 1) * o.jitter
    let seconds = Math.max(0, audioSeconds * o.constant_factor + o.delay + jitter)
    if (this.#calls === 0) seconds *= o.warmup_penalty
    this.#calls++
    this.#sleep(seconds)

    if (this.#random() < o.panic_rate) panic()
    if (this.#random() < o.failure_rate) {
      throw new Error(`dummy model failure (failure_rate ${o.failure_rate})`)
    }
    return { count: audio.length }
  }
}

// A crash, as Piscina sees one: the worker thread exits and is replaced; its task rejects.
// process.exit in a worker thread ends only that thread. On the main thread (a unit test
// calling the model directly) it would end the whole process, so there it throws instead.
function panic (): never {
  if (isMainThread) throw new Error('dummy model panic (not in a worker thread, so not exiting)')
  process.exit(1)
}

export const createModel: CreateModel = (options) => new DummyModel(parseDummyOptions(options))
