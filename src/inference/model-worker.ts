// A Piscina worker (see TaskPool): each thread imports the configured model module, calls its
// createModel once and runs one warm-up inference, then runs tasks one at a time. The default
// export is a promise of the task function, and no task runs on a thread before that promise
// settles (Piscina awaits it in the thread, and does not even send a task to a replacement
// thread before then): so every thread, a replacement of a terminated or crashed one too, is
// loaded and warm before it takes work.
// A load failure is caught and kept: every task then rejects with it, so start-up's check
// reports a clear message instead of a crashed thread (which would leave later tasks hanging).
import { threadId, workerData } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import type { Model, ModelOutput } from './model.ts'
import { arriveAndWait, type ThreadCheck } from './thread-check.ts'

export interface ModelWorkerData {
  module: string // absolute file: URL of the model module
  options: Record<string, unknown> // passed to createModel as is
}

export type ModelTask =
  // Start-up's check of one thread (TaskPool.checkEveryThread): it answers once loaded and warm.
  | ({ kind: 'check' } & ThreadCheck)
  | { kind: 'infer', audio: Float32Array } // 16 kHz mono

export type ModelTaskResult =
  // `failure`: the model threw during warm-up (the thread is warm anyway); `loadError`: this
  // thread could not load the model (start-up fails).
  | { kind: 'warm', threadId: number, failure?: string, loadError?: string }
  | { kind: 'output', output: ModelOutput }
  // The model threw: an error for this one segment; the thread is fine.
  | { kind: 'failure', message: string }

const WARMUP_SAMPLES = 16000 // 1 s at 16 kHz

function messageOf (error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

async function loadModel (data: ModelWorkerData): Promise<Model> {
  const where = data.module.startsWith('file:') ? fileURLToPath(data.module) : data.module
  let module: Record<string, unknown>
  try {
    module = await import(data.module)
  } catch (error) {
    throw new Error(`model module ${where} failed to load: ${messageOf(error)}`, { cause: error })
  }
  // Named `createModel`, or a default export that is the function (ESM) or holds it (CommonJS).
  const fallback = module.default as { createModel?: unknown } | undefined
  const create = module.createModel ?? (typeof fallback === 'function' ? fallback : fallback?.createModel)
  if (typeof create !== 'function') {
    throw new Error(`model module ${where} exports no createModel function (named or default)`)
  }
  let model: unknown
  try {
    model = await create(data.options)
  } catch (error) {
    throw new Error(`model module ${where}: createModel failed: ${messageOf(error)}`, { cause: error })
  }
  if (typeof (model as Partial<Model> | null)?.infer !== 'function') {
    throw new Error(`model module ${where}: createModel returned no object with an infer method`)
  }
  return model as Model
}

async function start (): Promise<(task: ModelTask) => Promise<ModelTaskResult>> {
  let model: Model | undefined
  let loadError: Error | undefined
  try {
    model = await loadModel(workerData as ModelWorkerData)
  } catch (error) {
    loadError = error instanceof Error ? error : new Error(String(error))
  }
  // One inference on 1 s of silence pays the model's first-call cost (JIT, lazy allocation)
  // here, before Piscina counts the thread as ready, so no real inference meets a cold model.
  // A model that throws here is still warm; one that crashes ends this thread (see ModelPool).
  let warmupFailure: string | undefined
  if (model !== undefined) {
    try {
      await model.infer(new Float32Array(WARMUP_SAMPLES))
    } catch (error) {
      warmupFailure = messageOf(error)
    }
  }

  return async function runTask (task: ModelTask): Promise<ModelTaskResult> {
    if (model === undefined) {
      const message = loadError?.message ?? 'model not loaded'
      if (task.kind !== 'check') throw new Error(message, { cause: loadError })
      // Still arrive, so the threads that did load are not held at the barrier.
      arriveAndWait(task)
      return { kind: 'warm', threadId, loadError: message }
    }
    switch (task.kind) {
      case 'check':
        arriveAndWait(task)
        return warmupFailure === undefined ? { kind: 'warm', threadId } : { kind: 'warm', threadId, failure: warmupFailure }
      case 'infer': {
        let output: ModelOutput
        try {
          output = await model.infer(task.audio)
        } catch (error) {
          return { kind: 'failure', message: messageOf(error) }
        }
        // Not a model error but a broken model: the task rejects and the pool calls it internal.
        if (output === null || typeof output !== 'object' || Array.isArray(output)) {
          throw new Error(`model returned ${Array.isArray(output) ? 'an array' : typeof output}, not an object`)
        }
        return { kind: 'output', output }
      }
    }
  }
}

export default start()
