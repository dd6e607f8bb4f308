import type { AudioFormat } from '../../schemas/audio-format.ts'
import type { LimitsConfig, VadConfig } from '../../schemas/config.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import type { Mode, Transport } from '../../schemas/messages.ts'
import type { VadProcessOptions } from '../audio/vad-batcher.ts'
import type { ModelOutput } from '../inference/model.ts'
import type { InferenceTiming, InferOptions } from '../inference/model-pool.ts'

// What a session needs from the world, as plain functions: the streamer core wires in the real
// worker pools; unit tests wire in fast, flaky or crashing fakes.
export type InferFn = (audio: Float32Array, options?: InferOptions) => Promise<ModelOutput>

export interface VadStreamLike {
  // k*512 samples of 16 kHz audio -> k speech probabilities; calls on one stream are sequential.
  // options.urgent: the caller waits on these frames (never held for a shared run).
  process (frames: Float32Array, options?: VadProcessOptions): Promise<Float32Array>
}

export interface SessionServices {
  infer: InferFn
  createVadStream: () => VadStreamLike
  vad: VadConfig
  limits: LimitsConfig
  observer?: StageObserver
}

// Hooks for metrics and traces; the core calls them and never knows who listens.
export type Stage = 'decode' | 'vad' | 'model'

export interface StageObserver {
  // `stage` is 'decode' (decode + resample), 'vad' or 'model'; seconds of audio processed and
  // seconds of wall time it took.
  stage (stage: Stage, audioSeconds: number, wallSeconds: number): void
  // Audio bytes a transport handed to a streaming session, before decoding (any length: a
  // frame may be split across calls).
  received? (bytes: number): void
}

// How one inference of a session ended, as the session's observer sees it. 'aborted': the
// session was aborted while it waited or ran.
export type InferenceOutcome = InferenceTiming['outcome']

// One session's observer: stage timings plus the session's inferences, events and end.
export interface SessionObserver extends StageObserver {
  // One inference ended; `startedAt`/`endedAt` are performance.now() milliseconds and include
  // the time the inference waited for a model thread.
  inference? (audioSeconds: number, startedAt: number, endedAt: number, outcome: InferenceOutcome): void
  // Every event the session emits to its transport, in order.
  event (event: StreamEvent): void
  // A fault inside the session's pipeline that the session survived (told to the client as an
  // `internal` error event where it concerned one segment): for the logs.
  fault? (error: unknown): void
  // The session ended (its `end` was emitted) or was aborted; nothing is observed after this.
  closed (state: 'ended' | 'aborted'): void
}

export interface SessionInfo {
  id: string
  transport: Transport
  mode: Mode
  format: AudioFormat
  // The W3C traceparent the client's start request carried (start.traceId), if any.
  traceparent: string | undefined
}

// What the streamer tells about every session it opens, whatever the transport: metrics,
// traces and logs hang here so no transport needs to know about them.
export interface StreamerObserver {
  openSession (info: SessionInfo): SessionObserver
  // Every model inference that reached a thread: the wait for a free thread and the run itself.
  modelTask? (waitSeconds: number, runSeconds: number): void
}
