import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors'
import { Value } from '@sinclair/typebox/value'
import { ApiError, type ErrorCode } from './error-codes.ts'

// The one validator of client input, on every transport: a WebSocket start message, an HTTP
// route's body and query (Fastify's validatorCompiler is this), a paired session's create body.
// The schemas are the rules; this turns the first violation into an ApiError that names the
// field and says what is accepted. A property schema may carry `x-error-code` to set the code
// its violations get (the audio format's fields are `unsupported_format`); otherwise
// `invalid_message`.

export const ERROR_CODE_KEYWORD = 'x-error-code'

export interface ValidatorOptions {
  /** Query strings: convert text to the schema's numbers and booleans first, name fields as query parameters. */
  query?: boolean
  /** Prefix for field names in messages (e.g. the route part). */
  fieldPrefix?: string
}

export type Validator<T extends TSchema> = (value: unknown) => Static<T>

export function compileValidator<T extends TSchema> (schema: T, options: ValidatorOptions = {}): Validator<T> {
  const check = TypeCompiler.Compile(schema)
  return (input) => {
    let value = options.query === true ? convertQuery(schema, input) : input
    // Defaults (interim_results: false...) are filled in only once the value is an object.
    if (typeof value === 'object' && value !== null) value = Value.Default(schema, structuredClone(value))
    if (check.Check(value)) return value
    const first = check.Errors(value).First()
    throw first === undefined
      ? new ApiError('invalid_message', 'The request does not match the protocol')
      : toApiError(first, options)
  }
}

function toApiError (error: ValueError, options: ValidatorOptions): ApiError {
  const field = error.path.split('/').filter((part) => part !== '').map(unescapeKey).join('.')
  const schema = error.schema as Record<string, unknown>
  const code = (typeof schema[ERROR_CODE_KEYWORD] === 'string' ? schema[ERROR_CODE_KEYWORD] : 'invalid_message') as ErrorCode
  const noun = options.query === true ? 'query parameter' : 'field'
  const name = field === '' ? 'the request' : field
  const got = shown(error.value)
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return new ApiError(code, `${name} is required: ${accepted(schema)}`, { field })
    case ValueErrorType.ObjectAdditionalProperties: {
      const known = Object.keys((schema.properties ?? {}) as Record<string, unknown>)
      const key = field.split('.').at(-1) ?? field
      return new ApiError('invalid_message', `Unknown ${noun} "${key}": accepted ${known.join(', ')}`, { field })
    }
    case ValueErrorType.Object:
      return new ApiError(code, field === '' ? `The request must be a JSON object, got ${got}` : `${name} must be an object, got ${got}`, { field })
  }
  if (options.query === true && Array.isArray(error.value)) {
    return new ApiError('invalid_message', `Query parameter "${field}" is given more than once`, { field })
  }
  return new ApiError(code, `${name} must be ${accepted(schema)}, got ${got}`, { field })
}

// Query strings are text. Only text that spells a number or boolean exactly is converted
// (TypeBox's Value.Convert would take "1.5" as the integer 1); anything else stays text, so the
// refusal shows what the client sent.
function convertQuery (schema: TSchema, input: unknown): unknown {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties
  if (typeof input !== 'object' || input === null || properties === undefined) return input
  const out: Record<string, unknown> = {}
  for (const [key, raw] of Object.entries(input)) {
    const type = properties[key]?.type
    out[key] = typeof raw === 'string' ? convertText(raw, type) : raw
  }
  return out
}

function convertText (text: string, type: unknown): unknown {
  if (type === 'integer' && /^-?\d{1,20}$/.test(text)) return Number(text)
  if (type === 'number' && /^-?\d{1,20}(\.\d{1,20})?$/.test(text)) return Number(text)
  if (type === 'boolean') {
    if (text === 'true' || text === '1') return true
    if (text === 'false' || text === '0') return false
  }
  return text
}

// What a schema accepts, in words.
function accepted (schema: Record<string, unknown>): string {
  if ('const' in schema) return JSON.stringify(schema.const)
  const range = rangeOf(schema)
  switch (schema.type) {
    case 'integer': return `an integer${range}`
    case 'number': return `a number${range}`
    case 'boolean': return 'true or false'
    case 'object': return typeof schema.description === 'string' ? `an object (${schema.description})` : 'an object'
    case 'array': return 'an array'
    case 'string':
      if (typeof schema.pattern === 'string') return typeof schema.description === 'string' ? schema.description : `a string matching ${schema.pattern}`
      return 'a string'
  }
  if (Array.isArray(schema.anyOf)) {
    const options = (schema.anyOf as Array<Record<string, unknown>>).map((option) => 'const' in option ? JSON.stringify(option.const) : accepted(option))
    return options.length === 1 ? options[0] ?? '' : `one of ${options.join(', ')}`
  }
  return 'a valid value'
}

function rangeOf (schema: Record<string, unknown>): string {
  const min = schema.minimum
  // The largest safe integer bounds ids and counters only to keep them exact: not worth saying.
  const max = schema.maximum === Number.MAX_SAFE_INTEGER ? undefined : schema.maximum
  if (typeof min === 'number' && typeof max === 'number') return ` from ${min} to ${max}`
  if (typeof min === 'number') return ` >= ${min}`
  if (typeof max === 'number') return ` <= ${max}`
  return ''
}

// Exactly what the client sent, shortened: strings quoted, objects as JSON.
function shown (value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return `"${value.slice(0, 40)}"`
  const json = JSON.stringify(value)
  return json.length > 60 ? `${json.slice(0, 60)}...` : json
}

// JSON Pointer escapes (RFC 6901), as TypeBox writes error paths.
const unescapeKey = (part: string): string => part.replace(/~1/g, '/').replace(/~0/g, '~')
