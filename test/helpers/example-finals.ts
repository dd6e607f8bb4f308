import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import type { Fixture } from './fixtures.ts'
import { END_TOLERANCE, START_TOLERANCE } from './speech-assertions.ts'

// The examples in examples/ print each final as `final ch<channel> <start>-<end> [output]`;
// these read those lines back and hold them to a fixture's true speech regions.
export interface PrintedFinal { channel: number, start: number, end: number, rest: string }

export function printedFinals (stdout: string): PrintedFinal[] {
  const finals: PrintedFinal[] = []
  for (const line of stdout.split('\n')) {
    const match = /^final ch(\d+) (\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)(?: (.*))?$/.exec(line)
    if (match !== null) finals.push({ channel: Number(match[1]), start: Number(match[2]), end: Number(match[3]), rest: match[4] ?? '' })
  }
  return finals
}

// One printed final per true utterance, per channel, within the tolerance the other e2e tests use.
export function assertFinalsMatchTruth (t: Test, finals: PrintedFinal[], fixture: Fixture, channels = fixture.speech.length): void {
  for (let channel = 0; channel < channels; channel++) {
    const regions = fixture.speech[channel] ?? []
    const got = finals.filter((f) => f.channel === channel)
    t.equal(got.length, regions.length, `${fixture.name} ch${channel}: one final per utterance (${JSON.stringify(got.map((f) => [f.start, f.end]))})`)
    regions.forEach(([start, end], i) => {
      const final = got[i]
      if (final === undefined) return
      t.ok(Math.abs(final.start - start) <= START_TOLERANCE, `${fixture.name} ch${channel} #${i}: start ${final.start} vs ${start}`)
      t.ok(Math.abs(final.end - end) <= END_TOLERANCE, `${fixture.name} ch${channel} #${i}: end ${final.end} vs ${end}`)
    })
  }
  t.equal(finals.filter((f) => f.channel >= channels).length, 0, 'no final on a channel the audio does not have')
}

export interface ExampleRun { code: number | null, stdout: string, stderr: string }

// An example run as its README shows it: a child process, killed if it hangs.
export function runExample (command: string, args: string[], options: { cwd?: string } = {}): Promise<ExampleRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: options.cwd })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text })
    child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 60000)
    child.once('error', reject)
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}
