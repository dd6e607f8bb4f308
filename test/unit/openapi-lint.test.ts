import t from 'tap'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

// `npx redocly lint openapi.yaml` with redocly.yaml (the recommended rules): any error or
// warning fails. The pinned @redocly/cli from node_modules; no telemetry, no update check.
const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

t.test('@redocly/cli lint (recommended rules): no error, no warning', async (t) => {
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' }
  const { stdout, stderr } = await run(process.execPath, [`${ROOT}node_modules/@redocly/cli/bin/cli.js`, 'lint', 'openapi.yaml', '--format=summary'], { cwd: ROOT, env })
    .catch((error: { stdout?: string, stderr?: string }) => ({ stdout: error.stdout ?? '', stderr: error.stderr ?? String(error) }))
  const output = `${stdout}\n${stderr}`
  t.notMatch(output, /No configurations were provided/, 'redocly.yaml is used')
  t.notMatch(output, /^(error|warning) /m, 'no rule reports anything')
  t.match(output, /Your API description is valid/, output)
  t.notMatch(output, /You have \d+ warning/, output)
})
