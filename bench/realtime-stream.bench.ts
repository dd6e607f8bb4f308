// Server CPU time per second of audio for real-time segmented streams over the WebSocket: the
// figure issue 2 asks for. Starts the real server (`node src/server.ts`, default dummy model) as a
// child process, streams a speech fixture at real-time pace in 20 ms frames, and reads the
// server's CPU time (all threads: event loop, VAD and model workers) from /proc before and after.
// Run: node bench/realtime-stream.bench.ts [streams, default 1] [seconds of audio, default 30]
// BENCH_SERVER_ARGS adds Node options to the server, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'
// (Node writes one profile per thread when the server exits after the SIGTERM).
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { loadFixture } from '../test/helpers/fixtures.ts'
import { processCpuSeconds as cpuSeconds, threadCpuSeconds as threadCpu } from './proc-stats.ts'

const streams = Number(process.argv[2] ?? 1)
const seconds = Number(process.argv[3] ?? 30)
const port = 20000 + Math.floor(Math.random() * 20000)
const root = fileURLToPath(new URL('..', import.meta.url))

const server = spawn(process.execPath, [...(process.env.BENCH_SERVER_ARGS ?? '').split(' ').filter(Boolean), 'src/server.ts'], { cwd: root, env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', CI: '1' }, stdio: ['ignore', 'inherit', 'inherit'] })
const pid = server.pid as number
try {
  // Wait until the workers are warm and the port answers.
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/api/v1/ready`).then((r) => r.ok, () => false)
    if (ok) break
    if (i > 300) throw new Error('server did not become ready')
    await sleep(100)
  }
  const idleFrom = cpuSeconds(pid)
  await sleep(2000)
  const idlePerSecond = (cpuSeconds(pid) - idleFrom) / 2

  const fixture = loadFixture('hello_16k_mono')
  const frameBytes = 640 // 20 ms of 16 kHz s16 mono
  const totalFrames = Math.round(seconds * 50)
  const started = performance.now()
  const cpuFrom = cpuSeconds(pid)
  const threadsFrom = threadCpu(pid)
  const results = await Promise.all(Array.from({ length: streams }, async () => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/api/v1/segmented`)
    await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
    let finals = 0
    const ended = new Promise<void>((resolve) => {
      socket.on('message', (data) => {
        const event = JSON.parse(data.toString()) as { type: string, is_final?: boolean }
        if (event.type === 'segment' && event.is_final === true) finals++
        if (event.type === 'end') resolve()
      })
    })
    socket.send(JSON.stringify({ request: 'start', format: fixture.format, interim_results: true }))
    const t0 = performance.now()
    for (let i = 0; i < totalFrames; i++) {
      const at = (i * frameBytes) % (fixture.pcm.length - frameBytes)
      socket.send(fixture.pcm.subarray(at, at + frameBytes))
      const due = t0 + (i + 1) * 20
      const wait = due - performance.now()
      if (wait > 0) await sleep(wait)
    }
    socket.send(JSON.stringify({ request: 'stop' }))
    await ended
    socket.close()
    return finals
  }))
  const wall = (performance.now() - started) / 1000
  const cpu = cpuSeconds(pid) - cpuFrom
  const audioSeconds = streams * totalFrames / 50
  const net = cpu - idlePerSecond * wall
  console.log(`realtime segmented stream x${streams}: ${audioSeconds.toFixed(0)} s of audio in ${wall.toFixed(1)} s wall, ${results.reduce((a, b) => a + b, 0)} final segments`)
  console.log(`  server CPU: ${(cpu * 1000 / audioSeconds).toFixed(1)} ms per second of audio (idle baseline ${(idlePerSecond * 1000).toFixed(1)} ms/s wall; net of idle ${(net * 1000 / audioSeconds).toFixed(1)} ms per second of audio)`)
  const threadsTo = threadCpu(pid)
  const byThread = [...threadsTo].map(([key, to]) => [key, to - (threadsFrom.get(key) ?? 0)] as const).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1])
  const threadSum = byThread.reduce((sum, [, v]) => sum + v, 0)
  console.log(`  sum of threads: ${(threadSum * 1000 / audioSeconds).toFixed(1)} ms per second of audio`)
  console.log('  by thread: ' + byThread.map(([key, v]) => `${key.split('#')[0]} ${(v * 1000 / audioSeconds).toFixed(1)}`).join(', ') + ' (ms per second of audio)')
} finally {
  server.kill('SIGTERM')
}
