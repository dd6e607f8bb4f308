import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { Kind, type TSchema } from '@sinclair/typebox'
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors'
import { Value } from '@sinclair/typebox/value'
import { DummyModelOptions, ServerConfig } from '../schemas/config.ts'

export interface LoadedConfig {
  config: ServerConfig
  // Where relative paths in the config (model.module, TLS files) are resolved from.
  configDir: string
  source: string | null
}

// Everything wrong with the configuration, each problem one entry of `problems`; the message
// lists them all on one line, so an operator fixes them in one go.
export class ConfigError extends Error {
  readonly problems: string[]

  constructor (message: string, problems: string[] = [message]) {
    super(message)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

const DUMMY_FIELDS = ['delay', 'constant_factor', 'jitter', 'failure_rate', 'panic_rate', 'warmup_penalty']

type Json = Record<string, unknown>
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)

// A file shaped like the Rust original's config.json (the dummy's fields at the top level) is
// read as the dummy model's options, so an existing config keeps working.
function flatFields (file: Json): string[] {
  return Object.keys(file).filter((key) => DUMMY_FIELDS.includes(key))
}

function normaliseFile (file: Json): Json {
  const flat = flatFields(file)
  if (flat.length === 0) return file
  const rest: Json = { ...file }
  const options: Json = {}
  for (const key of flat) {
    options[key] = rest[key]
    delete rest[key]
  }
  const model = isObject(rest.model) ? rest.model : {}
  rest.model = { ...model, options: { ...(isObject(model.options) ? model.options : {}), ...options } }
  return rest
}

function deepMerge (base: Json, over: Json): Json {
  const out: Json = { ...base }
  for (const [key, value] of Object.entries(over)) {
    out[key] = isObject(value) && isObject(base[key]) ? deepMerge(base[key], value) : value
  }
  return out
}

// What a schema accepts, in words: "an integer 0-65535", "one of fatal, error, ...".
export function accepted (schema: TSchema): string {
  const range = (): string => {
    const { minimum: min, maximum: max } = schema as { minimum?: number, maximum?: number }
    if (min !== undefined && max !== undefined) return ` ${min}-${max}`
    if (min !== undefined) return ` >= ${min}`
    if (max !== undefined) return ` <= ${max}`
    return ''
  }
  switch (schema[Kind]) {
    case 'Integer': return `an integer${range()}`
    case 'Number': return `a number${range()}`
    case 'String': {
      const min = (schema as { minLength?: number }).minLength
      return min !== undefined && min > 1 ? `a string of at least ${min} characters` : min === 1 ? 'a non-empty string' : 'a string'
    }
    case 'Boolean': return 'true or false'
    case 'Literal': return JSON.stringify(schema.const)
    case 'Union': {
      const members = schema.anyOf as TSchema[]
      if (members.every((member) => member[Kind] === 'Literal')) return `one of ${members.map((member) => String(member.const)).join(', ')}`
      return members.map(accepted).join(' or ')
    }
    case 'Array': {
      const item = schema.items as TSchema
      // "an array of non-empty strings", not "an array of a non-empty strings".
      if (item[Kind] === 'String') return `an array of ${accepted(item).replace(/^an? /, '').replace(/string/, 'strings')}`
      return `an array of ${accepted(item).replace(/^an? /, '')}s`
    }
    case 'Object':
    case 'Record': return 'an object'
    default: return 'a valid value'
  }
}

// Fields whose values are secrets: a message about them never quotes the value, since start-up
// errors go to stderr and from there to whatever collects it.
const SECRET_FIELDS = ['auth.api_keys', 'auth.token_secret']
const isSecretField = (field: string): boolean => SECRET_FIELDS.some((secret) => field === secret || field.startsWith(`${secret}.`))

// A value as a message shows it: JSON, cut short if long.
function shown (value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value) ?? String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution))
    }
    previous = current
  }
  return previous[b.length] as number
}

// The known field a typo most likely meant, if one is close enough to be a typo.
function closest (key: string, known: string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate)
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}

// TypeBox's JSON-pointer paths ("/limits/max_sessions") as dotted field names, under `prefix`
// (which may depend on the first key).
function fieldOf (pointer: string, prefix: (key: string) => string): string {
  const keys = pointer.split('/').slice(1).map((key) => key.replaceAll('~1', '/').replaceAll('~0', '~'))
  return [prefix(keys[0] ?? ''), ...keys].filter((key) => key !== '').join('.')
}

