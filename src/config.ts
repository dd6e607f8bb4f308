import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { Value } from '@sinclair/typebox/value'
import { ServerConfig } from '../schemas/config.ts'

export interface LoadedConfig {
  config: ServerConfig
  // Where relative paths in the config (model.module, TLS files) are resolved from.
  configDir: string
  source: string | null
}

const DUMMY_FIELDS = ['delay', 'constant_factor', 'jitter', 'failure_rate', 'panic_rate', 'warmup_penalty']

type Json = Record<string, unknown>
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)

// A file shaped like the Rust original's config.json (the dummy's fields at the top level) is
// read as the dummy model's options, so an existing config keeps working.
function normaliseFile (file: Json): Json {
  const flat = Object.keys(file).filter((key) => DUMMY_FIELDS.includes(key))
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

// Environment variables an operator sets per deployment; each wins over the file.
const ENV: Array<[string, string[], (raw: string) => unknown]> = [
  ['PORT', ['port'], Number],
  ['HOST', ['host'], String],
  ['LOG_LEVEL', ['log_level'], String],
  ['TLS_KEY', ['tls_key'], String],
  ['TLS_CERT', ['tls_cert'], String],
  ['MODEL_MODULE', ['model', 'module'], String],
  ['MODEL_THREADS', ['model', 'threads'], Number],
  ['VAD_THREADS', ['vad', 'threads'], Number],
  ['MAX_CHANNELS', ['limits', 'max_channels'], Number],
  ['MAX_SESSIONS', ['limits', 'max_sessions'], Number],
  ['MAX_FRAME_BYTES', ['limits', 'max_frame_bytes'], Number],
  ['MAX_UPLOAD_BYTES', ['limits', 'max_upload_bytes'], Number]
]

function fromEnv (env: NodeJS.ProcessEnv): Json {
  const out: Json = {}
  for (const [name, path, parse] of ENV) {
    const raw = env[name]
    if (raw === undefined || raw === '') continue
    let node = out
    for (const key of path.slice(0, -1)) {
      node[key] ??= {}
      node = node[key] as Json
    }
    node[path.at(-1) as string] = parse(raw)
  }
  return out
}

// Defaults in code, then the JSON file, then overrides (tests and benchmarks), then the
// environment. Invalid values stop the process with a message naming the field.
export function loadConfig (options: { env?: NodeJS.ProcessEnv, file?: string | null, overrides?: Json, cwd?: string } = {}): LoadedConfig {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  const named = options.file !== undefined ? options.file : (env.STREAMER_CONFIG ?? null)
  const path = named !== null ? resolve(cwd, named) : resolve(cwd, 'config.json')
  let file: Json = {}
  let source: string | null = null
  if (named !== null || existsSync(path)) {
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'))
    } catch (error) {
      throw new Error(`Cannot read config file ${path}: ${(error as Error).message}`)
    }
    if (!isObject(parsed)) throw new Error(`Config file ${path} must hold a JSON object`)
    file = normaliseFile(parsed)
    source = path
  }
  const merged = deepMerge(deepMerge(deepMerge({ model: {}, vad: {}, limits: {} }, file), options.overrides ?? {}), fromEnv(env))
  const config = Value.Default(ServerConfig, merged)
  const firstError = Value.Errors(ServerConfig, config).First()
  if (firstError !== undefined) {
    const field = firstError.path.replace(/^\//, '').replaceAll('/', '.')
    throw new Error(`Invalid configuration at ${field || '(root)'}: ${firstError.message} (got ${JSON.stringify(firstError.value)})`)
  }
  return { config: config as ServerConfig, configDir: source !== null ? dirname(source) : cwd, source }
}
