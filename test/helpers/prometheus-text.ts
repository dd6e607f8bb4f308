// A strict reader of the Prometheus text exposition format (0.0.4), for tests: every line must
// be a comment, a HELP/TYPE line or a sample of a declared family, or it throws.

export interface Sample {
  name: string // the sample's own name: foo_bucket, foo_sum, foo_count, foo_total, foo
  labels: Record<string, string>
  value: number
}

export interface Family {
  name: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  help: string
  samples: Sample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const SUFFIXES: Record<Family['type'], string[]> = {
  counter: ['', '_total', '_created'],
  gauge: [''],
  histogram: ['_bucket', '_sum', '_count', '_created'],
  summary: ['', '_sum', '_count', '_created'],
  untyped: ['']
}

// Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case (prom-client
// writes `Nan` for an event-loop mean with no samples yet).
function parseValue (raw: string, line: string): number {
  const lower = raw.toLowerCase()
  if (lower === '+inf' || lower === 'inf') return Infinity
  if (lower === '-inf') return -Infinity
  if (lower === 'nan') return NaN
  const value = Number(raw)
  if (raw === '' || Number.isNaN(value)) throw new Error(`bad sample value "${raw}" in: ${line}`)
  return value
}

// `{a="x",b="y\"z"}` starting at `text[0] === '{'`: the labels and where the block ended.
function parseLabels (text: string, line: string): { labels: Record<string, string>, end: number } {
  const labels: Record<string, string> = {}
  let at = 1
  while (true) {
    if (text[at] === '}') return { labels, end: at + 1 }
    const eq = text.indexOf('=', at)
    if (eq === -1 || text[eq + 1] !== '"') throw new Error(`bad label in: ${line}`)
    const name = text.slice(at, eq)
    if (!NAME.test(name)) throw new Error(`bad label name "${name}" in: ${line}`)
    let value = ''
    let i = eq + 2
    for (; i < text.length && text[i] !== '"'; i++) {
      if (text[i] === '\\') {
        const next = text[++i]
        value += next === 'n' ? '\n' : (next ?? '')
      } else {
        value += text[i]
      }
    }
    if (i >= text.length) throw new Error(`unterminated label value in: ${line}`)
    labels[name] = value
    at = i + 1
    if (text[at] === ',') at++
    else if (text[at] !== '}') throw new Error(`expected , or } after a label in: ${line}`)
  }
}

export function parsePrometheusText (text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const familyOf = (sampleName: string): Family | undefined => {
    for (const family of families.values()) {
      if (SUFFIXES[family.type].some((suffix) => family.name + suffix === sampleName)) return family
    }
    return undefined
  }
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    if (line.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
      if (match === null) continue // a plain comment
      const [, kind, name = '', rest = ''] = match
      if (!NAME.test(name)) throw new Error(`bad metric name in: ${line}`)
      const family = families.get(name) ?? { name, type: 'untyped', help: '', samples: [] }
      if (kind === 'TYPE') {
        if (!(rest in SUFFIXES)) throw new Error(`unknown type in: ${line}`)
        family.type = rest as Family['type']
      } else {
        family.help = rest
      }
      families.set(name, family)
      continue
    }
    const nameEnd = line.search(/[{ ]/)
    if (nameEnd <= 0) throw new Error(`bad sample line: ${line}`)
    const name = line.slice(0, nameEnd)
    let labels: Record<string, string> = {}
    let rest = line.slice(nameEnd)
    if (rest.startsWith('{')) {
      const parsed = parseLabels(rest, line)
      labels = parsed.labels
      rest = rest.slice(parsed.end)
    }
    const [rawValue = '', timestamp] = rest.trim().split(/\s+/)
    if (timestamp !== undefined && !/^-?\d+$/.test(timestamp)) throw new Error(`bad timestamp in: ${line}`)
    const family = familyOf(name)
    if (family === undefined) throw new Error(`sample of an undeclared family: ${line}`)
    family.samples.push({ name, labels, value: parseValue(rawValue, line) })
  }
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family)
  return families
}

// Buckets are cumulative and the +Inf bucket equals _count, per label set.
function checkHistogram (family: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>, count?: number }>()
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    const entry = series.get(key) ?? { buckets: [] }
    series.set(key, entry)
    if (sample.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${family.name}: a bucket without le`)
      entry.buckets.push([parseValue(le, le), sample.value])
    } else if (sample.name.endsWith('_count')) {
      entry.count = sample.value
    }
  }
  for (const [key, { buckets, count }] of series) {
    buckets.sort((a, b) => a[0] - b[0])
    for (let i = 1; i < buckets.length; i++) {
      if ((buckets[i]?.[1] ?? 0) < (buckets[i - 1]?.[1] ?? 0)) throw new Error(`${family.name} ${key}: buckets are not cumulative`)
    }
    const inf = buckets.at(-1)
    if (inf === undefined || inf[0] !== Infinity || inf[1] !== count) throw new Error(`${family.name} ${key}: the +Inf bucket is not _count`)
  }
}

// The value of one sample, matching every given label; undefined if none matches.
export function sampleValue (families: Map<string, Family>, family: string, sample: string, labels: Record<string, string> = {}): number | undefined {
  return families.get(family)?.samples.find((s) => s.name === sample && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}
