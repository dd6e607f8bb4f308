// The bare limit of the WebSocket transport: a `ws` server (the library the real server's
// @fastify/websocket uses, with the same options that matter: no compression) that takes the
// capacity benchmark's streams and does nothing with the audio but count it. What the real
// server costs beyond this is ours.
// Run by capacity.bench.ts: node bench/capacity/bare-ws-sink.ts <port>; prints "listening" when ready.
import { WebSocketServer } from 'ws'

const port = Number(process.argv[2] ?? 0)
const server = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 1 << 20 })
server.on('connection', (socket) => {
  let samples = 0
  let bytesPerSample = 2
  socket.on('message', (data, isBinary) => {
    if (isBinary) {
      samples += (data as Buffer).length / bytesPerSample
      return
    }
    const message = JSON.parse(data.toString()) as { request?: string, format?: { channels: number, bit_depth: number } }
    if (message.request === 'start' && message.format !== undefined) {
      bytesPerSample = message.format.channels * message.format.bit_depth / 8
      socket.send(JSON.stringify({ type: 'started' }))
    }
    if (message.request === 'stop') socket.send(JSON.stringify({ type: 'end', samples_received: [samples] }))
  })
})
server.on('listening', () => { console.log('listening') })
process.on('SIGTERM', () => { server.close(); process.exit(0) })
