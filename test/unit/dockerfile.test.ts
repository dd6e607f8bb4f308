import t from 'tap'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

// No Docker daemon here: the Dockerfile and .dockerignore are read as Docker reads them and
// checked against what the server needs. The image must start the command the README and
// `npm start` start, drain on `docker stop`, report readiness, run as a non-root user, and get
// every file the server reads at run time into its build context.

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8')

interface Instruction { keyword: string, args: string }

// Dockerfile syntax: `#` comment lines, a trailing backslash continues the line (comment lines
// inside a continuation are skipped), then KEYWORD arguments.
function parseDockerfile (text: string): Instruction[] {
  const instructions: Instruction[] = []
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('#') || (line === '' && pending === '')) continue
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `
      continue
    }
    const whole = (pending + line).trim()
    pending = ''
    if (whole === '') continue
    const [keyword = '', ...rest] = whole.split(/\s+/)
    instructions.push({ keyword: keyword.toUpperCase(), args: rest.join(' ') })
  }
  return instructions
}

// The exec form (a JSON array) as it is; the shell form as /bin/sh -c would get it.
function commandOf (args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[]
  return ['/bin/sh', '-c', args]
}

const instructions = parseDockerfile(read('Dockerfile'))
const all = (keyword: string): Instruction[] => instructions.filter((i) => i.keyword === keyword)
const last = (keyword: string): Instruction | undefined => all(keyword).at(-1)

t.test('the image starts the server with the command the README and npm start use', async (t) => {
  const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start
  // `exec` only replaces npm's shell with the server (see README "Run it").
  const command = start.replace(/^exec\s+/, '')
  t.equal(command, 'node src/server.ts', 'npm start runs node src/server.ts')
  t.ok(read('README.md').includes(command), 'the README names the same command')

  const entrypoint = commandOf(last('ENTRYPOINT')?.args ?? '[]')
  const cmd = commandOf(last('CMD')?.args ?? '[]')
  t.ok(last('CMD')?.args.startsWith('['), 'CMD is in exec form: no shell in between to swallow signals')
  t.same(entrypoint, ['/usr/bin/tini', '--'], 'tini is PID 1 (it passes signals on and reaps zombies)')
  t.same(cmd, command.split(' '), 'then the server, as npm start runs it')
  t.ok(all('RUN').some((r) => /apt-get install\b.*\btini\b/.test(r.args)), 'tini is installed in the image')
})

t.test('base image, dependencies, user, port, stop signal, health check', async (t) => {
  t.equal(instructions[0]?.keyword, 'FROM')
  t.equal(all('FROM').length, 1)
  t.equal(instructions[0]?.args, 'node:24-slim', 'Node 24, slim')

  const install = instructions.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args))
  t.ok(install >= 0 && /--omit=dev/.test(instructions[install]?.args ?? ''), 'npm ci --omit=dev')
  // The install needs .npmrc (onnxruntime-node-install=skip) and the postinstall script.
  const copiedBefore = instructions.slice(0, install).filter((i) => i.keyword === 'COPY').map((i) => i.args.split(/\s+/).slice(0, -1)).flat()
  for (const needed of ['package.json', 'package-lock.json', '.npmrc', 'scripts/prune-onnxruntime.mjs']) {
    t.ok(copiedBefore.includes(needed), `${needed} is copied before npm ci`)
  }
  t.ok(instructions.slice(install).some((i) => i.keyword === 'COPY' && i.args === '. .'), 'the source is copied after the install')

  const user = last('USER')?.args
  t.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `runs as a non-root user (${user})`)
  t.ok(instructions.findIndex((i) => i.keyword === 'USER') < instructions.findIndex((i) => i.keyword === 'CMD'), 'the user is set before the command')
  t.ok(all('EXPOSE').some((e) => e.args.split(/\s+/).includes('8080')), 'EXPOSE 8080')
  t.equal(last('STOPSIGNAL')?.args, 'SIGTERM', 'STOPSIGNAL SIGTERM: what the server drains on')

  const health = last('HEALTHCHECK')?.args ?? ''
  const probe = health.slice(health.indexOf('CMD') + 'CMD'.length).trim()
  t.ok(probe.startsWith('['), 'the health check is in exec form')
  const [program, ...probeArgs] = commandOf(probe)
  t.equal(program, 'node', 'it uses node (the slim image has no curl)')
  t.match(probeArgs.join(' '), /fetch\(.*\/api\/v1\/ready/, 'it asks readiness')
})

// .dockerignore as Docker applies it (moby/patternmatcher): one pattern a line, `#` comments,
// paths relative to the context root (a leading `/` is dropped), `*` and `?` within one path
// segment, `**` across any number, a pattern excluding a directory excludes what is in it, `!`
// re-includes, and the last pattern that matches decides.
function dockerignore (text: string): (path: string) => boolean {
  const rules = text.split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#')).map((line) => {
    const include = line.startsWith('!')
    const pattern = (include ? line.slice(1) : line).trim().replace(/^\/+/, '').replace(/\/+$/, '')
    let source = ''
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern[i] as string
      if (c === '*' && pattern[i + 1] === '*') {
        source += pattern[i + 2] === '/' ? '(?:.*/)?' : '.*'
        i += pattern[i + 2] === '/' ? 2 : 1
      } else if (c === '*') {
        source += '[^/]*'
      } else if (c === '?') {
        source += '[^/]'
      } else {
        source += c.replace(/[.+^${}()|\\]/g, '\\$&')
      }
    }
    return { include, regex: new RegExp(`^${source}$`) }
  })
  return (path) => {
    const parts = path.split('/')
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'))
    let excluded = false
    for (const rule of rules) {
      if (prefixes.some((prefix) => rule.regex.test(prefix))) excluded = !rule.include
    }
    return excluded
  }
}

function filesUnder (dir: string): string[] {
  const found: string[] = []
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`
    if (entry.isDirectory()) found.push(...filesUnder(path))
    else found.push(path)
  }
  return found
}

t.test('.dockerignore keeps out node_modules and keeps in everything the server needs', async (t) => {
  const excluded = dockerignore(read('.dockerignore'))
  // The matcher itself, on the rules Docker documents.
  const sample = dockerignore('node_modules\n*/temp*\n**/*.md\n!README.md\n/test/\n')
  t.ok(sample('node_modules/x/index.js') && sample('a/temporary') && sample('docs/a/b.md') && sample('test/e2e/x.ts'))
  t.notOk(sample('README.md') || sample('a/b/temp') || sample('src/test/x.ts'))

  t.ok(excluded('node_modules'), 'node_modules is excluded: the image installs its own')
  t.ok(excluded('node_modules/fastify/package.json'))
  const required = ['package.json', 'package-lock.json', '.npmrc', 'config.json', 'scripts/prune-onnxruntime.mjs']
  for (const dir of ['src', 'plugins', 'schemas', 'src/audio/models']) {
    t.ok(statSync(join(ROOT, dir)).isDirectory(), `${dir}/ exists`)
    required.push(...filesUnder(dir))
  }
  t.ok(required.includes('src/audio/models/silero_vad_v5_sequence.onnx'), 'the VAD model is among them')
  const lost = required.filter((path) => excluded(relative(ROOT, join(ROOT, path))))
  t.same(lost, [], `none of the ${required.length} files the server needs is excluded`)
})
