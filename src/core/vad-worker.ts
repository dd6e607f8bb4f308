// A Piscina worker: one Silero session per thread, loaded when the thread starts. The default
// export is a promise of the task function that settles only once the load has (Piscina awaits
// it in the thread before the thread takes a task, and does not even count a replacement thread
// as ready before then), so every thread, a replacement of a crashed one too, has its model
// loaded before it runs a batch, and the pool can tell a thread still loading from a ready one
// (it must not terminate one mid-load: see TaskPool.close).
// It runs batches packed by VadBatcher, and start-up's check (VadPool). It must not import
// piscina (only src/inference does).
import { arriveAndWait, type ThreadCheck } from '../inference/thread-check.ts'
import { SileroVad, type VadResult, type VadTask } from '../audio/silero-vad.ts'

export type VadWorkerTask = VadTask | ThreadCheck
// A check's answer: `loadError` when this thread could not load the model.
export interface VadThreadLoaded { loaded: true, loadError?: string }
export type VadWorkerResult = VadResult | VadThreadLoaded

async function start (): Promise<(task: VadWorkerTask) => Promise<VadWorkerResult>> {
  let vad: SileroVad | undefined
  let loadError: Error | undefined
  try {
    vad = await SileroVad.load()
  } catch (error) {
    // Kept, not thrown: a thread whose default export rejects leaves later tasks hanging
    // (TaskPool), so every task rejects with this instead, and the check reports it.
    loadError = error instanceof Error ? error : new Error(String(error))
  }
  return async function runVad (task: VadWorkerTask): Promise<VadWorkerResult> {
    if ('barrier' in task) {
      arriveAndWait(task)
      return loadError === undefined ? { loaded: true } : { loaded: true, loadError: loadError.message }
    }
    if (vad === undefined) throw loadError ?? new Error('VAD model not loaded')
    return await vad.runTask(task)
  }
}

export default start()
