import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Log this route's requests at debug, not info: routes called many times a second per stream. */
    quietRequestLog?: boolean
  }
}

// One log line per request, when it completes (Fastify's own two lines per request are off, see
// app.ts): method, path, status and time. Routes a client calls for every audio chunk log at
// debug, so a paired session is one `stream opened` and one `stream closed` line at info, not
// two lines per 20 ms of audio. The query is left out: it can carry credentials.
async function requestLog (app: FastifyInstance): Promise<void> {
  app.addHook('onResponse', async (request, reply) => {
    const line = {
      method: request.method,
      url: request.url.split('?')[0],
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10
    }
    if (request.routeOptions.config.quietRequestLog === true) request.log.debug(line, 'request completed')
    else request.log.info(line, 'request completed')
  })
}

export default fp(requestLog, { name: 'request-log' })