// One problem per field, each naming the field and what it accepts.
function problemsOf (errors: Iterable<ValueError>, prefix: (key: string) => string = () => ''): string[] {
  const problems: string[] = []
  const seen = new Set<string>()
  for (const error of errors) {
    const field = fieldOf(error.path, prefix)
    if (seen.has(field)) continue // a value out of range and of the wrong type is one problem
    seen.add(field)
    if (error.type === ValueErrorType.ObjectAdditionalProperties) {
      const key = field.split('.').at(-1) as string
      const known = Object.keys((error.schema as { properties?: Json }).properties ?? {})
      // At the top level the flat Rust shape's fields are known too.
      const guess = closest(key, field === key && prefix(key) === '' ? [...known, ...DUMMY_FIELDS] : known)
      problems.push(`unknown field ${field}${guess !== undefined ? ` (did you mean ${guess}?)` : ''}`)
    } else {
      problems.push(`${field || 'the configuration'} must be ${accepted(error.schema)}, got ${isSecretField(field) ? 'a value not shown here (a secret)' : shown(error.value)}`)
    }
  }
  return problems
}

// Environment variables an operator sets per deployment; each wins over the file.
export const ENV: ReadonlyArray<readonly [name: string, path: readonly string[]]> = [
  ['PORT', ['port']],
  ['HOST', ['host']],
  ['LOG_LEVEL', ['log_level']],
  ['TLS_KEY', ['tls_key']],
  ['TLS_CERT', ['tls_cert']],
  ['MODEL_MODULE', ['model', 'module']],
  ['MODEL_THREADS', ['model', 'threads']],
  ['VAD_THREADS', ['vad', 'threads']],
  ['MAX_CHANNELS', ['limits', 'max_channels']],
  ['MAX_SESSIONS', ['limits', 'max_sessions']],
  ['MAX_FRAME_BYTES', ['limits', 'max_frame_bytes']],
  ['MAX_UPLOAD_BYTES', ['limits', 'max_upload_bytes']],
  ['MODEL_TIMEOUT_SECONDS', ['model', 'timeout_seconds']],
  ['IDLE_TIMEOUT_SECONDS', ['limits', 'idle_timeout_seconds']],
  ['MAX_STREAM_SECONDS', ['limits', 'max_stream_seconds']],
  ['MAX_BUFFERED_SECONDS', ['limits', 'max_buffered_seconds']],
  ['MAX_OUTBOUND_BYTES', ['limits', 'max_outbound_bytes']],
  ['MAX_SESSIONS_PER_IP', ['limits', 'max_sessions_per_ip']],
  ['MAX_SESSIONS_PER_KEY', ['limits', 'max_sessions_per_key']],
  ['SHUTDOWN_DRAIN_SECONDS', ['shutdown', 'drain_seconds']],
  // Comma-separated: key1,key2,sha256:<hex>.
  ['STREAMER_API_KEYS', ['auth', 'api_keys']],
  ['STREAMER_TOKEN_SECRET', ['auth', 'token_secret']],
  ['METRICS_PORT', ['metrics', 'port']],
  ['REDIS_URL', ['cluster', 'redis_url']]
]

function schemaAt (path: readonly string[]): TSchema {
  let schema: TSchema = ServerConfig
  for (const key of path) schema = (schema.properties as Record<string, TSchema>)[key] as TSchema
  return schema
}

// Plain decimal only: Number() would also take "0x10", "1e3" and " 8 " for a port.
const INTEGER = /^[+-]?\d+$/
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

function parseEnv (raw: string, schema: TSchema): unknown {
  if (schema[Kind] === 'Integer') return INTEGER.test(raw) ? Number(raw) : raw
  if (schema[Kind] === 'Number') return NUMBER.test(raw) ? Number(raw) : raw
  // Lists are comma-separated; blanks around a comma (and a trailing comma) are not entries.
  if (schema[Kind] === 'Array') return raw.split(',').map((item) => item.trim()).filter((item) => item !== '')
  return raw
}

// Each variable is checked against its field's schema on its own, so the message names the
// variable (not the field) and quotes what was set.
function fromEnv (env: NodeJS.ProcessEnv): { values: Json, problems: string[] } {
  const values: Json = {}
  const problems: string[] = []
  for (const [name, path] of ENV) {
    const raw = env[name]
    if (raw === undefined || raw === '') continue
    const schema = schemaAt(path)
    const value = parseEnv(raw, schema)
    if (!Value.Check(schema, value)) {
      problems.push(`${name} must be ${accepted(schema)}, got ${isSecretField(path.join('.')) ? `${raw.length} characters (not shown: a secret)` : JSON.stringify(raw)}`)
      continue
    }
    let node = values
    for (const key of path.slice(0, -1)) {
      node[key] ??= {}
      node = node[key] as Json
    }
    node[path.at(-1) as string] = value
  }
  return { values, problems }
}

