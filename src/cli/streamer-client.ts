#!/usr/bin/env node
// streamer-client: streams a WAV file to a streamer server over WebSocket, HTTP/2 or a paired
// session and prints the results as they arrive. `node src/cli/streamer-client.ts --help`.
import { CliError, EXIT_REFUSED } from './cli-error.ts'
import { parseOptions, USAGE } from './options.ts'
import { streamFile } from './stream-file.ts'

// Once the outcome is known nothing may keep the process alive: a socket the server never
// closes or a stray timer must not make the CLI hang. This timer is unref'd, so it fires only
// if something else still holds the event loop.
const EXIT_GRACE_MS = 1000

async function main (): Promise<number> {
  try {
    const options = parseOptions(process.argv.slice(2))
    if (options === null) {
      process.stdout.write(USAGE)
      return 0
    }
    return await streamFile(options, { stdout: process.stdout, stderr: process.stderr })
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`streamer-client: ${error.message}\n`)
      return error.exitCode
    }
    process.stderr.write(`streamer-client: unexpected failure: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    return EXIT_REFUSED
  }
}

// `| head` closing stdout early is not an error of ours.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0)
})

const code = await main()
process.exitCode = code
setTimeout(() => { process.exit(code) }, EXIT_GRACE_MS).unref()
