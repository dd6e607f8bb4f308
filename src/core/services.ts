import type { LimitsConfig, VadConfig } from '../../schemas/config.ts'
import type { ModelOutput } from '../inference/model.ts'

// What a session needs from the world, as plain functions: the streamer core wires in the real
// worker pools; unit tests wire in fast, flaky or crashing fakes.
export type InferFn = (audio: Float32Array, signal?: AbortSignal) => Promise<ModelOutput>

export interface VadStreamLike {
  // k*512 samples of 16 kHz audio -> k speech probabilities; calls on one stream are sequential.
  process (frames: Float32Array): Promise<Float32Array>
}

export interface SessionServices {
  infer: InferFn
  createVadStream: () => VadStreamLike
  vad: VadConfig
  limits: LimitsConfig
  observer?: StageObserver
}

// Hooks for metrics and traces; the core calls them and never knows who listens.
export interface StageObserver {
  // `stage` is 'decode' (decode + resample), 'vad' or 'model'; seconds of audio processed and
  // seconds of wall time it took.
  stage (stage: 'decode' | 'vad' | 'model', audioSeconds: number, wallSeconds: number): void
}
