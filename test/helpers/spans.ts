import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import type { InMemorySpanExporter, ReadableSpan } from '@opentelemetry/sdk-trace-node'
import type { StreamEvent } from '../../schemas/events.ts'

// A client's own span, as the W3C traceparent it would send.
export function clientSpan (): { traceId: string, spanId: string, traceparent: string } {
  const traceId = randomBytes(16).toString('hex')
  const spanId = randomBytes(8).toString('hex')
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` }
}

// Reads an in-memory exporter's finished spans, trace by trace.
export class SpanReader {
  readonly #exporter: InMemorySpanExporter

  constructor (exporter: InMemorySpanExporter) {
    this.#exporter = exporter
  }

  inTrace (traceId: string): ReadableSpan[] {
    return this.#exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId)
  }

  // The session span ends just after the stream's `end` event is sent; wait for it (bounded).
  async sessionSpan (traceId: string): Promise<ReadableSpan> {
    for (let i = 0; i < 500; i++) {
      const found = this.inTrace(traceId).find((s) => s.name === 'streamer.session')
      if (found !== undefined) return found
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    throw new Error(`no session span in trace ${traceId}; spans: ${this.#exporter.getFinishedSpans().map((s) => s.name).join(', ')}`)
  }

  // decode, vad and one span per inference, all children of the session span, in its trace.
  checkPipelineSpans (t: Test, session: ReadableSpan, events: StreamEvent[], audioSeconds: number): void {
    const { traceId, spanId } = session.spanContext()
    const children = this.inTrace(traceId).filter((s) => s.parentSpanContext?.spanId === spanId)
    const named = (name: string): ReadableSpan[] => children.filter((s) => s.name === name)
    t.equal(named('streamer.decode').length, 1, 'one aggregate decode span')
    t.equal(named('streamer.vad').length, 1, 'one aggregate VAD span')
    const segments = events.filter((e) => e.type === 'segment').length
    t.ok(segments > 0, 'the stream produced segments')
    t.equal(named('streamer.inference').length, segments, 'one span per inference')
    const decode = named('streamer.decode')[0]
    t.ok(Math.abs(Number(decode?.attributes['streamer.stage.audio_seconds']) - audioSeconds) < 0.01, 'the decode span carries the audio decoded')
    t.ok(Number(decode?.attributes['streamer.stage.calls']) > 1, 'and the number of pushes it stands for')
    for (const inference of named('streamer.inference')) t.equal(inference.attributes['streamer.inference.outcome'], 'ok')
  }
}
