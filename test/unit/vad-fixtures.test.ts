import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Piscina } from 'piscina'
import wavefile from 'wavefile'
import { SileroVad, VAD_FRAME_SAMPLES, VAD_SAMPLE_RATE } from '../../src/audio/silero-vad.ts'
import { VadBatcher } from '../../src/audio/vad-batcher.ts'
import { VadSegmenter, type VadBoundary } from '../../src/audio/vad-segmenter.ts'
import { AUDIO_DIR as audioDir } from '../helpers/fixtures.ts'

// Every fixture in test/fixtures/audio, each channel as its own stream, through the real path:
// 16 kHz mono audio -> VadBatcher -> vad-worker.ts in Piscina (Node 24 type stripping) -> VadSegmenter.
// The defaults of schemas/config.ts: threshold 0.5, min_silence_ms 500, speech_pad_ms 30.
const SETTINGS = { threshold: 0.5, minSilenceMs: 500, speechPadMs: 30 }
const START_TOLERANCE_S = 0.25
const END_TOLERANCE_S = 0.35
// 128 ms per call, like a client sending small chunks; several streams share each worker task.
const CHUNK_FRAMES = 4

interface Fixture { sample_rate: number, channels: number, speech?: Array<[number, number]>, speech_by_channel?: Array<Array<[number, number]>> }

interface Channel { name: string, audio: Float32Array, truth: Array<[number, number]> }

// sox resamples (its default is a high-quality linear-phase filter) and picks one channel; float
// output so wavefile hands back samples in [-1, 1] whatever the source encoding was.
function loadChannels (dir: string): Channel[] {
  const channels: Channel[] = []
  for (const file of readdirSync(audioDir).filter(f => f.endsWith('.wav')).sort()) {
    const base = file.slice(0, -'.wav'.length)
    const meta = JSON.parse(readFileSync(join(audioDir, `${base}.json`), 'utf8')) as Fixture
    for (let ch = 0; ch < meta.channels; ch++) {
      const out = join(dir, `${base}-${ch}.wav`)
      execFileSync('sox', [join(audioDir, file), '-r', String(VAD_SAMPLE_RATE), '-e', 'floating-point', '-b', '32', out, 'remix', String(ch + 1)])
      const wav = new wavefile.WaveFile(readFileSync(out))
      const audio = wav.getSamples(false, Float32Array) as unknown as Float32Array
      const truth = meta.speech_by_channel?.[ch] ?? meta.speech
      if (truth === undefined) throw new Error(`${base}.json has no speech regions for channel ${ch}`)
      channels.push({ name: `${base} channel ${ch}`, audio, truth })
    }
  }
  return channels
}

t.test('fixtures: one utterance per true speech region, at the right times', async t => {
  try {
    execFileSync('sox', ['--version'])
  } catch {
    t.fail('sox is needed to resample the fixtures (apt-get install -y sox)')
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'vad-fixtures-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const channels = loadChannels(dir)
  t.ok(channels.length >= 5, `${channels.length} channels from the fixtures`)

  const pool = new Piscina({ filename: new URL('../../src/core/vad-worker.ts', import.meta.url).href, minThreads: 2, maxThreads: 2 })
  t.teardown(() => pool.destroy())
  let tasks = 0
  const batcher = new VadBatcher(async (task) => {
    tasks++
    // The task's arrays share one SharedArrayBuffer with the thread (nothing to transfer).
    return await pool.run(task)
  })

  // All channels at once, so the worker sees real batches of several streams.
  const results = await Promise.all(channels.map(async ({ audio }) => {
    const stream = batcher.createStream()
    const segmenter = new VadSegmenter(SETTINGS)
    const frames = Math.floor(audio.length / VAD_FRAME_SAMPLES)
    const probabilities = new Float32Array(frames)
    const boundaries: VadBoundary[] = []
    for (let f = 0; f < frames; f += CHUNK_FRAMES) {
      const n = Math.min(CHUNK_FRAMES, frames - f)
      const p = await stream.process(audio.subarray(f * VAD_FRAME_SAMPLES, (f + n) * VAD_FRAME_SAMPLES))
      probabilities.set(p, f)
      boundaries.push(...segmenter.push(p))
    }
    // The tail shorter than a frame is never classified, but it is audio the stream saw.
    boundaries.push(...segmenter.flush(audio.length))
    return { probabilities, boundaries }
  }))
  const totalCalls = channels.reduce((sum, c) => sum + Math.ceil(Math.floor(c.audio.length / VAD_FRAME_SAMPLES) / CHUNK_FRAMES), 0)
  t.ok(tasks < totalCalls, `streams were batched: ${totalCalls} calls in ${tasks} worker tasks`)

  // The worker's batched results must equal the model run alone on this thread.
  const vad = await SileroVad.load()
  t.teardown(() => vad.close())

  for (const [i, channel] of channels.entries()) {
    const { probabilities, boundaries } = results[i] as (typeof results)[number]
    await t.test(channel.name, async t => {
      const frames = probabilities.length * VAD_FRAME_SAMPLES
      const [alone] = await vad.run([{ frames: channel.audio.slice(0, frames), context: new Float32Array(64), state: new Float32Array(256) }])
      let diff = 0
      alone?.probabilities.forEach((p, f) => { diff = Math.max(diff, Math.abs(p - (probabilities[f] as number))) })
      t.ok(alone !== undefined && diff <= 1e-6, `worker + batcher equal a lone in-thread run (max difference ${diff})`)

      t.ok(boundaries.every((b, k) => b.kind === (k % 2 === 0 ? 'start' : 'end')), 'boundaries alternate start, end')
      const found: Array<[number, number]> = []
      for (let k = 0; k + 1 < boundaries.length; k += 2) {
        found.push([(boundaries[k] as VadBoundary).sample / VAD_SAMPLE_RATE, (boundaries[k + 1] as VadBoundary).sample / VAD_SAMPLE_RATE])
      }
      const shown = found.map(([s, e]) => `${s.toFixed(3)}-${e.toFixed(3)}`).join(', ')
      t.equal(boundaries.length, 2 * channel.truth.length, `one utterance per true region (found ${shown})`)
      channel.truth.forEach(([start, end], k) => {
        const [gotStart, gotEnd] = found[k] ?? [NaN, NaN]
        t.ok(Math.abs(gotStart - start) <= START_TOLERANCE_S, `region ${k}: start ${gotStart.toFixed(3)} s vs true ${start} s`)
        t.ok(Math.abs(gotEnd - end) <= END_TOLERANCE_S, `region ${k}: end ${gotEnd.toFixed(3)} s vs true ${end} s`)
      })
    })
  }
})
