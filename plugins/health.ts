import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'

const Health = Type.Object({ status: Type.Literal('healthy'), sessions: Type.Integer() }, { $id: 'Health' })
const Readiness = Type.Object({ ready: Type.Boolean() }, { $id: 'Readiness' })

// Liveness answers as long as the process serves requests; readiness is false until the
// model workers are warm and while shutting down, so a balancer sends no streams then.
export default async function health (app: FastifyInstance): Promise<void> {
  // Not ready from the first moment of shutdown, before the streamer itself is told to close.
  let closing = false
  app.addHook('preClose', async () => { closing = true })

  app.get('/api/v1/health', {
    schema: { operationId: 'getHealth', summary: 'Liveness', response: { 200: Health } }
  }, async () => ({ status: 'healthy' as const, sessions: app.streamer.registry.size }))

  app.get('/api/v1/ready', {
    schema: { operationId: 'getReadiness', summary: 'Readiness: workers warm and not shutting down', response: { 200: Readiness, 503: Readiness } }
  }, async (_request, reply) => {
    const ready = !closing && app.streamer.ready
    return reply.code(ready ? 200 : 503).send({ ready })
  })
}
