import type { ErrorEvent, SegmentEvent } from '../../schemas/events.ts'
import type { ModelOutput } from '../inference/model.ts'
import { InferenceError } from '../inference/model-pool.ts'
import { MODEL_SAMPLE_RATE } from '../../schemas/audio-format.ts'

export interface SegmentSpan {
  channel: number
  startSample: number // 16 kHz sample index from the start of the stream
  endSample: number
  isFinal?: boolean // undefined in simple mode, where the field is absent
}

const seconds = (sample: number): number => sample / MODEL_SAMPLE_RATE

// The model's output, flattened into a segment event; fields the protocol owns always win
// over model fields of the same name.
export function segmentEvent (span: SegmentSpan, output: ModelOutput): SegmentEvent {
  const event: SegmentEvent = {
    ...output,
    type: 'segment',
    channel: span.channel,
    start_time: seconds(span.startSample),
    end_time: seconds(span.endSample)
  }
  if (span.isFinal !== undefined) event.is_final = span.isFinal
  return event
}

// A failed inference becomes one error event for that span. The model's own message is shown
// only for a model error, and the pool's for a deadline (it names the setting, nothing more);
// anything else (a crashed worker) is an opaque internal error, whose cause goes to `onFault`
// (the log).
export function inferenceErrorEvent (span: SegmentSpan, error: unknown, onFault?: (error: unknown) => void): ErrorEvent {
  const code = error instanceof InferenceError && (error.code === 'inference_failed' || error.code === 'inference_timeout') ? error.code : 'internal'
  if (code === 'internal') onFault?.(error)
  let message = 'Internal server error'
  switch (code) {
    case 'inference_failed': message = `Inference failed: ${(error as Error).message}`; break
    case 'inference_timeout': message = (error as Error).message; break
  }
  const event: ErrorEvent = {
    type: 'error',
    channel: span.channel,
    code,
    message,
    start_time: seconds(span.startSample),
    end_time: seconds(span.endSample)
  }
  if (span.isFinal !== undefined) event.is_final = span.isFinal
  return event
}
