import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startServer } from '../helpers/server.ts'

// The real server process, started with one bad input at a time: it must exit non-zero with
// one line on stderr that says what is wrong, and no stack trace unless LOG_LEVEL=debug.

const SERVER = fileURLToPath(new URL('../../src/server.ts', import.meta.url))
const MODELS = fileURLToPath(new URL('../fixtures/models/', import.meta.url))

// The working directory has no config.json, so only what a test sets is loaded.
const dir = mkdtempSync(join(tmpdir(), 'streamer-startup-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

function file (name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

interface Exit { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

// A clean environment: nothing from the test runner's (LOG_LEVEL, NODE_OPTIONS, OTEL_*) leaks in.
function runServer (env: Record<string, string>, timeoutMs = 60_000): Promise<Exit> {
  const child = spawn(process.execPath, [SERVER], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  // A server that starts in spite of the bad input would run forever.
  const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

type Expected = string | RegExp | RegExp[]

function assertOneLine (t: Test, exit: Exit, expected: Expected): void {
  t.ok(exit.code !== null && exit.code !== 0, `exits non-zero (code ${exit.code}, signal ${exit.signal})`)
  const lines = exit.stderr.trimEnd().split('\n')
  t.equal(lines.length, 1, 'one line on stderr', { stderr: exit.stderr })
  for (const part of Array.isArray(expected) ? expected : [expected]) t.match(lines[0], part)
  t.notMatch(exit.stderr, /^ {4}at /m, 'no stack frames')
}

const cases: Array<{ name: string, env: () => Record<string, string>, expected: Expected }> = [
  { name: 'PORT not a number', env: () => ({ PORT: 'abc' }), expected: 'PORT must be an integer 0-65535, got "abc"' },
  { name: 'PORT out of range', env: () => ({ PORT: '70000' }), expected: 'PORT must be an integer 0-65535, got "70000"' },
  {
    name: 'LOG_LEVEL unknown',
    env: () => ({ LOG_LEVEL: 'verbose' }),
    expected: 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"'
  },
  { name: 'MODEL_THREADS zero', env: () => ({ MODEL_THREADS: '0' }), expected: 'MODEL_THREADS must be an integer >= 1, got "0"' },
  { name: 'VAD_THREADS not a number', env: () => ({ VAD_THREADS: 'two' }), expected: 'VAD_THREADS must be an integer >= 1, got "two"' },
  { name: 'MAX_CHANNELS zero', env: () => ({ MAX_CHANNELS: '0' }), expected: 'MAX_CHANNELS must be an integer >= 1, got "0"' },
  { name: 'MAX_SESSIONS not a number', env: () => ({ MAX_SESSIONS: 'x' }), expected: 'MAX_SESSIONS must be an integer >= 1, got "x"' },
  { name: 'MAX_FRAME_BYTES too small', env: () => ({ MAX_FRAME_BYTES: '10' }), expected: 'MAX_FRAME_BYTES must be an integer >= 1024, got "10"' },
  { name: 'MAX_UPLOAD_BYTES not an integer', env: () => ({ MAX_UPLOAD_BYTES: '1.5' }), expected: 'MAX_UPLOAD_BYTES must be an integer >= 1024, got "1.5"' },
  {
    name: 'several bad variables',
    env: () => ({ PORT: 'abc', MAX_SESSIONS: 'x' }),
    expected: 'PORT must be an integer 0-65535, got "abc"; MAX_SESSIONS must be an integer >= 1, got "x"'
  },
  {
    name: 'STREAMER_CONFIG names a missing file',
    env: () => ({ STREAMER_CONFIG: 'missing.json' }),
    expected: `config file ${join(dir, 'missing.json')} does not exist (named by STREAMER_CONFIG)`
  },
  {
    name: 'a config file that is not JSON',
    env: () => ({ STREAMER_CONFIG: file('broken.json', '{"limits": {\n  "max_sessions": 3,\n') }),
    expected: `config file ${join(dir, 'broken.json')} is not valid JSON: `
  },
  {
    name: 'a config file with unknown fields and a wrong type',
    env: () => ({ STREAMER_CONFIG: file('typos.json', '{"limts":{},"limits":{"max_sesions":3,"max_sessions":"x"},"vad":{"min_silence":100}}') }),
    expected: [
      new RegExp(`^streamer: config file ${join(dir, 'typos.json')}: `),
      /(; |: )unknown field limts( \(.*?\))?(; |$)/,
      /; unknown field limits\.max_sesions( \(.*?\))?(; |$)/,
      /; limits\.max_sessions must be an integer >= 1, got "x"(; |$)/,
      /; unknown field vad\.min_silence( \(.*?\))?(; |$)/
    ]
  },
  {
    name: 'a bad dummy option in the flat Rust shape',
    env: () => ({ STREAMER_CONFIG: file('rust.json', '{"delay":-1,"constant_factor":0.3}') }),
    expected: 'delay must be a number >= 0, got -1'
  },
  {
    name: 'only a TLS key',
    env: () => ({ TLS_KEY: file('only-key.pem', 'x') }),
    expected: 'TLS needs both tls_key and tls_cert (TLS_KEY, TLS_CERT); only tls_key is set'
  },
  {
    name: 'a missing TLS key file',
    env: () => ({ TLS_KEY: join(dir, 'no-key.pem'), TLS_CERT: file('cert.pem', 'x') }),
    expected: `tls_key (TLS_KEY) ${join(dir, 'no-key.pem')} does not exist`
  },
  {
    name: 'a missing TLS certificate file, by a path relative to the config file',
    env: () => {
      mkdirSync(join(dir, 'conf'), { recursive: true })
      file('conf/key.pem', 'x')
      return { STREAMER_CONFIG: file('conf/tls.json', JSON.stringify({ tls_key: 'key.pem', tls_cert: 'cert.pem' })) }
    },
    expected: `tls_cert (TLS_CERT) ${join(dir, 'conf', 'cert.pem')} does not exist (a relative path is resolved against the config file's directory, or the working directory without one)`
  },
  {
    name: 'a TLS key that is not PEM',
    env: () => ({ TLS_KEY: file('garbage-key.pem', 'not a key'), TLS_CERT: file('garbage-cert.pem', 'not a cert') }),
    expected: `tls_key (TLS_KEY) ${join(dir, 'garbage-key.pem')} is not a PEM private key`
  },
  {
    name: 'a model module that does not exist',
    env: () => ({ MODEL_MODULE: join(dir, 'no-model.ts') }),
    expected: `model.module "${join(dir, 'no-model.ts')}": no such file ${join(dir, 'no-model.ts')}`
  },
  {
    // The model fails after the VAD threads have started loading Silero, and the server closes
    // them: with more than one VAD thread, start-up once went on while a thread was still loading,
    // and closing it then made onnxruntime abort the process (SIGABRT, "terminate called after
    // throwing an instance of 'Napi::Error'") instead of printing this line.
    name: 'a model module that does not exist, with three VAD threads',
    env: () => ({ MODEL_MODULE: join(dir, 'no-model.ts'), VAD_THREADS: '3' }),
    expected: `model.module "${join(dir, 'no-model.ts')}": no such file ${join(dir, 'no-model.ts')}`
  },
  {
    name: 'a model module without createModel',
    env: () => ({ MODEL_MODULE: join(MODELS, 'no-create-model.ts'), MODEL_THREADS: '1' }),
    expected: `model failed to start: model module ${join(MODELS, 'no-create-model.ts')} exports no createModel function`
  },
  {
    name: 'a model whose createModel throws',
    env: () => ({ MODEL_MODULE: join(MODELS, 'broken-model.ts'), MODEL_THREADS: '1' }),
    expected: `model failed to start: model module ${join(MODELS, 'broken-model.ts')}: createModel failed: weights file missing`
  }
]

for (const { name, env, expected } of cases) {
  t.test(name, async (t) => {
    assertOneLine(t, await runServer(env()), expected)
  })
}

t.test('a port already in use', async (t) => {
  // A real server holds the port (on 127.0.0.1, as the spawned one asks for).
  const holder = await startServer()
  t.teardown(() => holder.close())
  assertOneLine(t, await runServer({ PORT: String(holder.port) }), `port ${holder.port} is already in use (set PORT to another)`)
})

t.test('LOG_LEVEL=debug adds the stack after the line', async (t) => {
  const inputs: Array<Record<string, string>> = [{ PORT: 'abc' }, { MODEL_MODULE: join(MODELS, 'broken-model.ts'), MODEL_THREADS: '1' }]
  for (const env of inputs) {
    const exit = await runServer({ ...env, LOG_LEVEL: 'debug' })
    t.ok(exit.code !== null && exit.code !== 0, 'exits non-zero')
    const [first] = exit.stderr.split('\n')
    t.match(first, /^streamer: (PORT must be an integer|model failed to start: .*weights file missing)/, 'the line comes first')
    t.match(exit.stderr, /^ {4}at /m, 'then the stack')
  }
})
