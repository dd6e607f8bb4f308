import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

// A plain clone must pass its tests with nothing beside it: no source, test, bench or script may
// reach outside the repository (say, for recordings kept in a sibling folder). This scans the
// files for the ways they name other files and resolves each relative path against the file's
// own folder, as Node would; the in-memory cases below prove the scan catches what it must.

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const FOLDERS = ['test', 'bench', 'scripts', 'src', 'plugins']

interface Finding { line: number, reason: string }

// A string literal: '…', "…" or `…` (of a template, only the part before its first ${…} is
// known, which is enough to tell whether it starts by climbing out).
const LITERAL = String.raw`'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|` + '`(?:[^`\\\\]|\\\\.)*`'
// What names this file's own folder: import.meta.dirname, __dirname, or dirname(fileURLToPath(import.meta.url)).
const HERE = String.raw`import\.meta\.dirname|__dirname|dirname\(\s*fileURLToPath\(\s*import\.meta\.url\s*\)\s*\)`

function literalValue (literal: string): string {
  const body = literal.slice(1, -1)
  const known = literal.startsWith('`') ? body.split('${')[0] ?? '' : body
  return known.replace(/\\(.)/g, '$1')
}

const lineOf = (text: string, index: number): number => text.slice(0, index).split('\n').length

function outside (root: string, target: string): boolean {
  const rel = relative(root, target)
  return isAbsolute(rel) || rel.split(sep)[0] === '..'
}

const relativeSpecifier = (s: string): boolean => s === '.' || s === '..' || s.startsWith('./') || s.startsWith('../')

