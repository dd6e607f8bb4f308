import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseWavHeader } from '../../src/audio/wav-header.ts'
import { eachTransport, streamOk as streamOkAt, TRANSPORTS } from '../helpers/cli-runner.ts'
import { loadFixture, type Fixture } from '../helpers/fixtures.ts'
import { startServer } from '../helpers/server.ts'
import { assertSegmentedMatchesTruth, assertSimpleCoversAudio } from '../helpers/speech-assertions.ts'

// The CLI reads every common PCM WAV, as sox writes them, and the server hears the same speech
// in each: the results are checked against the fixture's true speech regions.
const server = await startServer()
t.teardown(() => server.close())
const dir = mkdtempSync(join(tmpdir(), 'streamer-cli-formats-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
// Every run is verified: the server took exactly the data chunk's bytes (sha256), whatever the format.
const streamOk = (t: Parameters<typeof streamOkAt>[0], args: string[], fixture: Fixture): ReturnType<typeof streamOkAt> =>
  streamOkAt(t, server.http, args, { bytes: fixture.pcm.length })

// A fixture written again by sox in another sample format, read back as the tests read fixtures.
function soxVariant (base: Fixture, name: string, soxArgs: string[]): Fixture {
  const path = join(dir, `${base.name}-${name}.wav`)
  execFileSync('sox', [base.path, ...soxArgs, path])
  const wav = new Uint8Array(readFileSync(path))
  const header = parseWavHeader(wav)
  if (header.status !== 'ok') throw new Error(`sox wrote an unreadable ${name} WAV: ${header.status}`)
  const frameBytes = header.format.channels * header.format.bit_depth / 8
  const dataBytes = header.dataBytes ?? wav.length - header.dataOffset
  const pcm = wav.subarray(header.dataOffset, header.dataOffset + dataBytes - dataBytes % frameBytes)
  return { ...base, name: `${base.name} as ${name}`, path, wav, pcm, format: header.format }
}

// Every common PCM WAV: sox writes 24/32-bit as WAVE_FORMAT_EXTENSIBLE, and a fact chunk in all
// but 8/16-bit PCM. The stereo 44.1 kHz dialogue makes each one a two-channel, resampled stream.
interface Header { extensible: boolean, fact: boolean }
const FORMATS: Array<[string, string[], Record<string, unknown>, Header]> = [
  ['u8', ['-e', 'unsigned-integer', '-b', '8'], { bit_depth: 8, is_float: false }, { extensible: false, fact: false }],
  ['s16', ['-e', 'signed-integer', '-b', '16'], { bit_depth: 16, is_float: false }, { extensible: false, fact: false }],
  ['s24', ['-e', 'signed-integer', '-b', '24'], { bit_depth: 24, is_float: false }, { extensible: true, fact: true }],
  ['s32', ['-e', 'signed-integer', '-b', '32'], { bit_depth: 32, is_float: false }, { extensible: true, fact: true }],
  ['f32', ['-e', 'floating-point', '-b', '32'], { bit_depth: 32, is_float: true }, { extensible: false, fact: true }],
  ['f64', ['-e', 'floating-point', '-b', '64'], { bit_depth: 64, is_float: true }, { extensible: false, fact: true }],
  ['mu-law', ['-e', 'u-law'], { bit_depth: 8, encoding: 'mulaw' }, { extensible: false, fact: true }],
  ['A-law', ['-e', 'a-law'], { bit_depth: 8, encoding: 'alaw' }, { extensible: false, fact: true }]
]

// What the header really holds: the fmt code (0xFFFE is WAVE_FORMAT_EXTENSIBLE) and a fact chunk.
function headerOf (wav: Uint8Array): Header {
  const view = new DataView(wav.buffer, wav.byteOffset, wav.byteLength)
  const front = Buffer.from(wav.subarray(0, 128)).toString('latin1')
  return { extensible: view.getUint16(20, true) === 0xfffe, fact: front.includes('fact') }
}

const dialogue = loadFixture('dialogue_44k_stereo')
FORMATS.forEach(([format, soxArgs, expected, header], i) => {
  const variant = soxVariant(dialogue, format, soxArgs)
  t.test(`a ${format} WAV written by sox`, async (t) => {
    t.match(variant.format, expected, 'sox wrote the format under test')
    t.same(headerOf(variant.wav), header, `the header is as sox writes ${format}`)
    // Simple mode once per format, on each transport in turn, beside the segmented runs.
    const simpleOn = TRANSPORTS[i % TRANSPORTS.length] as string
    await Promise.all([
      eachTransport(async (transport) => {
        assertSegmentedMatchesTruth(t, await streamOk(t, ['--transport', transport, variant.path], variant), variant)
      }),
      streamOk(t, ['--transport', simpleOn, '--mode', 'simple', variant.path], variant).then((events) => { assertSimpleCoversAudio(t, events, variant) })
    ])
  })
})
