import type { StreamEvent } from '../../schemas/events.ts'
import { CliError } from './cli-error.ts'

// One server event from its JSON text (a WebSocket text frame, an SSE `data:` field). Any JSON
// object with a string `type` is an event, including types this CLI does not know (a newer
// server): they are passed through with --json and otherwise ignored, never a failure. Other
// JSON (an array, a number) is no event at all and is skipped; text that is not JSON is a failure.
export function parseServerEvent (text: string, what: string): StreamEvent | null {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new CliError(`The server sent ${what} that is not JSON: ${text.slice(0, 80)}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null
  if (typeof (value as { type?: unknown }).type !== 'string') return null
  return value as StreamEvent
}
