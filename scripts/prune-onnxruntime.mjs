// postinstall: onnxruntime-node ships prebuilt binaries for every platform it supports
// (bin/napi-v*/<platform>/<arch>, about 265 MB of them not for this machine); it loads only
// bin/napi-v6/<process.platform>/<process.arch>. This deletes the others. It never fails the
// install: any problem is a warning and exit 0, since an unpruned install still works.
// STREAMER_KEEP_ALL_ONNX_BINARIES=1 turns it off (say, to copy node_modules to another platform).
// Plain JavaScript without dependencies: npm may run it with whatever node is first on PATH
// (Node 20 or newer).
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const NAME = 'prune-onnxruntime'
const current = `${process.platform}/${process.arch}`

function warn (message) {
  console.warn(`${NAME}: warning: ${message}; nothing removed (the install is fine, only larger)`)
}

// The installed package's directory: where Node would load it from this project, else the
// project's own node_modules.
function packageDir () {
  try {
    const require = createRequire(fileURLToPath(import.meta.url))
    let dir = dirname(require.resolve('onnxruntime-node'))
    while (dir !== dirname(dir)) {
      const manifest = join(dir, 'package.json')
      if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'onnxruntime-node') return dir
      dir = dirname(dir)
    }
  } catch {
    // not resolvable (not installed, or exports refuse it): try the plain path below
  }
  const fallback = fileURLToPath(new URL('../node_modules/onnxruntime-node/', import.meta.url))
  return existsSync(fallback) ? fallback : undefined
}

function subdirectories (dir) {
  return readdirSync(dir, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name)
}

function sizeOf (path) {
  const stat = lstatSync(path)
  if (!stat.isDirectory()) return stat.size
  let total = 0
  for (const name of readdirSync(path)) total += sizeOf(join(path, name))
  return total
}

function prune () {
  const keepAll = process.env.STREAMER_KEEP_ALL_ONNX_BINARIES
  if (keepAll !== undefined && keepAll !== '' && keepAll !== '0' && keepAll !== 'false') {
    console.log(`${NAME}: kept every platform's onnxruntime-node binaries (STREAMER_KEEP_ALL_ONNX_BINARIES is set)`)
    return
  }
  const dir = packageDir()
  if (dir === undefined) {
    console.log(`${NAME}: onnxruntime-node is not installed; nothing to prune`)
    return
  }
  const bin = join(dir, 'bin')
  const napis = existsSync(bin) ? subdirectories(bin).filter((name) => /^napi-v\d+$/.test(name)) : []
  if (napis.length === 0) return warn(`no ${join(bin, 'napi-v*')} folder in onnxruntime-node`)
  // Only with this machine's binary present in every napi-v* folder: otherwise the package
  // is laid out in a way this script does not know, and deleting could leave nothing loadable.
  const missing = napis.filter((napi) => !existsSync(join(bin, napi, process.platform, process.arch)))
  if (missing.length > 0) return warn(`onnxruntime-node has no binary for ${current} in ${missing.map((napi) => join(bin, napi)).join(', ')}`)

  const doomed = []
  for (const napi of napis) {
    for (const platform of subdirectories(join(bin, napi))) {
      for (const arch of subdirectories(join(bin, napi, platform))) {
        if (platform !== process.platform || arch !== process.arch) doomed.push({ napi, platform, arch })
      }
    }
  }
  if (doomed.length === 0) {
    console.log(`${NAME}: onnxruntime-node holds only the ${current} binaries; nothing to remove`)
    return
  }
  let bytes = 0
  const removed = []
  for (const { napi, platform, arch } of doomed) {
    const path = join(bin, napi, platform, arch)
    const size = sizeOf(path)
    rmSync(path, { recursive: true, force: true })
    bytes += size
    removed.push(`${napi}/${platform}/${arch}`)
    // A platform folder left empty goes too.
    const platformDir = join(bin, napi, platform)
    if (readdirSync(platformDir).length === 0) rmSync(platformDir, { recursive: true, force: true })
  }
  console.log(`${NAME}: removed onnxruntime-node binaries for other platforms (${removed.join(', ')}), ` +
    `${(bytes / 1048576).toFixed(0)} MB; kept ${current} (STREAMER_KEEP_ALL_ONNX_BINARIES=1 keeps all)`)
}

try {
  prune()
} catch (error) {
  console.warn(`${NAME}: warning: ${error instanceof Error ? error.message : String(error)}; the install goes on (some other platforms' onnxruntime-node binaries may remain)`)
}
process.exitCode = 0
