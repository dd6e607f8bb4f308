// OpenTelemetry tracing for the process: a NodeTracerProvider registered globally (with the
// AsyncLocalStorage context manager and the W3C propagator) when, and only when, the standard
// OTEL_* variables name somewhere to send spans, or a caller (a test) hands in an exporter.
// Otherwise the SDK and exporters are not even loaded and nothing is registered:
// @opentelemetry/api stays a no-op, the @fastify/otel plugin is not installed and the session
// telemetry creates no spans at all.
import { context, propagation, trace } from '@opentelemetry/api'
import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-node'

export interface TracingOptions {
  // Where the OTEL_* variables are read (default process.env). The OTLP exporters themselves
  // always read process.env for endpoint, headers, timeout and compression.
  env?: Record<string, string | undefined>
  // Spans also go here, synchronously as each ends (tests: an InMemorySpanExporter).
  exporter?: SpanExporter
}

export interface Tracing {
  // The exporters started from the environment ('otlp', 'console'); empty with only `exporter`.
  readonly exporters: string[]
  forceFlush: () => Promise<void>
  // Flushes and unregisters the provider: tracing is off again.
  shutdown: () => Promise<void>
}

let active: Tracing | undefined

// True between startTracing() and shutdown(): only then do sessions create spans.
export function tracingEnabled (): boolean {
  return active !== undefined
}

// Which exporters the environment asks for. The SDK's own default is 'otlp' even when nothing
// is configured (it would post to localhost:4318 forever); here an unset OTEL_TRACES_EXPORTER
// means 'otlp' only if an OTLP endpoint is set, and no tracing at all otherwise.
export function traceExportersFromEnv (env: Record<string, string | undefined>): string[] {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return []
  const named = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((name) => name.trim().toLowerCase()).filter((name) => name !== '')
  if (named.length > 0) return named.includes('none') ? [] : [...new Set(named)]
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT
  return endpoint !== undefined && endpoint.trim() !== '' ? ['otlp'] : []
}

async function createExporter (name: string, env: Record<string, string | undefined>): Promise<SpanExporter> {
  if (name === 'console') return new (await import('@opentelemetry/sdk-trace-node')).ConsoleSpanExporter()
  if (name !== 'otlp') throw new Error(`OTEL_TRACES_EXPORTER="${name}" is not supported: accepted otlp, console, none`)
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').trim()
  if (protocol === 'http/protobuf') return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter()
  if (protocol === 'http/json') return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter()
  throw new Error(`OTEL_EXPORTER_OTLP_PROTOCOL="${protocol}" is not supported: accepted http/protobuf, http/json`)
}

// Starts tracing if the environment (or `options.exporter`) asks for it; resolves undefined,
// having loaded nothing, if not. Call it before building the app.
export async function startTracing (options: TracingOptions = {}): Promise<Tracing | undefined> {
  if (active !== undefined) throw new Error('tracing is already started in this process')
  const env = options.env ?? process.env
  const names = traceExportersFromEnv(env)
  if (names.length === 0 && options.exporter === undefined) return undefined

  const [sdk, resources] = await Promise.all([import('@opentelemetry/sdk-trace-node'), import('@opentelemetry/resources')])
  const spanProcessors: SpanProcessor[] = []
  if (options.exporter !== undefined) spanProcessors.push(new sdk.SimpleSpanProcessor(options.exporter))
  // Batched: a span's end costs a push into a buffer; export happens off the hot path.
  for (const name of names) spanProcessors.push(new sdk.BatchSpanProcessor(await createExporter(name, env)))
  // service.name 'streamer' unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say otherwise.
  const resource = resources.resourceFromAttributes({ 'service.name': 'streamer' })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }))
  const provider = new sdk.NodeTracerProvider({ resource, spanProcessors })
  provider.register()

  const tracing: Tracing = {
    exporters: names,
    forceFlush: () => provider.forceFlush(),
    shutdown: async () => {
      if (active !== tracing) return
      active = undefined
      await provider.shutdown()
      trace.disable()
      context.disable()
      propagation.disable()
    }
  }
  active = tracing
  return tracing
}
