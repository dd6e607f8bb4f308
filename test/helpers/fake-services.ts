import type { LimitsConfig, VadConfig } from '../../schemas/config.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import type { InferFn, SessionServices, VadStreamLike } from '../../src/core/services.ts'
import { InferenceError } from '../../src/inference/model-pool.ts'

export const TEST_VAD: VadConfig = { threshold: 0.5, min_silence_ms: 300, speech_pad_ms: 30, threads: 1 }
export const TEST_LIMITS: LimitsConfig = {
  max_channels: 8,
  max_sessions: 500,
  max_frame_bytes: 1 << 20,
  max_upload_bytes: 1 << 30,
  max_utterance_seconds: 30,
  interim_interval_ms: 500,
  simple_max_in_flight: 2,
  simple_max_chunk_seconds: 30,
  idle_timeout_seconds: 15,
  max_stream_seconds: 14400,
  max_buffered_seconds: 10,
  max_outbound_bytes: 1 << 20,
  ping_interval_seconds: 20,
  max_sessions_per_ip: 0,
  max_sessions_per_key: 0,
  max_streams_per_connection: 100
}

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// Answers after a random short delay so results complete out of order.
export function fastModel (): InferFn {
  return async (audio) => {
    await tick(Math.random() * 5)
    return { count: audio.length }
  }
}

// Every `every`-th call fails as a model error (or, with crash, as a crashed worker).
export function flakyModel (every: number, kind: 'inference_failed' | 'internal' = 'inference_failed'): InferFn {
  let calls = 0
  return async (audio) => {
    await tick(Math.random() * 5)
    calls++
    if (calls % every === 0) throw new InferenceError(kind, kind === 'internal' ? 'worker exited' : 'dummy failure')
    return { count: audio.length }
  }
}

// Stands in for Silero in core tests: a frame is speech when its RMS is above 0.05.
export function energyVad (): VadStreamLike {
  return {
    async process (frames: Float32Array): Promise<Float32Array> {
      await tick(1)
      const out = new Float32Array(frames.length / 512)
      for (let f = 0; f < out.length; f++) {
        let sum = 0
        for (let i = f * 512; i < (f + 1) * 512; i++) sum += (frames[i] as number) ** 2
        out[f] = Math.sqrt(sum / 512) > 0.05 ? 0.95 : 0.02
      }
      return out
    }
  }
}

export function fakeServices (infer: InferFn, limits: Partial<LimitsConfig> = {}): SessionServices {
  return { infer, createVadStream: energyVad, vad: TEST_VAD, limits: { ...TEST_LIMITS, ...limits } }
}

export function collector (): { events: StreamEvent[], emit: (event: StreamEvent) => void } {
  const events: StreamEvent[] = []
  return { events, emit: (event) => { events.push(event) } }
}
