import t from 'tap'
import net from 'node:net'
import http from 'node:http'
import http2 from 'node:http2'
import { once } from 'node:events'
import { createDualProtocolServer, type DualProtocolOptions, type DualProtocolServer } from '../../src/dual-protocol-server.ts'

// The one-port server on its own, with a plain handler: which protocol each connection gets,
// that bytes read while deciding are not lost, and that close() completes with HTTP/2
// sessions open.
async function listen (options: DualProtocolOptions = {}): Promise<{ server: DualProtocolServer, port: number }> {
  const server = createDualProtocolServer((request, response) => {
    let bytes = 0
    request.on('data', (chunk: Buffer) => { bytes += chunk.length })
    request.on('end', () => { response.end(`${request.httpVersion} ${request.method} ${request.url} ${bytes}`) })
  }, options)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  return { server, port: typeof address === 'object' && address !== null ? address.port : 0 }
}

const close = async (server: DualProtocolServer): Promise<void> => {
  server.closeHttp2Sessions()
  server.closeIdleConnections()
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
}

// Writes pieces with a pause between them (Nagle off), so the server sees them as separate reads.
async function rawExchange (port: number, pieces: Array<string | Buffer>): Promise<Buffer> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  await once(socket, 'connect')
  const received: Buffer[] = []
  socket.on('data', (chunk: Buffer) => received.push(chunk))
  for (const piece of pieces) {
    socket.write(piece)
    await new Promise((resolve) => setTimeout(resolve, 30))
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  socket.destroy()
  return Buffer.concat(received)
}

const { server, port } = await listen()
t.teardown(() => close(server))

t.test('timeouts: no request timeout (long uploads), a headers timeout, keep-alive like Fastify', async (t) => {
  t.equal(server.requestTimeout, 0)
  t.equal(server.headersTimeout, 60000)
  t.equal(server.keepAliveTimeout, 72000)
})

t.test('HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on the same port', async (t) => {
  const one = await fetch(`http://127.0.0.1:${port}/one`, { method: 'POST', body: 'hello' })
  t.equal(await one.text(), '1.1 POST /one 5')

  const session = http2.connect(`http://127.0.0.1:${port}`)
  const stream = session.request({ ':method': 'POST', ':path': '/two' })
  stream.end('hello, h2')
  stream.setEncoding('utf8')
  let body = ''
  stream.on('data', (chunk: string) => { body += chunk })
  await once(stream, 'end')
  t.equal(body, '2.0 POST /two 9')
  session.close()
})

t.test('an HTTP/1.1 request line split after its first byte is not lost', async (t) => {
  // 'P' matches the start of the HTTP/2 preface, so the server must wait, then give it back.
  const reply = await rawExchange(port, ['P', 'OST /split HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc'])
  t.match(reply.toString('latin1'), /^HTTP\/1\.1 200[^]*1\.1 POST \/split 3$/)
})

t.test('an HTTP/2 preface split across reads still reaches the HTTP/2 server', async (t) => {
  const emptySettings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])
  const reply = await rawExchange(port, ['PRI * HTTP/2.0\r\n', Buffer.concat([Buffer.from('\r\nSM\r\n\r\n'), emptySettings])])
  // The server's first frame is its SETTINGS (frame type 4 in the 9-byte frame header).
  t.ok(reply.length >= 9, 'the server answered')
  t.equal(reply[3], 4, 'first frame is SETTINGS')
})

t.test('something that starts like the preface but is not goes to HTTP/1.1 (and is refused there)', async (t) => {
  const reply = await rawExchange(port, ['PRI * HTTP/2.1\r\n\r\n'])
  t.match(reply.toString('latin1'), /^HTTP\/1\.1 400/)
})

t.test('connections that close or send nothing before deciding do not disturb the server', async (t) => {
  const quiet = net.connect(port, '127.0.0.1')
  await once(quiet, 'connect')
  quiet.end()
  const partial = net.connect(port, '127.0.0.1')
  await once(partial, 'connect')
  partial.write('PRI * HT')
  partial.destroy()
  const after = await fetch(`http://127.0.0.1:${port}/after`)
  t.equal(await after.text(), '1.1 GET /after 0')
})

t.test('only WebSocket upgrades are taken: Upgrade: h2c is served as HTTP/1.1', async (t) => {
  let upgrades = 0
  const onUpgrade = (_request: http.IncomingMessage, socket: net.Socket): void => { upgrades++; socket.destroy() }
  server.on('upgrade', onUpgrade)
  const response = await new Promise<string>((resolve, reject) => {
    const request = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/h2c', headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': '' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => { resolve(body) })
    })
    request.on('error', reject)
    request.end('abcd')
  })
  t.equal(response, '1.1 POST /h2c 4')
  const ws = await new Promise<number>((resolve) => {
    const request = http.request({ port, host: '127.0.0.1', path: '/ws', headers: { connection: 'Upgrade', upgrade: 'websocket' } })
    request.on('error', () => { resolve(upgrades) })
    request.on('close', () => { resolve(upgrades) })
    request.end()
  })
  t.equal(ws, 1, 'the WebSocket upgrade reached the upgrade listener')
  server.off('upgrade', onUpgrade)
})

t.test('close() completes with an idle HTTP/2 session and an open HTTP/2 stream', async (t) => {
  // A stuck stream is destroyed after the grace period; a short one keeps the test quick.
  const other = await listen({ shutdownGraceMs: 200 })
  const idle = http2.connect(`http://127.0.0.1:${other.port}`)
  await once(idle, 'connect')
  const busy = http2.connect(`http://127.0.0.1:${other.port}`)
  const stream = busy.request({ ':method': 'POST', ':path': '/never-ends' })
  stream.write('still uploading')
  stream.on('error', () => {})
  busy.on('error', () => {})
  await once(busy, 'connect')
  await new Promise((resolve) => setTimeout(resolve, 50))
  const closed = close(other.server)
  const result = await Promise.race([closed.then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 15000, 'hung').unref())])
  t.equal(result, 'closed')
  t.ok(idle.closed || idle.destroyed, 'the idle session was closed')
  idle.destroy()
  busy.destroy()
})
