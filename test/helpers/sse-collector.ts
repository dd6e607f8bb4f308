import type { StreamEvent } from '../../schemas/events.ts'
import { until } from './waiting.ts'

// The SSE reader of the HTTP transports' tests.

// Reads text/event-stream as a client would: `event:`, `id:`, `data:` blocks and `:` comments.
export class SseCollector {
  readonly events: StreamEvent[] = []
  readonly ids: number[] = []
  readonly names: string[] = []
  comments = 0
  text = ''
  ended = false
  #buffer = ''

  feed (chunk: string): void {
    this.text += chunk
    this.#buffer += chunk
    let at: number
    while ((at = this.#buffer.indexOf('\n\n')) >= 0) {
      const block = this.#buffer.slice(0, at)
      this.#buffer = this.#buffer.slice(at + 2)
      let name: string | undefined
      let id: number | undefined
      let data: string | undefined
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) { this.comments++; continue }
        const colon = line.indexOf(':')
        const field = line.slice(0, colon)
        const value = line.slice(colon + 1).replace(/^ /, '')
        if (field === 'event') name = value
        else if (field === 'id') id = Number(value)
        else if (field === 'data') data = data === undefined ? value : `${data}\n${value}`
      }
      if (data === undefined) continue
      this.events.push(JSON.parse(data) as StreamEvent)
      this.ids.push(id ?? -1)
      this.names.push(name ?? 'message')
    }
  }

  end (): void { this.ended = true }

  async waitFor (predicate: (event: StreamEvent) => boolean, timeoutMs = 30000): Promise<StreamEvent> {
    await until(() => this.ended || this.events.some(predicate), timeoutMs)
    const found = this.events.find(predicate)
    if (found === undefined) throw new Error(`no such event (ended ${this.ended}); got ${this.text.slice(0, 2000)}`)
    return found
  }

  async waitForEnd (timeoutMs = 30000): Promise<StreamEvent[]> {
    await this.waitFor((e) => e.type === 'end' || e.type === 'error', timeoutMs)
    await until(() => this.ended, timeoutMs)
    return this.events
  }
}
