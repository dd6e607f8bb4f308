import type { StreamEvent } from '../../schemas/events.ts'
import type { SessionServices } from './services.ts'

// One channel's model work: fed 16 kHz samples in stream order, it emits that channel's events.
export interface ChannelRunner {
  // `samples` is valid only during the call (the session reuses its decoder's arrays): copy what is kept.
  push (samples: Float32Array): void
  // No more audio: resolves once every result for the audio pushed has been emitted.
  finish (): Promise<void>
  // Mid-stream: finalise what is open for the audio pushed so far, without ending the stream;
  // resolves once every result for that audio has been emitted. Audio pushed later goes on
  // seamlessly (same sample timeline) and is never part of a result this call waits for.
  finalize (): Promise<void>
  // The client is gone: stop work, emit nothing more.
  abort (): void
  // 16 kHz samples received that are not through the VAD and the model yet: what flow control
  // bounds (limits.max_buffered_seconds).
  readonly heldSamples: number
}

export interface RunnerOptions {
  channel: number
  services: SessionServices
  interimResults: boolean
  emit: (event: StreamEvent) => void
  signal: AbortSignal
  // A fault the client is told of only as `internal`; the details go to the log.
  onFault?: (error: unknown) => void
  // The stream holds more than half of what it may: skip optional work (interim results).
  underPressure?: () => boolean
}
