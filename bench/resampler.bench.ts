// CPU cost of StreamingResampler and PcmDecoder: milliseconds of CPU per second of audio, per
// channel, fed in 20 ms chunks like a live stream. Run: node bench/resampler.bench.ts
import { PcmDecoder } from '../src/audio/pcm-decoder.ts'
import { StreamingResampler } from '../src/audio/resampler.ts'

const SECONDS = 20

function tone (rate: number, seconds: number): Float32Array {
  const x = new Float32Array(Math.round(rate * seconds))
  for (let i = 0; i < x.length; i++) x[i] = 0.5 * Math.sin(2 * Math.PI * 440 * i / rate) + 0.1 * Math.sin(2 * Math.PI * 5000 * i / rate)
  return x
}

function cpuMs (run: () => void): number {
  const start = process.cpuUsage()
  run()
  const used = process.cpuUsage(start)
  return (used.user + used.system) / 1000
}

function benchResampler (rate: number): void {
  const input = tone(rate, SECONDS)
  const chunk = Math.round(rate * 0.02)
  const once = (): void => {
    const r = new StreamingResampler(rate, 16000)
    for (let i = 0; i < input.length; i += chunk) r.push(input.subarray(i, i + chunk))
    r.flush()
  }
  once() // warm up the JIT and the filter cache
  const ms = Math.min(cpuMs(once), cpuMs(once), cpuMs(once))
  console.log(`resample ${String(rate).padStart(6)} Hz -> 16000 Hz: ${(ms / SECONDS).toFixed(3)} ms CPU per second of audio per channel`)
}

function benchDecoder (bitDepth: number, isFloat: boolean, channels: number): void {
  const rate = 48000
  const bytes = new Uint8Array(rate * SECONDS * channels * bitDepth / 8)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < bytes.length / (bitDepth / 8); i++) {
    const v = Math.sin(i / 10) * 0.5
    if (isFloat) view.setFloat32(i * 4, v, true)
    else view.setInt16(i * 2, Math.round(v * 32767), true)
  }
  // 20 ms chunks, 1 byte out of step so that every chunk carries a partial frame.
  const chunk = rate * 0.02 * channels * bitDepth / 8 + 1
  const once = (): void => {
    const d = new PcmDecoder({ channels, sample_rate: rate, bit_depth: bitDepth, is_float: isFloat })
    for (let i = 0; i < bytes.length; i += chunk) d.push(bytes.subarray(i, i + chunk))
  }
  once()
  const ms = Math.min(cpuMs(once), cpuMs(once), cpuMs(once))
  console.log(`decode ${isFloat ? 'f' : 's'}${bitDepth} x${channels} at 48 kHz: ${(ms / SECONDS).toFixed(3)} ms CPU per second of audio (all channels)`)
}

for (const rate of [8000, 22050, 44100, 48000, 96000, 192000, 44099]) benchResampler(rate)
for (const [depth, isFloat, channels] of [[16, false, 1], [16, false, 2], [32, true, 1], [32, true, 2]] as const) benchDecoder(depth, isFloat, channels)
