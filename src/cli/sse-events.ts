import { createParser } from 'eventsource-parser'
import type { StreamEvent } from '../../schemas/events.ts'
import { parseServerEvent } from './server-event.ts'

export interface SseFeed {
  // Bytes of a text/event-stream body, in any split: multi-byte characters and lines that
  // cross chunks are reassembled.
  push: (chunk: Uint8Array) => void
  readonly lastEventId: string | undefined
}

// Our SSE framing: `event: <type>`, `id: <n>`, `data: <the event JSON>`; comments are keep-alives.
export function createSseFeed (onEvent: (event: StreamEvent) => void): SseFeed {
  const decoder = new TextDecoder()
  let lastEventId: string | undefined
  const parser = createParser({
    onEvent (message) {
      if (message.id !== undefined) lastEventId = message.id
      const event = parseServerEvent(message.data, 'an event')
      if (event !== null) onEvent(event)
    }
  })
  return {
    push (chunk) { parser.feed(decoder.decode(chunk, { stream: true })) },
    get lastEventId () { return lastEventId }
  }
}
