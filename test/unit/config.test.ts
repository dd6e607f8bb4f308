import t from 'tap'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Kind, type TSchema } from '@sinclair/typebox'
import { ServerConfig } from '../../schemas/config.ts'
import { ConfigError, ENV, loadConfig, type LoadedConfig } from '../../src/config.ts'

const dir = mkdtempSync(join(tmpdir(), 'streamer-config-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
// A working directory without a config.json, so only what a test gives is loaded.
const empty = join(dir, 'empty')
mkdirSync(empty)

let files = 0
function fileWith (text: string): string {
  const path = join(dir, `config-${++files}.json`)
  writeFileSync(path, text)
  return path
}

// Loads a config file holding `json` (no environment).
function load (json: unknown, env: NodeJS.ProcessEnv = {}): LoadedConfig {
  return loadConfig({ file: fileWith(JSON.stringify(json)), env })
}

function failure (run: () => unknown): ConfigError {
  try {
    run()
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error('expected a ConfigError')
}

function messageOf (json: unknown, env: NodeJS.ProcessEnv = {}): string {
  return failure(() => load(json, env)).message
}

function envMessage (env: NodeJS.ProcessEnv): string {
  return failure(() => loadConfig({ file: null, env, cwd: empty })).message
}

t.test('unknown fields are refused at every level, by path', async (t) => {
  t.match(messageOf({ limts: {} }), /unknown field limts\b/)
  t.match(messageOf({ limits: { max_sesions: 3 } }), /unknown field limits\.max_sesions\b/)
  t.match(messageOf({ vad: { min_silence: 100 } }), /unknown field vad\.min_silence\b/)
  t.match(messageOf({ model: { thread: 1 } }), /unknown field model\.thread\b/)
  t.match(messageOf({ paired: { idle_timeout: 5 } }), /unknown field paired\.idle_timeout\b/)
  t.match(messageOf({ limits: { max_sesions: 3 } }), /\(did you mean max_sessions\?\)/, 'a near miss suggests the field')
  t.notMatch(messageOf({ something_else: 1 }), /did you mean/, 'no guess when nothing is close')
  t.match(messageOf({ limts: {} }), /^config file .*config-\d+\.json: /, 'names the file')
})

t.test('wrong types and ranges name the path and what is accepted', async (t) => {
  t.match(messageOf({ limits: { max_sessions: 'x' } }), /limits\.max_sessions must be an integer >= 1, got "x"/)
  t.match(messageOf({ limits: { max_sessions: 0 } }), /limits\.max_sessions must be an integer >= 1, got 0/)
  t.match(messageOf({ port: 70000 }), /port must be an integer 0-65535, got 70000/)
  t.match(messageOf({ vad: { threshold: 2 } }), /vad\.threshold must be a number 0-1, got 2/)
  t.match(messageOf({ log_level: 'verbose' }), /log_level must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"/)
  t.match(messageOf({ paired: { cors_origins: 'https://a.example' } }), /paired\.cors_origins must be an array of strings, got "https:\/\/a\.example"/)
  t.match(messageOf({ limits: null }), /limits must be an object, got null/)
  t.match(messageOf({ model: { options: 5 } }), /model\.options must be an object, got 5/)
  t.equal(messageOf({ host: 'x'.repeat(200), port: 'x' }).length < 300, true, 'a long value is cut short')
})

t.test('every problem is listed, on one line, separated by "; "', async (t) => {
  const error = failure(() => load({ limts: {}, limits: { max_sesions: 3, max_sessions: 'x' } }, { PORT: 'abc' }))
  t.same(error.problems, [
    'PORT must be an integer 0-65535, got "abc"',
    'unknown field limts (did you mean limits?)',
    'unknown field limits.max_sesions (did you mean max_sessions?)',
    'limits.max_sessions must be an integer >= 1, got "x"'
  ])
  t.match(error.message, /^PORT must be an integer 0-65535, got "abc"; config file .*: unknown field limts .*; unknown field limits\.max_sesions .*; limits\.max_sessions must be/)
  t.notMatch(error.message, /\n/)
})

t.test('the dummy model\'s options are checked at load; any other model\'s are free-form', async (t) => {
  t.match(messageOf({ model: { options: { jiter: 0.1 } } }), /unknown field model\.options\.jiter \(did you mean jitter\?\)/)
  t.match(messageOf({ model: { options: { delay: -1 } } }), /model\.options\.delay must be a number >= 0, got -1/)
  t.match(messageOf({ model: { options: { failure_rate: 'often' } } }), /model\.options\.failure_rate must be a number 0-1, got "often"/)
  const { config } = load({ model: { module: './my-model.ts', options: { weights: 'w.bin', beam: { width: 4 } } } })
  t.same(config.model.options, { weights: 'w.bin', beam: { width: 4 } })
})

t.test('valid configs load: defaults, the repository\'s config.json, the flat Rust shape', async (t) => {
  const defaults = loadConfig({ file: null, env: {}, cwd: empty })
  t.equal(defaults.source, null)
  t.equal(defaults.config.port, 8080)
  t.equal(defaults.config.log_level, 'info')
  t.same(defaults.config.model, { module: 'dummy', threads: 2, options: {}, timeout_seconds: 30 })
  t.equal(defaults.config.limits.max_sessions, 500)
  t.equal(defaults.config.vad.threads, 2)
  t.same(defaults.config.paired.cors_origins, ['*'])

  const repo = loadConfig({ file: new URL('../../config.json', import.meta.url).pathname, env: {} })
  t.equal(repo.config.model.module, 'dummy')
  t.equal(repo.config.model.options.warmup_penalty, 10)

  const full = load({
    host: '127.0.0.1',
    port: 0,
    log_level: 'warn',
    tls_key: 'key.pem',
    tls_cert: 'cert.pem',
    model: { module: 'dummy', threads: 1, options: { delay: 0 } },
    vad: { threshold: 0.6, min_silence_ms: 300, speech_pad_ms: 10, threads: 1 },
    limits: { max_channels: 2, max_sessions: 3, max_frame_bytes: 2048, max_upload_bytes: 4096, max_utterance_seconds: 10, interim_interval_ms: 100, simple_max_in_flight: 1, simple_max_chunk_seconds: 5 },
    paired: { linger_ms: 0, replay_events: 16, reorder_window: 1, reorder_max_bytes: 1024, max_readers: 1, cors_origins: ['https://app.example.com'] }
  })
  t.equal(full.config.limits.max_sessions, 3)
  t.equal(full.config.tls_key, 'key.pem')
  t.equal(full.configDir, dir, 'relative paths resolve against the file\'s directory')

  // The Rust original's config.json: the dummy's fields at the top level.
  const rust = { delay: 0.5, constant_factor: 0.3, jitter: 0.2, failure_rate: 0.01, panic_rate: 0, warmup_penalty: 10 }
  const flat = load(rust)
  t.same(flat.config.model.options, rust)
  t.equal(flat.config.model.module, 'dummy')
  const mixed = load({ delay: 0, port: 9000, model: { threads: 1, options: { jitter: 0 } } })
  t.same(mixed.config.model.options, { jitter: 0, delay: 0 })
  t.equal(mixed.config.port, 9000)
  // A flat field is named as the file has it.
  t.match(messageOf({ delay: -1, jiter: 2 }), /unknown field jiter \(did you mean jitter\?\); delay must be a number >= 0, got -1/)
})

t.test('STREAMER_CONFIG, and config.json in the working directory', async (t) => {
  const cwd = join(dir, 'cwd')
  mkdirSync(cwd)
  t.equal(loadConfig({ env: {}, cwd }).source, null, 'no config.json: defaults')
  writeFileSync(join(cwd, 'config.json'), '{"port":1234}')
  t.equal(loadConfig({ env: {}, cwd }).config.port, 1234)
  writeFileSync(join(cwd, 'other.json'), '{"port":4321}')
  t.equal(loadConfig({ env: { STREAMER_CONFIG: 'other.json' }, cwd }).config.port, 4321)
  t.equal(loadConfig({ env: { STREAMER_CONFIG: '' }, cwd }).config.port, 1234, 'an empty STREAMER_CONFIG is unset')
})

t.test('a config file that cannot be used says why, naming the file', async (t) => {
  t.equal(failure(() => loadConfig({ env: { STREAMER_CONFIG: 'missing.json' }, cwd: dir })).message,
    `config file ${join(dir, 'missing.json')} does not exist (named by STREAMER_CONFIG)`)
  const broken = fileWith('{"limits":')
  t.match(failure(() => loadConfig({ file: broken, env: {} })).message, `config file ${broken} is not valid JSON: `)
  const multiline = fileWith('{\n  "port": 1,\n  oops\n}')
  const message = failure(() => loadConfig({ file: multiline, env: {} })).message
  t.match(message, `config file ${multiline} is not valid JSON`)
  t.notMatch(message, /\n/, 'one line even when the parser quotes several')
  t.match(failure(() => loadConfig({ file: fileWith('[1]'), env: {} })).message, /must hold a JSON object, got an array/)
  t.match(failure(() => loadConfig({ file: dir, env: {} })).message, /is a directory/)
})

t.test('environment values are checked, naming the variable and what is accepted', async (t) => {
  t.equal(envMessage({ PORT: 'abc' }), 'PORT must be an integer 0-65535, got "abc"')
  t.equal(envMessage({ PORT: '65536' }), 'PORT must be an integer 0-65535, got "65536"')
  t.equal(envMessage({ PORT: '0x50' }), 'PORT must be an integer 0-65535, got "0x50"', 'hex is not taken')
  t.equal(envMessage({ PORT: '80.5' }), 'PORT must be an integer 0-65535, got "80.5"')
  t.equal(envMessage({ LOG_LEVEL: 'verbose' }), 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"')
  t.equal(envMessage({ MODEL_THREADS: '0' }), 'MODEL_THREADS must be an integer >= 1, got "0"')
  t.equal(envMessage({ VAD_THREADS: 'two' }), 'VAD_THREADS must be an integer >= 1, got "two"')
  t.equal(envMessage({ MAX_CHANNELS: '-1' }), 'MAX_CHANNELS must be an integer >= 1, got "-1"')
  t.equal(envMessage({ MAX_SESSIONS: 'x' }), 'MAX_SESSIONS must be an integer >= 1, got "x"')
  t.equal(envMessage({ MAX_FRAME_BYTES: '100' }), 'MAX_FRAME_BYTES must be an integer >= 1024, got "100"')
  t.equal(envMessage({ MAX_UPLOAD_BYTES: '1e9' }), 'MAX_UPLOAD_BYTES must be an integer >= 1024, got "1e9"')
  t.equal(envMessage({ PORT: 'abc', MAX_SESSIONS: 'x' }), 'PORT must be an integer 0-65535, got "abc"; MAX_SESSIONS must be an integer >= 1, got "x"')
})

t.test('valid environment values win over the file; empty ones are unset', async (t) => {
  const env = {
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
    TLS_KEY: 'k.pem',
    TLS_CERT: 'c.pem',
    MODEL_MODULE: './m.ts',
    MODEL_THREADS: '3',
    VAD_THREADS: '3',
    MAX_CHANNELS: '4',
    MAX_SESSIONS: '10',
    MAX_FRAME_BYTES: '2048',
    MAX_UPLOAD_BYTES: '4096',
    MODEL_TIMEOUT_SECONDS: '2.5',
    IDLE_TIMEOUT_SECONDS: '7',
    MAX_STREAM_SECONDS: '60',
    MAX_BUFFERED_SECONDS: '3',
    MAX_OUTBOUND_BYTES: '65536',
    MAX_SESSIONS_PER_IP: '2',
    MAX_SESSIONS_PER_KEY: '3',
    SHUTDOWN_DRAIN_SECONDS: '5',
    STREAMER_API_KEYS: 'key-one,key-two',
    STREAMER_TOKEN_SECRET: 'a-token-secret-of-at-least-32-characters',
    METRICS_PORT: '9100',
    REDIS_URL: 'redis://127.0.0.1:6379'
  }
  t.same(ENV.map(([name]) => name).sort(), Object.keys(env).sort(), 'every variable is covered here')
  const { config } = load({ port: 1, limits: { max_sessions: 2, max_channels: 1 } }, env)
  t.equal(config.port, 0)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.log_level, 'debug')
  t.equal(config.tls_key, 'k.pem')
  t.equal(config.tls_cert, 'c.pem')
  t.same(config.model, { module: './m.ts', threads: 3, options: {}, timeout_seconds: 2.5 })
  t.same([config.limits.idle_timeout_seconds, config.limits.max_stream_seconds, config.limits.max_buffered_seconds, config.limits.max_outbound_bytes, config.limits.max_sessions_per_ip], [7, 60, 3, 65536, 2])
  t.equal(config.shutdown.drain_seconds, 5)
  t.equal(config.limits.max_sessions_per_key, 3)
  t.same(config.auth.api_keys, ['key-one', 'key-two'])
  t.equal(config.auth.token_secret, 'a-token-secret-of-at-least-32-characters')
  t.equal(config.metrics.port, 9100)
  t.equal(config.cluster.redis_url, 'redis://127.0.0.1:6379')
  t.equal(config.vad.threads, 3)
  t.same([config.limits.max_channels, config.limits.max_sessions, config.limits.max_frame_bytes, config.limits.max_upload_bytes], [4, 10, 2048, 4096])
  t.equal(load({ port: 1 }, { PORT: '' }).config.port, 1)
})

t.test('every field of the schema has a description', async (t) => {
  const missing: string[] = []
  const walk = (schema: TSchema, path: string): void => {
    if (path !== '' && typeof schema.description !== 'string') missing.push(path)
    if (schema[Kind] === 'Object') {
      t.equal(schema.additionalProperties, false, `${path || '(root)'} refuses unknown fields`)
      for (const [key, property] of Object.entries(schema.properties as Record<string, TSchema>)) walk(property, path === '' ? key : `${path}.${key}`)
    }
  }
  walk(ServerConfig, '')
  t.same(missing, [])
})
