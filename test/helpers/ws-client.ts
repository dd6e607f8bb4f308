import WebSocket from 'ws'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import type { StreamEvent } from '../../schemas/events.ts'

// A WebSocket client as a user would write one with `ws`: events are collected as they come.
export class WsClient {
  readonly socket: WebSocket
  readonly events: StreamEvent[] = []
  readonly closed: Promise<{ code: number, reason: string }>
  #waiters: Array<() => void> = []

  private constructor (socket: WebSocket) {
    this.socket = socket
    socket.on('message', (data, isBinary) => {
      if (isBinary) throw new Error('server sent a binary frame')
      this.events.push(JSON.parse(data.toString()) as StreamEvent)
      for (const wake of this.#waiters.splice(0)) wake()
    })
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() })
        for (const wake of this.#waiters.splice(0)) wake()
      })
    })
  }

  static async connect (url: string): Promise<WsClient> {
    const socket = new WebSocket(url)
    const client = new WsClient(socket)
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('error', reject)
    })
    return client
  }

  start (format: AudioFormat, extra: Record<string, unknown> = {}): void {
    this.socket.send(JSON.stringify({ request: 'start', format, ...extra }))
  }

  stop (disconnect = false): void {
    this.socket.send(JSON.stringify({ request: 'stop', disconnect }))
  }

  // Sends audio in chunks; with realTime, paced at the audio's own speed.
  async sendAudio (pcm: Uint8Array, options: { chunkBytes?: number, pauseMs?: number } = {}): Promise<void> {
    const chunk = options.chunkBytes ?? 8192
    for (let at = 0; at < pcm.length; at += chunk) {
      this.socket.send(pcm.subarray(at, at + chunk))
      if (options.pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.pauseMs))
    }
  }

  // Resolves once an event matching `predicate` has arrived (counting from index `from`).
  async waitFor (predicate: (event: StreamEvent) => boolean, from = 0, timeoutMs = 30000): Promise<StreamEvent> {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const found = this.events.slice(from).find(predicate)
      if (found !== undefined) return found
      if (this.socket.readyState === WebSocket.CLOSED) throw new Error(`socket closed before the awaited event; got ${JSON.stringify(this.events.slice(from))}`)
      if (Date.now() > deadline) throw new Error(`timed out waiting for an event; got ${JSON.stringify(this.events.slice(from))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  // One whole stream: start, audio, stop; returns the events of this stream up to `end`.
  async stream (format: AudioFormat, pcm: Uint8Array, options: { interim?: boolean, chunkBytes?: number, pauseMs?: number } = {}): Promise<StreamEvent[]> {
    const from = this.events.length
    this.start(format, { interim_results: options.interim ?? false })
    await this.sendAudio(pcm, options)
    this.stop()
    await this.waitFor((e) => e.type === 'end', from)
    return this.events.slice(from)
  }

  close (): void {
    this.socket.close()
  }
}
