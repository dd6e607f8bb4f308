import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { ErrorResponse } from '../../schemas/error-codes.ts'
import { Mode } from '../../schemas/messages.ts'
import { DEFAULT_TOKEN_TTL_SECONDS } from './authenticator.ts'

export const TOKENS_URL = '/api/v1/tokens'

const tokenRequestSchema = (maxTtlSeconds: number) => Type.Object({
  expires_in: Type.Optional(Type.Integer({ minimum: 1, maximum: maxTtlSeconds, description: `Seconds the token is valid for (default ${DEFAULT_TOKEN_TTL_SECONDS}, at most auth.token_max_ttl_seconds). It is checked when a connection or request is made: a WebSocket or an events stream opened with it is not cut when it expires` })),
  // Only streams in this mode: its WebSocket and HTTP upload, and paired sessions of this mode.
  mode: Type.Optional(Mode),
  session_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Only this paired session\'s routes (events, audio, keepalive, finalize, stop); the token cannot create a session or open any other stream' }))
}, { $id: 'TokenRequest', additionalProperties: false, description: 'What the token may do and for how long: `mode` limits it to streams in that mode (its WebSocket and HTTP upload, paired sessions of that mode), `session_id` to one paired session. An empty body (or none) asks for an unscoped token of the default lifetime' })
type TokenRequestBody = Static<ReturnType<typeof tokenRequestSchema>>

const TokenResponse = Type.Object({
  token: Type.String({ description: 'Send it as ?token=<token> (WebSocket, HTTP upload, paired-session routes, EventSource), as the WebSocket subprotocols ["token", <token>], or as Authorization: Bearer <token>' }),
  expires_in: Type.Integer({ description: 'Seconds until it expires' })
}, { $id: 'TokenResponse' })

// POST /api/v1/tokens: a backend holding an API key asks for a short-lived token and hands it to
// a browser page, which cannot keep a key secret. Tokens cannot mint tokens (the route needs a
// key), so a token's scope and lifetime are never widened.
export default async function tokensRoute (app: FastifyInstance): Promise<void> {
  const authenticator = app.authenticator
  // An empty POST (no body, no Content-Type) asks for the defaults.
  app.addHook('preValidation', async (request) => {
    request.body ??= {}
  })
  app.post<{ Body: TokenRequestBody }>(TOKENS_URL, {
    config: { auth: 'key' },
    schema: {
      operationId: 'createToken',
      tags: ['auth'],
      summary: 'A short-lived token for a browser',
      description: 'Needs an API key. The token is signed (HMAC-SHA256 with auth.token_secret), so every instance with the same secret accepts it; ' +
        'it may be scoped to one mode or one paired session. A token used after it expired, altered, or outside its scope is refused (401, 403).',
      body: tokenRequestSchema(authenticator.maxTtlSeconds),
      response: { 200: TokenResponse, '4xx': ErrorResponse }
    }
  }, async (request) => authenticator.issue(request.auth, request.body))
}
