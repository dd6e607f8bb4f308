import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'

// The try-it page (web/): plain HTML, CSS and ES modules, no build step. Exactly these files
// are served, each on its own fixed route, so the page can never shadow an API route (Fastify
// refuses a duplicate route at start-up) and every other URL still gets the API's JSON 404.
// The files are read once, when the plugin registers: an edit to web/ needs a restart.

const WEB_PAGE_URL = '/'
const WEB_DIR = new URL('../web/', import.meta.url)

const TYPES = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8'
} as const

// URL -> file in web/. The page's modules are under /web/ so that the root stays the page's.
const FILES: Record<string, { file: string, type: keyof typeof TYPES }> = {
  [WEB_PAGE_URL]: { file: 'index.html', type: 'html' },
  '/web/app.js': { file: 'app.js', type: 'js' },
  '/web/audio.js': { file: 'audio.js', type: 'js' },
  '/web/transports.js': { file: 'transports.js', type: 'js' },
  '/web/capture-worklet.js': { file: 'capture-worklet.js', type: 'js' },
  '/web/style.css': { file: 'style.css', type: 'css' }
}

// Same origin for everything ('self' covers the page's own ws: and wss: in CSP 3 browsers; the
// schemes are named for older ones). No inline script or style in the page; element.style set
// from script is CSSOM, which the policy allows.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "connect-src 'self' ws: wss:",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')

export default async function webPage (app: FastifyInstance): Promise<void> {
  // A server deployed without web/ still serves its API; it says why it has no page.
  let files: Array<{ url: string, body: Buffer, type: keyof typeof TYPES }>
  try {
    files = Object.entries(FILES).map(([url, { file, type }]) => ({ url, body: readFileSync(new URL(file, WEB_DIR)), type }))
  } catch (error) {
    app.log.warn({ err: error }, 'the try-it page is not served: a file of web/ cannot be read')
    return
  }
  for (const { url, body, type } of files) {
    // No hashed file names (no build step), so no long-lived caching: the browser keeps its
    // copy and revalidates it on every use, which costs a 304 when nothing changed.
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
    // Public even when auth is on: a browser cannot send a key to open a page, and the page holds
    // no secret (its API calls carry the key or token the user pastes).
    app.get(url, { config: { auth: 'public' } }, async (request, reply) => {
      reply
        .header('cache-control', 'no-cache')
        .header('etag', etag)
        .header('x-content-type-options', 'nosniff')
      if (type === 'html') reply.header('content-security-policy', CONTENT_SECURITY_POLICY).header('referrer-policy', 'no-referrer')
      if (request.headers['if-none-match']?.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag) === true) return reply.code(304).send()
      return reply.type(TYPES[type]).send(body)
    })
  }
}
