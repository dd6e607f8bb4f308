// A Piscina worker: one Silero session per thread, loaded once when the module is first imported
// (Piscina imports it when the thread starts, so the first task does not pay for the load alone).
// It runs batches packed by VadBatcher; it must not import piscina (only src/inference does).
import { SileroVad, type VadResult, type VadTask } from './silero-vad.ts'

const vad = SileroVad.load()
// A load failure surfaces on the first task; keep it from also being an unhandled rejection.
vad.catch(() => {})

export default async function runVad (task: VadTask): Promise<VadResult> {
  return await (await vad).runTask(task)
}
