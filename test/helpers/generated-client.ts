import { execFile } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Test } from 'tap'
import type { StreamEvent } from '../../schemas/events.ts'
import { loadFixture } from './fixtures.ts'
import { startServer } from './server.ts'
import { assertSegmentedMatchesTruth } from './speech-assertions.ts'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const README = join(ROOT, 'README.md')

// What a user runs to generate a client from openapi.yaml: @hey-api/openapi-ts with its fetch
// client, types and SDK, written as .ts files.
const GENERATE = `
import { createClient } from '@hey-api/openapi-ts'
await createClient({
  input: process.argv[1],
  output: { path: process.argv[2], module: { extension: '.ts' } },
  plugins: ['@hey-api/client-fetch', '@hey-api/typescript', '@hey-api/sdk'],
  logs: { level: 'silent' }
})`

/** Generates the hey-api client for the committed openapi.yaml into `outDir`. */
export async function generateHeyApiClient (outDir: string): Promise<void> {
  await run(process.execPath, ['--input-type=module', '-e', GENERATE, join(ROOT, 'openapi.yaml'), outDir], { cwd: ROOT })
}

/**
 * The code of the README's fenced block that follows `<!-- client-recipe: NAME -->`, as written:
 * the tests run the README's recipes verbatim, so a recipe that stops working fails a test.
 */
export function readmeRecipe (name: string): string {
  const readme = readFileSync(README, 'utf8')
  const match = new RegExp(`<!-- client-recipe: ${name} -->\\s*\\n\`\`\`\\w*\\n([\\s\\S]*?)\\n\`\`\`\\n`).exec(readme)
  if (match === null) throw new Error(`README.md has no recipe block named ${name}`)
  return `${match[1] as string}\n`
}

/** A user's project in a temporary folder: ESM, this repository's node_modules, openapi.yaml. */
export interface ClientProject {
  dir: string
  /** Writes a file into the project. */
  write: (name: string, content: string | Uint8Array) => void
  /** Runs a program of node_modules/.bin (a generator) in the project. */
  bin: (name: string, args: string[]) => Promise<{ stdout: string, stderr: string }>
  /** Runs `node` in the project. */
  node: (args: string[]) => Promise<{ stdout: string, stderr: string }>
  /**
   * tsc over the project's .ts files (strict); '' when they type-check, else its report. `lib`:
   * the libraries the code is checked against (default es2024 with Node's types only; a client
   * typed with the DOM's fetch types adds 'dom').
   */
  typeCheck: (include: string[], lib?: string[]) => Promise<string>
  remove: () => void
}

export function clientProject (prefix: string): ClientProject {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const write = (name: string, content: string | Uint8Array): void => { writeFileSync(join(dir, name), content) }
  write('package.json', JSON.stringify({ type: 'module', private: true }))
  // The project's own node_modules stand for what the user installed (the pinned versions).
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir')
  copyFileSync(join(ROOT, 'openapi.yaml'), join(dir, 'openapi.yaml'))
  const options = { cwd: dir, timeout: 60000, env: { ...process.env, NO_COLOR: '1' } }
  return {
    dir,
    write,
    bin: (name, args) => run(join(ROOT, 'node_modules/.bin', name), args, options),
    node: (args) => run(process.execPath, args, options),
    typeCheck: async (include, lib = ['es2024']) => {
      // Node's own types (fetch, streams, Blob as Node has them): the code runs on Node.
      write('tsconfig.json', JSON.stringify({
        compilerOptions: {
          target: 'es2024',
          lib,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          types: ['node'],
          strict: true,
          noEmit: true,
          allowImportingTsExtensions: true,
          verbatimModuleSyntax: true,
          erasableSyntaxOnly: true,
          // Our .d.ts dependencies are not under test; every generated .ts file is.
          skipLibCheck: true
        },
        include
      }, null, 2))
      return await run(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(dir, 'tsconfig.json')], options)
        .then(() => '', (error: { stdout?: string }) => error.stdout ?? String(error))
    },
    remove: () => { rmSync(dir, { recursive: true, force: true }) }
  }
}

/**
 * Runs a client project's `run.ts` driver against a live server: it gets the server's URL, the
 * hello fixture as raw PCM and as a WAV, and its format, and prints the events of one paired
 * session (with interim results) and one streaming upload as JSON, which are checked here
 * against the fixture's true speech.
 */
export async function runDriverAgainstServer (t: Test, project: ClientProject): Promise<void> {
  const server = await startServer()
  t.teardown(() => server.close())
  const fixture = loadFixture('hello_16k_mono')
  project.write('hello.raw', fixture.pcm)
  project.write('hello.wav', fixture.wav)
  const { stdout } = await project.node(['run.ts', server.http, 'hello.raw', 'hello.wav', JSON.stringify(fixture.format)])
  const { paired, upload } = JSON.parse(stdout) as { paired: StreamEvent[], upload: StreamEvent[] }
  t.test('paired session', async (t) => {
    assertSegmentedMatchesTruth(t, paired, fixture)
    t.ok(paired.some((e) => e.type === 'segment' && e.is_final === false), 'interim results arrived (interim_results left optional, sent)')
    t.equal(paired.at(-1)?.type, 'end')
  })
  t.test('streaming upload', async (t) => {
    assertSegmentedMatchesTruth(t, upload, fixture)
    t.equal(upload.at(-1)?.type, 'end')
  })
}