// Every place in one file's text that resolves outside root, or names the old outside location.
function findEscapes (root: string, file: string, text: string): Finding[] {
  const found: Finding[] = []
  const fileUrl = pathToFileURL(file)
  const dir = dirname(file)
  const report = (index: number, what: string, target: string): void => {
    if (outside(root, target)) found.push({ line: lineOf(text, index), reason: `${what} resolves to ${relative(root, target)} from the root: outside the repository` })
  }

  if (file.endsWith('.sh')) {
    // $(dirname "$0")/REL and $(dirname "${BASH_SOURCE[0]}")/REL: relative to the script's folder.
    const pattern = /\$\(dirname\s+"?\$(?:0|\{BASH_SOURCE\[0\]\})"?\)(\/[^"'\s)]*)?/g
    for (const m of text.matchAll(pattern)) report(m.index, m[0], resolve(dir, `.${m[1] ?? ''}`))
  } else {
    // new URL(LITERAL, import.meta.url), as Node resolves it.
    const urls = new RegExp(String.raw`new\s+URL\(\s*(${LITERAL})\s*,\s*import\.meta\.url\s*\)`, 'g')
    const folders = new Map<string, string>()
    for (const m of text.matchAll(urls)) {
      const value = literalValue(m[1] as string)
      if (!relativeSpecifier(value) && value !== '') continue
      const target = fileURLToPath(new URL(value, fileUrl))
      report(m.index, m[0], target)
    }
    // Names bound to a folder: `const X = fileURLToPath(new URL(LITERAL, import.meta.url))` or to HERE,
    // so that join(X, '..', …) can be followed too.
    const bindings = new RegExp(String.raw`(?:const|let|var)\s+(\w+)\s*=\s*(?:fileURLToPath\(\s*new\s+URL\(\s*(${LITERAL})\s*,\s*import\.meta\.url\s*\)\s*\)|(?:${HERE}))`, 'g')
    for (const m of text.matchAll(bindings)) {
      folders.set(m[1] as string, m[2] === undefined ? dir : fileURLToPath(new URL(literalValue(m[2]), fileUrl)))
    }
    // join/resolve(HERE or a bound folder, LITERAL, …): the literals are path segments.
    const bases = [HERE, ...[...folders.keys()].map((name) => String.raw`\b${name}\b`)].join('|')
    const joins = new RegExp(String.raw`\b(?:path\.)?(?:join|resolve)\(\s*(${bases})\s*((?:,\s*(?:${LITERAL})\s*)*)`, 'g')
    for (const m of text.matchAll(joins)) {
      const base = folders.get(m[1] as string) ?? dir
      const segments = [...(m[2] ?? '').matchAll(new RegExp(LITERAL, 'g'))].map((s) => literalValue(s[0]))
      report(m.index, m[0].trim(), resolve(base, ...segments))
    }
    // Modules: import … from '…', export … from '…', import('…').
    const modules = new RegExp(String.raw`\bfrom\s+(${LITERAL})|\bimport\(\s*(${LITERAL})\s*[,)]`, 'g')
    for (const m of text.matchAll(modules)) {
      const value = literalValue((m[1] ?? m[2]) as string)
      if (relativeSpecifier(value)) report(m.index, m[0], fileURLToPath(new URL(value, fileUrl)))
    }
  }

  // Whatever the syntax: an absolute path into the machine's work folder, or the old fixtures.
  for (const m of text.matchAll(/(?<![\w.\-/])\/work\//g)) {
    found.push({ line: lineOf(text, m.index), reason: 'an absolute path into the work folder, beside the repository' })
  }
  for (const m of text.matchAll(/shared[\\/]audio/gi)) {
    found.push({ line: lineOf(text, m.index), reason: `"${m[0]}": the fixtures are test/fixtures/audio` })
  }
  return found.sort((a, b) => a.line - b.line)
}

// Every tracked file, and new ones not yet committed (but not ignored ones), in the folders.
function repositoryFiles (): string[] {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', ...FOLDERS], { cwd: ROOT, encoding: 'utf8' })
  return [...new Set(listed.split('\0'))].filter((f) => /\.(ts|js|sh)$/.test(f)).sort()
}

t.test('the scan catches a path out of the repository, however it is written', async (t) => {
  // The texts are put together here so that this file's own text does not match them.
  const call = (callee: string, ...args: string[]): string => `${callee}(${args.join(', ')})`
  const quote = (s: string): string => `'${s}'`
  const up = (n: number, rest: string): string => `${'../'.repeat(n)}${rest}`
  const helper = join(ROOT, 'test', 'helpers', 'fixtures.ts')
  const lines = (...text: string[]): string => text.join('\n')
  const escapes = (file: string, text: string): Finding[] => findEscapes(ROOT, file, text)

  const sharedAudio = ['shared', 'audio', ''].join('/')
  const old = `export const AUDIO_DIR = fileURLToPath(${call('new URL', quote(up(3, sharedAudio)), 'import.meta.url')})`
  const oldFound = escapes(helper, lines('// line 1', old))
  t.ok(oldFound.some((f) => f.line === 2 && /resolves to \.\.\/.* outside the repository/.test(f.reason)), `the old fixtures URL, resolved: ${JSON.stringify(oldFound)}`)
  t.ok(oldFound.some((f) => f.line === 2 && /test\/fixtures\/audio/.test(f.reason)), 'and named')
  t.same(escapes(helper, call('new URL', quote(up(3, 'elsewhere/')), 'import.meta.url')).map((f) => f.line), [1], 'any folder beside the repository')
  t.same(escapes(helper, call('new URL', '"../../../elsewhere/x.wav"', 'import.meta.url')).length, 1, 'double quotes')
  // eslint-disable-next-line no-template-curly-in-string -- the ${…} is part of the code under test
  t.same(escapes(helper, call('new URL', '`../../../${name}.wav`', 'import.meta.url')).length, 1, 'a template that climbs out before its first interpolation')
  t.same(escapes(helper, call('join', 'import.meta.dirname', "'..'", "'..'", "'..'", "'elsewhere'")).length, 1, 'join from import.meta.dirname, segment by segment')
  t.same(escapes(helper, call('resolve', '__dirname', quote(up(3, 'elsewhere')))).length, 1, 'resolve from __dirname')
  t.same(escapes(helper, lines(`const root = fileURLToPath(${call('new URL', quote(up(2, '')), 'import.meta.url')})`, call('join', 'root', "'..'", "'elsewhere'"))).map((f) => f.line), [2],
    'join from a name bound to a folder')
  t.same(escapes(helper, `import { x } from ${quote(up(3, 'elsewhere/x.ts'))}`).length, 1, 'an import')
  t.same(escapes(join(ROOT, 'scripts', 'x.sh'), 'cd "$(dirname "$0")/../.."').length, 1, 'a script that cds out of the repository')
  t.same(escapes(helper, `const dir = '${['', 'work', 'elsewhere'].join('/')}'`).length, 1, 'an absolute path into the work folder')

  // And what stays inside is not reported.
  t.same(escapes(helper, call('new URL', quote(up(1, 'fixtures/audio/')), 'import.meta.url')), [], 'the fixtures in the repository')
  t.same(escapes(helper, call('new URL', quote(up(2, '')), 'import.meta.url')), [], 'the repository root itself')
  t.same(escapes(helper, call('join', 'import.meta.dirname', "'..'", "'fixtures'")), [], 'join that stays inside')
  // eslint-disable-next-line no-template-curly-in-string -- the ${…} is part of the code under test
  t.same(escapes(join(ROOT, 'scripts', 'x.sh'), 'ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)'), [], 'a script that cds to the root')
  t.same(escapes(helper, "const docs = 'https://example.org/work/'"), [], 'a URL is not an absolute path')
})

t.test('no test, bench, script or source file reaches outside the repository', async (t) => {
  const top = execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd: ROOT, encoding: 'utf8' }).trim()
  t.equal(relative(top, ROOT), '', 'the repository root is the git work tree')
  const files = repositoryFiles()
  t.ok(files.includes('test/helpers/fixtures.ts') && files.includes('test/unit/self-contained.test.ts'), `${files.length} files to scan, this one among them`)
  const problems: string[] = []
  for (const file of files) {
    const path = join(ROOT, file)
    if (!existsSync(path)) continue // deleted in the work tree, not yet in git
    for (const { line, reason } of findEscapes(ROOT, path, readFileSync(path, 'utf8'))) problems.push(`${file}:${line}: ${reason}`)
  }
  t.same(problems, [], 'every path stays inside the repository')
})
