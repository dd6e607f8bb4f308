import { FastifyOtelInstrumentation } from '@fastify/otel'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { redactUrl } from './auth/index.ts'

// Scraped and probed every few seconds: a span each would drown the traces that matter.
const QUIET = new Set(['/metrics', '/api/v1/health', '/api/v1/ready'])

// @fastify/otel: a span per request (and per hook and handler), joined to the client's trace
// when the request carries a `traceparent` header. Registered by the app only while tracing is
// on (see src/observability/tracing.ts), and first, so it sees every route defined after it.
async function otel (app: FastifyInstance): Promise<void> {
  const instrumentation = new FastifyOtelInstrumentation({
    ignorePaths: ({ url }) => QUIET.has(url.split('?', 1)[0] ?? url),
    // The request span's url.path is the URL with its query: a ?token= must not be exported.
    requestHook: (span, request) => { span.setAttribute('url.path', redactUrl(request.url)) }
  })
  await app.register(instrumentation.plugin())
}

export default fp(otel, { name: 'otel' })
