import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

// A real redis-server (Debian's /usr/bin/redis-server) on a free loopback port, for the
// cluster tests: no mock. `restart()` stops it and starts it again on the same port; with
// `persist` it keeps its data over the restart (append-only file, fsync always), as a
// production Redis would.

export interface RedisServer {
  port: number
  url: string
  restart: (downMs?: number) => Promise<void>
  stop: () => Promise<void>
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => { resolve(port) })
    })
  })
}

async function waitForPort (port: number): Promise<void> {
  const deadline = Date.now() + 10000
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => { resolve(false) })
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`redis-server did not listen on ${port}`)
}

export async function startRedis (options: { persist?: boolean } = {}): Promise<RedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(path.join(tmpdir(), 'streamer-redis-'))
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir,
    ...(options.persist === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'])]
  let child: ChildProcess
  const launch = async (): Promise<void> => {
    child = spawn('/usr/bin/redis-server', args, { stdio: 'ignore' })
    await waitForPort(port)
  }
  const halt = async (): Promise<void> => {
    if (child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  }
  await launch()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    restart: async (downMs = 300) => {
      await halt()
      await new Promise((resolve) => setTimeout(resolve, downMs))
      await launch()
    },
    stop: async () => {
      await halt()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
