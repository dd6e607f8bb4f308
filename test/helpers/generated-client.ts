import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

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
