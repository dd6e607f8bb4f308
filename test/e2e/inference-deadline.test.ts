import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import { startServer } from '../helpers/server.ts'
import { waitUntil } from '../helpers/waiting.ts'
import { WsClient } from '../helpers/ws-client.ts'
import { MARK } from '../fixtures/models/blocking-model.ts'

// A model that never answers, against a real server: the span gets `inference_timeout`, the
// stream goes on, readiness is 503 while the only thread is stuck, and a SIGTERM still ends the
// process while a thread is blocked for ever.

const BLOCKING = new URL('../fixtures/models/blocking-model.ts', import.meta.url)
const SERVER = fileURLToPath(new URL('../../src/server.ts', import.meta.url))
// 32-bit float at the model's own rate: samples reach the model exactly as sent, so the
// marker 1.0 in the first sample survives decoding and (pass-through) resampling.
const FORMAT: AudioFormat = { channels: 1, sample_rate: 16000, bit_depth: 32, is_float: true }

function audio (seconds: number, first = 0): Uint8Array {
  const samples = Math.round(seconds * 16000)
  const bytes = new Uint8Array(samples * 4)
  new DataView(bytes.buffer).setFloat32(0, first, true)
  return bytes
}

const readyStatus = async (base: string): Promise<number> => (await fetch(`${base}/api/v1/ready`)).status

t.test('a stuck inference: inference_timeout for its span, the stream goes on, readiness 503 until a thread is warm', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'streamer-deadline-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  // While `hold` exists a new model thread's warm-up waits: the replacement stays cold, so the
  // stuck state lasts until the test has seen it.
  const hold = join(dir, 'hold')
  const server = await startServer({ model: { module: BLOCKING.href, threads: 1, timeout_seconds: 0.5, options: { hold } } })
  t.teardown(() => server.close())
  t.equal(await readyStatus(server.http), 200, 'ready once warm')

  writeFileSync(hold, '')
  const client = await WsClient.connect(`${server.ws}/api/v1/simple`)
  t.teardown(() => { client.close() })
  client.start(FORMAT)
  const blocking = audio(1, MARK.block)
  await client.sendAudio(blocking, { chunkBytes: blocking.length })

  const error = await client.waitFor((e) => e.type === 'error')
  t.match(error, {
    type: 'error',
    channel: 0,
    code: 'inference_timeout',
    message: 'The model did not answer within 0.5 s (model.timeout_seconds)',
    start_time: 0,
    end_time: 1
  }, 'the stuck span gets inference_timeout')
  await waitUntil('readiness is 503 while the only thread is stuck', async () => await readyStatus(server.http) === 503)

  // More audio while stuck: it waits for a usable thread instead of going to a cold one.
  await client.sendAudio(audio(0.5))
  rmSync(hold)
  await waitUntil('readiness is 200 once the replacement is warm', async () => await readyStatus(server.http) === 200)
  client.stop()
  const end = await client.waitFor((e) => e.type === 'end')
  const first = client.events.slice(0, client.events.indexOf(end) + 1)
  const segments = first.filter((e): e is Extract<StreamEvent, { type: 'segment' }> => e.type === 'segment')
  t.ok(segments.length >= 1, 'the audio after the stuck span was inferred', { events: first })
  t.same(segments.map((s) => s.first_call), segments.map(() => false), 'by a warm thread')
  t.equal(segments[0]?.start_time, 1, 'from where the stuck span ended')
  t.same(first.filter((e) => e.type === 'error').map((e) => e.type === 'error' && e.code), ['inference_timeout'], 'one error, for the stuck span')
  t.equal(end.type, 'end', 'the stream ended normally')

  const next = await client.stream(FORMAT, audio(0.5))
  t.equal(next.at(-1)?.type, 'end', 'a second stream afterwards works')
  t.ok(next.length > 1 && next.slice(1, -1).every((e) => e.type === 'segment') && next[0]?.type === 'started', 'with segments and no error', { events: next })
  t.equal(server.app.streamer.ready, true)
})

t.test('SIGTERM ends the process while a model thread is blocked for ever', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'streamer-deadline-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  // A deadline far away: the thread is still blocked, not replaced, when the signal comes; the
  // stream waiting on it cannot drain, so it is ended at the (short) drain deadline.
  const config = join(dir, 'config.json')
  writeFileSync(config, JSON.stringify({ model: { module: fileURLToPath(BLOCKING), threads: 1, timeout_seconds: 600, options: {} }, shutdown: { drain_seconds: 1 } }))
  const child = spawn(process.execPath, [SERVER], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', STREAMER_CONFIG: config, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => { resolve({ code, signal }) })
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const base = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      const listening = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)
      if (listening !== null) resolve(listening[1] as string)
    })
    void exited.then(() => { reject(new Error(`server exited before listening: ${stderr}`)) })
  })
  await waitUntil('the server is ready', async () => await readyStatus(base) === 200)

  const client = await WsClient.connect(`${base.replace('http', 'ws')}/api/v1/simple`)
  client.start(FORMAT)
  const blocking = audio(1, MARK.block)
  await client.sendAudio(blocking, { chunkBytes: blocking.length })
  // Messages are handled in order: once this one is answered, the audio before it has been
  // handed to the model pool, and its only thread is blocked (or about to be).
  client.socket.send('not json')
  await client.waitFor((e) => e.type === 'error' && e.code === 'invalid_json')

  child.kill('SIGTERM')
  // A guard, not a performance claim: without a forced end of the blocked thread the process
  // would never exit.
  let guard: NodeJS.Timeout | undefined
  const result = await Promise.race([
    exited,
    new Promise<'still running'>((resolve) => { guard = setTimeout(() => { resolve('still running') }, 15_000) })
  ])
  clearTimeout(guard)
  t.same(result, { code: 0, signal: null }, 'the server exited cleanly after SIGTERM', { stderr })
  t.match(stdout, /shutting down/)
  const closed = await client.closed
  t.equal(closed.code, 1012, 'the open stream was closed with 1012 (service restart)')
  t.same(client.events.filter((e) => e.type === 'shutdown' || (e.type === 'error' && e.code === 'shutting_down')).map((e) => e.type), ['shutdown', 'error'], 'told of the drain, then ended with shutting_down at its deadline')
})
