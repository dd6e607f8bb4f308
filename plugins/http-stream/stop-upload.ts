import { constants as h2constants, type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2'
import type { IncomingMessage } from 'node:http'
import type { FastifyReply } from 'fastify'

// Once a complete response is sent, the client is asked to stop sending the body: on HTTP/2
// RST_STREAM with NO_ERROR (RFC 9113 8.1), which curl and Node treat as a normal end; on
// HTTP/1.1 the connection closes (an unread body cannot be skipped to reach a next request).
export function stopUpload (raw: IncomingMessage, reply: FastifyReply): void {
  if (raw.httpVersionMajor === 2) {
    resetWhenSent((raw as unknown as Http2ServerRequest).stream)
    return
  }
  const close = (): void => { if (!raw.complete) raw.socket.destroySoon() }
  if (reply.raw.writableFinished) close()
  else reply.raw.once('finish', close)
}

// Measured: Node's own close(NO_ERROR) waits only for the stream's 'finish', which comes before
// nghttp2 has sent the queued DATA; the RST_STREAM then overtakes them and the client loses
// the end of the response (curl: "(92) Stream error in the HTTP/2 framing layer"). nghttp2
// marks the stream closed locally once the END_STREAM frame went out, so that is awaited.
function resetWhenSent (stream: ServerHttp2Stream, waitedMs = 0): void {
  if (stream.closed || stream.destroyed) return
  if (stream.writableEnded && stream.state.localClose === 1) {
    stream.close(h2constants.NGHTTP2_NO_ERROR)
    return
  }
  // A client that stops reading the response is not waited for long.
  if (waitedMs > RESET_WAIT_MS) {
    stream.close(h2constants.NGHTTP2_CANCEL)
    return
  }
  setTimeout(() => { resetWhenSent(stream, waitedMs + RESET_POLL_MS) }, RESET_POLL_MS).unref()
}
const RESET_POLL_MS = 5
const RESET_WAIT_MS = 30000