function readConfigFile (path: string, named: boolean): Json {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new ConfigError(`config file ${path} does not exist${named ? ' (named by STREAMER_CONFIG)' : ''}`)
    if (code === 'EACCES') throw new ConfigError(`config file ${path} is not readable (permission denied)`)
    if (code === 'EISDIR') throw new ConfigError(`config file ${path} is a directory, not a JSON file`)
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    // V8 quotes the text around the mistake; a newline in it would break the one-line message.
    throw new ConfigError(`config file ${path} is not valid JSON: ${(error as Error).message.replace(/\s*\n\s*/g, ' ')}`)
  }
  if (!isObject(parsed)) throw new ConfigError(`config file ${path} must hold a JSON object, got ${Array.isArray(parsed) ? 'an array' : shown(parsed)}`)
  return parsed
}

// Defaults in code, then the JSON file, then overrides (tests and benchmarks), then the
// environment. Throws a ConfigError listing every invalid field and variable.
export function loadConfig (options: { env?: NodeJS.ProcessEnv, file?: string | null, overrides?: Json, cwd?: string } = {}): LoadedConfig {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  const fromVariable = options.file === undefined && env.STREAMER_CONFIG !== undefined && env.STREAMER_CONFIG !== ''
  const named = options.file !== undefined ? options.file : (fromVariable ? env.STREAMER_CONFIG as string : null)
  const path = named !== null ? resolve(cwd, named) : resolve(cwd, 'config.json')
  let file: Json = {}
  let flat: string[] = []
  let source: string | null = null
  if (named !== null || existsSync(path)) {
    const parsed = readConfigFile(path, fromVariable)
    flat = flatFields(parsed)
    file = normaliseFile(parsed)
    source = path
  }
  const fromEnvironment = fromEnv(env)
  const merged = deepMerge(deepMerge(deepMerge({ model: {}, vad: {}, limits: {} }, file), options.overrides ?? {}), fromEnvironment.values)
  authDefaults(merged)
  const config = Value.Default(ServerConfig, merged) as ServerConfig
  const problems = [...problemsOf(Value.Errors(ServerConfig, config)), ...keyProblems(config)]
  // The dummy's options are checked here too, so a typo in them fails before the server
  // listens, with the same kind of message, instead of when its workers load. A field of the
  // flat Rust shape is named as the file has it, at the top level.
  if (isObject(config.model) && config.model.module === 'dummy' && isObject(config.model.options)) {
    const dummy = Value.Default(DummyModelOptions, Value.Clone(config.model.options))
    problems.push(...problemsOf(Value.Errors(DummyModelOptions, dummy), (key) => flat.includes(key) ? '' : 'model.options'))
  }
  if (problems.length > 0 || fromEnvironment.problems.length > 0) {
    const where = source !== null ? `config file ${source}: ` : 'invalid configuration: '
    const message = [...fromEnvironment.problems, ...(problems.length > 0 ? [where + problems.join('; ')] : [])].join('; ')
    throw new ConfigError(message, [...fromEnvironment.problems, ...problems])
  }
  return { config, configDir: source !== null ? dirname(source) : cwd, source }
}

// Defaults that depend on whether authentication is on. With API keys, a browser page may call
// the API only from origins the operator names: paired.cors_origins left unset means none, not
// "*" (set it, to "*" even, to allow pages).
function authDefaults (merged: Json): void {
  const keys = isObject(merged.auth) ? merged.auth.api_keys : undefined
  if (!Array.isArray(keys) || keys.length === 0) return
  const paired = isObject(merged.paired) ? merged.paired : {}
  if (paired.cors_origins === undefined) merged.paired = { ...paired, cors_origins: [] }
}

// A key written as its hash must be one: "sha256:" and the 64 hex digits of a SHA-256.
const HASHED_KEY = /^sha256:[0-9a-f]{64}$/i
function keyProblems (config: ServerConfig): string[] {
  // Checked before the schema's own errors are reported: the file may hold anything here.
  const auth: unknown = config.auth
  const keys = isObject(auth) ? auth.api_keys : undefined
  if (!Array.isArray(keys)) return []
  return keys.flatMap((key: unknown, index) => typeof key === 'string' && key.toLowerCase().startsWith('sha256:') && !HASHED_KEY.test(key)
    ? [`auth.api_keys.${index} starts with "sha256:" but is not followed by the 64 hex digits of a SHA-256 (write the key itself, or sha256:$(printf %s KEY | sha256sum))`]
    : [])
}
