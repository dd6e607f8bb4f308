import t from 'tap'
import { readFileSync } from 'node:fs'
import { Parser } from '@asyncapi/parser'
import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parse } from 'yaml'
import { StreamEvent } from '../../schemas/events.ts'
import { FinalizeMessage, KeepaliveMessage, StartMessage, StopMessage } from '../../schemas/messages.ts'
import { ASYNCAPI_PATH, renderAsyncApi } from '../../scripts/generate-asyncapi.ts'

const committed = readFileSync(ASYNCAPI_PATH, 'utf8')

t.test('asyncapi.yaml is what the generator writes from the schemas (npm run asyncapi)', async (t) => {
  t.equal(committed, renderAsyncApi(), 'regenerate with `npm run asyncapi` and commit the result')
})

t.test('@asyncapi/parser reads it with no error and no warning', async (t) => {
  const { document, diagnostics } = await new Parser().parse(committed)
  // Severity 0 is an error, 1 a warning; 2 and 3 are information and hints.
  const problems = diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`)
  t.same(problems, [], 'no errors or warnings')
  t.ok(document, 'a document')
  if (document === undefined) return
  t.equal(document.version(), '3.0.0')

  for (const mode of ['segmented', 'simple']) {
    const ws = document.channels().all().find((c) => c.address() === `/api/v1/${mode}` && c.servers().all().some((s) => s.protocol() === 'ws'))
    t.ok(ws, `a WebSocket channel for /api/v1/${mode}`)
    const names = ws?.messages().all().map((m) => m.name()) ?? []
    t.same(names.sort(), ['ack', 'active', 'audio', 'data', 'end', 'error', 'finalize', 'finalized', 'inactive', 'keepalive', 'segment', 'shutdown', 'start', 'started', 'stop'], `${mode}: control, audio and every event`)
    const sse = document.channels().all().find((c) => c.address() === `/api/v1/${mode}` && c.servers().all().some((s) => s.protocol() === 'http'))
    t.ok(sse, `an HTTP upload channel with an SSE response for /api/v1/${mode}`)
  }
  t.ok(document.channels().all().some((c) => c.address() === '/api/v1/sessions/{id}/events'), 'the paired session\'s SSE stream')
  for (const operation of document.operations().all()) {
    t.ok(operation.messages().all().length > 0, `${operation.id()}: has messages`)
  }
})

t.test('every example is valid against the server\'s own schema', async (t) => {
  const doc = parse(committed) as { components: { messages: Record<string, { payload: { $ref?: string }, examples?: Array<{ payload: unknown }> }> } }
  const schemaFor: Record<string, TSchema> = {
    start: StartMessage,
    stop: StopMessage,
    keepalive: KeepaliveMessage,
    finalize: FinalizeMessage
  }
  let checked = 0
  for (const [name, message] of Object.entries(doc.components.messages)) {
    const schema = schemaFor[name] ?? (name === 'audio' ? undefined : StreamEvent)
    if (schema === undefined) continue
    for (const example of message.examples ?? []) {
      t.ok(Value.Check(schema, example.payload), `${name}: ${JSON.stringify(example.payload)}`)
      if (schema === StreamEvent) t.equal((example.payload as { type: string }).type, name, `${name}: the example is a ${name} event`)
      checked++
    }
  }
  t.equal(checked, 14, 'the four control messages and the ten events have examples')
})
