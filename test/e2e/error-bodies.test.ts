import t, { type Test } from 'tap'
import { connect } from 'node:net'
import { ERRORS, type ErrorCode } from '../../schemas/error-codes.ts'
import { startServer } from '../helpers/server.ts'

// Every refusal a user can trigger, Fastify's and Node's own included, arrives as the documented
// {code, message, field} body with the catalogue's status for that code.
const server = await startServer()
t.teardown(() => server.close())

async function refusal (t: Test, what: string, response: Response, code: ErrorCode, field?: string): Promise<void> {
  t.equal(response.status, ERRORS[code].status, `${what}: status ${String(ERRORS[code].status)}`)
  t.match(response.headers.get('content-type'), /^application\/json/, `${what}: JSON`)
  const body = await response.json() as Record<string, unknown>
  t.equal(body.code, code, `${what}: code`)
  t.match(body.message, /\S{3}/, `${what}: says what was wrong (${String(body.message)})`)
  if (field !== undefined) t.equal(body.field, field, `${what}: names ${field}`)
  t.same(Object.keys(body).filter((key) => !['code', 'message', 'field'].includes(key)), [], `${what}: nothing but code, message, field`)
}

// Raw bytes on a socket: for requests fetch refuses to send.
function rawExchange (request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1', () => { socket.write(request) })
    let answer = ''
    socket.on('data', (data) => { answer += data.toString() })
    socket.on('close', () => { resolve(answer) })
    socket.on('error', reject)
    socket.setTimeout(5000, () => { socket.destroy(new Error('no answer')) })
  })
}

function parseRaw (answer: string): { status: number, body: Record<string, unknown> } {
  const [head = '', body = ''] = answer.split('\r\n\r\n')
  return { status: Number(head.split(' ')[1]), body: JSON.parse(body) as Record<string, unknown> }
}

t.test('routes, methods and URLs', async (t) => {
  await refusal(t, 'unknown route', await fetch(`${server.http}/api/v2/nothing`), 'not_found')
  await refusal(t, 'unknown method on a route', await fetch(`${server.http}/api/v1/sessions`, { method: 'DELETE' }), 'not_found')
  await refusal(t, 'unknown session', await fetch(`${server.http}/api/v1/sessions/nope/stop`, { method: 'POST' }), 'not_found')
  await refusal(t, 'a path segment over 100 characters', await fetch(`${server.http}/api/v1/sessions/${'x'.repeat(200)}/stop`, { method: 'POST' }), 'uri_too_long', 'url')
  await refusal(t, 'a bad percent-encoding', await fetch(`${server.http}/api/v1/sessions/%zz/stop`, { method: 'POST' }), 'malformed_request', 'url')
})

t.test('bodies and content types', async (t) => {
  const json = { 'content-type': 'application/json' }
  await refusal(t, 'invalid JSON', await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: json, body: '{"mode":' }), 'invalid_json', 'body')
  await refusal(t, 'empty JSON body', await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: json, body: '' }), 'invalid_json', 'body')
  await refusal(t, 'a JSON array', await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: json, body: '[]' }), 'invalid_message')
  await refusal(t, 'an unknown field', await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: json, body: JSON.stringify({ mode: 'simple', format: { channels: 1, sample_rate: 16000, bit_depth: 16 }, interim: true }) }), 'invalid_message', 'interim')
  await refusal(t, 'an unknown format field', await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: json, body: JSON.stringify({ mode: 'simple', format: { channels: 1, sample_rate: 16000, bit_depth: 16, rate: 3 } }) }), 'invalid_message', 'format.rate')
  await refusal(t, 'audio as the create body', await fetch(`${server.http}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'audio/wav' }, body: new Uint8Array(10) }), 'unsupported_media_type', 'content-type')
  await refusal(t, 'a form as the upload body', await fetch(`${server.http}/api/v1/simple?sample_rate=16000&channels=1&bit_depth=16`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' }), 'unsupported_media_type', 'content-type')
})

t.test('requests Node\'s HTTP parser cannot read', async (t) => {
  const garbage = parseRaw(await rawExchange('THIS IS NOT HTTP\r\n\r\n'))
  t.equal(garbage.status, 400)
  t.match(garbage.body, { code: 'malformed_request', message: /could not be parsed/ })
  const huge = parseRaw(await rawExchange(`GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`))
  t.equal(huge.status, 431)
  t.match(huge.body, { code: 'headers_too_large' })
})

t.test('the server still serves after all that', async (t) => {
  t.equal((await fetch(`${server.http}/api/v1/health`)).status, 200)
})
