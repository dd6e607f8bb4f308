import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import type { AudioFormat } from '../../schemas/audio-format.ts'
import { parseWavHeader } from '../../src/audio/wav-header.ts'

// The speech recordings in the repository and their true speech regions, per channel; made by
// scripts/generate-fixtures.sh (test/fixtures/audio/README.md).
export const AUDIO_DIR = fileURLToPath(new URL('../fixtures/audio/', import.meta.url))

export interface Fixture {
  name: string
  path: string
  wav: Uint8Array // the whole file
  pcm: Uint8Array // the data chunk
  format: AudioFormat
  duration: number
  speech: Array<Array<[number, number]>> // per channel
  // True pauses inside the speech, too short for the VAD to end an utterance ([start, end]
  // seconds, channel 0): where a cut at max_utterance_seconds belongs. Empty for most fixtures.
  gaps: Array<[number, number]>
}

interface Truth { duration: number, speech?: Array<[number, number]>, speech_by_channel?: Array<Array<[number, number]>>, gaps?: Array<[number, number]> }

export function loadFixture (name: string): Fixture {
  const path = join(AUDIO_DIR, `${name}.wav`)
  const wav = new Uint8Array(readFileSync(path))
  const header = parseWavHeader(wav)
  if (header.status !== 'ok') throw new Error(`fixture ${name}: ${header.status}`)
  const truth = JSON.parse(readFileSync(join(AUDIO_DIR, `${name}.json`), 'utf8')) as Truth
  const speech = truth.speech_by_channel ?? [truth.speech ?? []]
  const end = header.dataBytes === null ? wav.length : header.dataOffset + header.dataBytes
  return { name, path, wav, pcm: wav.subarray(header.dataOffset, end), format: header.format, duration: truth.duration, speech, gaps: truth.gaps ?? [] }
}

export const FIXTURE_NAMES = readdirSync(AUDIO_DIR).filter((f) => f.endsWith('.wav')).map((f) => f.slice(0, -4)).sort()
