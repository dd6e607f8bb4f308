import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FAST_MODEL } from './server.ts'
import { answersReady, until } from './waiting.ts'

// A cluster instance as a real process (src/server.ts), so a test can kill -9 it.

const SERVER = fileURLToPath(new URL('../../src/server.ts', import.meta.url))

export interface InstanceProcess {
  http: string
  kill: (signal: NodeJS.Signals) => Promise<void>
}

async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const probe = net.createServer()
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => { resolve(port) })
    })
  })
}

// `config`: more of the instance's config (a model that fails, say), over the defaults here.
export async function startInstance (name: string, redisUrl: string, cluster: Record<string, unknown> = {}, config: Record<string, unknown> = {}): Promise<InstanceProcess> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), `streamer-${name}-`))
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify({
    port,
    host: '127.0.0.1',
    log_level: 'warn',
    model: { threads: 1, options: FAST_MODEL },
    cluster: { instance_id: name, heartbeat_ms: 200, claim_timeout_ms: 1500, ...cluster },
    ...config
  }))
  const child = spawn(process.execPath, [SERVER], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', STREAMER_CONFIG: configPath, REDIS_URL: redisUrl, CI: 'true' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  process.once('exit', () => { child.kill('SIGKILL') })
  const http = `http://127.0.0.1:${port}`
  const ready = await until(async () => child.exitCode !== null || await answersReady(http), 30000)
  if (child.exitCode !== null) throw new Error(`instance ${name} exited: ${stderr}`)
  if (!ready) throw new Error(`instance ${name} not ready: ${stderr}`)
  return {
    http,
    kill: async (signal) => {
      if (child.exitCode === null) child.kill(signal)
      await exited
    }
  }
}
