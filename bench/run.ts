// `npm run bench`: every benchmark in turn, each in its own process so one's warm-up or threads
// do not colour another's figures.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('.', import.meta.url))
const only = process.argv[2]
const benches = readdirSync(dir).filter((f) => f.endsWith('.bench.ts') && (only === undefined || f.includes(only))).sort()
let failed = 0
for (const file of benches) {
  console.log(`\n== ${file}`)
  const result = spawnSync(process.execPath, [file], { cwd: dir, stdio: 'inherit' })
  if (result.status !== 0) failed++
}
process.exit(failed === 0 ? 0 : 1)
