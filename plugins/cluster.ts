import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ClusterNode } from './paired-session/clustered-sessions.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** This instance's part in a cluster (cluster.redis_url), or undefined for a single instance. */
    cluster: ClusterNode | undefined
  }
}

// Joins the cluster when cluster.redis_url is set; without it nothing here runs and no Redis
// is needed. Start-up waits for a first connection to Redis (a wrong URL fails the start).
async function cluster (app: FastifyInstance): Promise<void> {
  const config = app.streamer.config.cluster
  if (config.redis_url === undefined) {
    app.decorate('cluster', undefined)
    return
  }
  const node = await ClusterNode.start(app.streamer, (message, error) => {
    if (error === undefined) app.log.info(message)
    else app.log.warn({ err: error }, message)
  })
  app.decorate('cluster', node)
  app.log.info({ instance: node.membership.id }, 'joined the cluster')
  app.addHook('preClose', async () => { node.endReaders() })
  app.addHook('onClose', async () => { await node.close() })
}

export default fp(cluster, { name: 'cluster', dependencies: ['streamer-core'] })
