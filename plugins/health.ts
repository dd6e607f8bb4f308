import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'

const Health = Type.Object({
  status: Type.Literal('healthy'),
  sessions: Type.Optional(Type.Integer({ description: 'Sessions open now; with auth on, only for a request with an API key' }))
}, { $id: 'Health' })
const Readiness = Type.Object({ ready: Type.Boolean() }, { $id: 'Readiness' })

// Liveness answers as long as the process serves requests; readiness is false until the
// model workers are warm and while shutting down, so a balancer sends no streams then.
export default async function health (app: FastifyInstance): Promise<void> {
  // Not ready from the first moment of shutdown, before the streamer itself is told to close.
  let closing = false
  app.addHook('preClose', async () => { closing = true })

  // Open to probes, which send no credentials; how busy the server is, is for its operators
  // (an API key, or any caller while auth is off).
  app.get('/api/v1/health', {
    config: { auth: 'public' },
    schema: { operationId: 'getHealth', summary: 'Liveness', response: { 200: Health } }
  }, async (request) => {
    const kind = request.auth.kind
    return kind === 'open' || kind === 'key' ? { status: 'healthy' as const, sessions: app.streamer.registry.size } : { status: 'healthy' as const }
  })

  app.get('/api/v1/ready', {
    config: { auth: 'public' },
    schema: { operationId: 'getReadiness', summary: 'Readiness: workers warm and not shutting down', response: { 200: Readiness, 503: Readiness } }
  }, async (_request, reply) => {
    // In a cluster, an instance that cannot reach Redis takes no traffic: its paired routes
    // would answer 503 (WebSocket and upload streams still work on it, but a balancer cannot
    // route by transport).
    const ready = !closing && app.streamer.ready && (app.cluster === undefined || app.cluster.ready)
    return reply.code(ready ? 200 : 503).send({ ready })
  })
}
