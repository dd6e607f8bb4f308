import t from 'tap'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

// The architecture as a test: imports flow one way,
// schemas <- audio, inference <- core <- plugins <- app <- server, and only one file imports piscina.
const root = fileURLToPath(new URL('../../', import.meta.url))

function files (dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name)
    return statSync(join(root, path)).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : []
  })
}

function imports (file: string): string[] {
  const source = readFileSync(join(root, file), 'utf8')
  return [...source.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)]
    .map((m) => m[1] ?? m[2] ?? '')
}

const layerOf = (path: string): string => {
  const parts = path.split('/')
  if (parts[0] === 'src' && parts.length > 2) return `src/${parts[1]}`
  return parts[0] === 'src' ? path : (parts[0] ?? path)
}

// What each layer may import from, besides itself.
const allowed: Record<string, string[]> = {
  schemas: [],
  'src/audio': ['schemas'],
  'src/inference': ['schemas'],
  'src/core': ['schemas', 'src/audio', 'src/inference'],
  plugins: ['schemas', 'src/audio', 'src/core', 'src/observability', 'src/cluster'],
  'src/cluster': ['schemas'],
  'src/observability': ['schemas'],
  'src/config.ts': ['schemas'],
  'src/app.ts': ['schemas', 'plugins', 'src/core', 'src/observability', 'src/dual-protocol-server.ts'],
  'src/server.ts': ['schemas', 'src/app.ts', 'src/config.ts', 'src/observability'],
  'src/cli': ['schemas', 'src/audio']
}
const framework = /^(fastify|@fastify\/|fastify-|ws$)/

for (const dir of ['schemas', 'src', 'plugins']) {
  for (const file of files(dir)) {
    const layer = layerOf(file)
    t.test(file, async (t) => {
      for (const spec of imports(file)) {
        if (spec.startsWith('.')) {
          const target = layerOf(relative(root, resolve(dirname(join(root, file)), spec)))
          if (target === layer) continue
          t.ok((allowed[layer] ?? []).includes(target), `${layer} may import ${target}`)
        } else {
          if (spec === 'piscina') t.equal(file, 'src/inference/task-pool.ts', 'only the task pool imports piscina')
          if (framework.test(spec)) t.ok(layer === 'plugins' || layer === 'src/app.ts' || layer === 'src/server.ts' || layer === 'src/cli', `${spec} appears only in plugins and the app`)
        }
      }
    })
  }
}
