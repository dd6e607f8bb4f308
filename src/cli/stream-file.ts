import type { Transport } from './transports/transport.ts'
import type { CliOptions } from './options.ts'
import { httpTransport } from './transports/http-transport.ts'
import { pairedTransport } from './transports/paired-transport.ts'
import { websocketTransport } from './transports/websocket-transport.ts'
import { CliError, EXIT_INTERRUPTED, EXIT_MISMATCH, EXIT_OK, EXIT_REFUSED } from './cli-error.ts'
import { SentAudio, verifyDelivery } from './delivery.ts'
import { RunStats } from './run-stats.ts'
import { TerminalDisplay } from './terminal-display.ts'
import type { AudioSource } from './audio-source.ts'
import { STDIN } from './options.ts'
import { openStdin } from './stdin-audio.ts'
import { describeFormat, openWav } from './wav-file.ts'

const TRANSPORT_IMPLEMENTATIONS: Record<CliOptions['transport'], Transport> = {
  websocket: websocketTransport,
  http: httpTransport,
  paired: pairedTransport
}

export interface Io {
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
}

// One run: open the WAV (a file, or stdin: a WAV stream or raw PCM), stream it over the chosen transport, show events, print the summary.
// Resolves with the exit code; a CliError carries its own.
export async function streamFile (options: CliOptions, io: Io): Promise<number> {
  const display = new TerminalDisplay({ json: options.json, quiet: options.quiet, acks: options.acks, stdout: io.stdout, stderr: io.stderr })
  const wav: AudioSource = options.file === STDIN ? await openStdin(process.stdin, options.rawFormat) : await openWav(options.file)
  const stats = new RunStats()
  const sent = new SentAudio()
  // The server is restarting (a `shutdown` event): it takes no more audio, so none is sent.
  let shutdown = false
  // Ctrl-C once: stop sending, let the server finish what it has (results, then `end`).
  // Twice: leave at once.
  let stopRequested = false
  const onSigint = (): void => {
    if (stopRequested) {
      display.failure('interrupted')
      process.exit(EXIT_INTERRUPTED)
    }
    stopRequested = true
    display.note('stopping: waiting for the results of the audio sent (Ctrl-C again to quit)')
  }
  process.on('SIGINT', onSigint)
  try {
    const end = await TRANSPORT_IMPLEMENTATIONS[options.transport]({
      base: options.url,
      mode: options.mode,
      format: wav.format,
      interimResults: options.interimResults,
      acks: options.acks,
      insecure: options.insecure,
      apiKey: options.apiKey,
      audio: pacedChunks(wav, options, stats, sent, display, () => stopRequested || shutdown),
      onEvent: (event) => {
        if (event.type === 'shutdown') shutdown = true
        stats.event(event)
        display.event(event)
      },
      onUploadEnd: () => { stats.uploadEnded() }
    })
    display.summary(stats.summary({
      transport: options.transport,
      mode: options.mode,
      audioSeconds: end.seconds_received[0] ?? wav.duration,
      format: describeFormat(wav.format),
      end,
      acks: options.acks ? { sentBytes: sent.bytes } : null
    }))
    const delivery = await verifyDelivery({ bytes: sent.bytes, sha256: sent.sha256() }, end, { shutdown, sha256OfFirst: wav.sha256Of })
    if (delivery.status !== 'unverified') display.delivery(delivery.line, delivery.status !== 'mismatch')
    if (delivery.status === 'mismatch') return EXIT_MISMATCH
    if (shutdown) {
      // Everything taken was answered, but the rest of the file never reached the model.
      const taken = delivery.status === 'partial' ? delivery.takenBytes : sent.bytes
      if (taken < wav.dataBytes) {
        const from = (Math.floor(taken / wav.bytesPerFrame) / wav.format.sample_rate).toFixed(2)
        const of = wav.name === 'stdin' ? `the ${wav.duration.toFixed(2)} s of audio read from stdin` : `the ${wav.duration.toFixed(2)} s of audio`
        display.failure(`the server shut down after taking ${from} of ${of}: the results for those were printed; stream the rest (from ${from} s) again, to a server that is not restarting`)
        return EXIT_REFUSED
      }
    }
    return EXIT_OK
  } catch (error) {
    display.close()
    // The server's logs and traces name the stream by its id: say it with the failure.
    const id = stats.sessionId
    if (error instanceof CliError && id !== null) throw new CliError(`${error.message} (session_id ${id})`, error.exitCode)
    throw error
  } finally {
    process.off('SIGINT', onSigint)
    await wav.close()
  }
}

// The data chunk in pieces of --chunk-ms; with --real-time each piece leaves no earlier than
// its own time in the audio (measured from the first), so the server sees a live source.
// Each chunk is counted and hashed as sent once the transport asks for the next one, i.e. once
// it was written: a chunk taken but never written (the stream ended meanwhile) is not.
async function * pacedChunks (wav: AudioSource, options: CliOptions, stats: RunStats, sent: SentAudio, display: TerminalDisplay, stopped: () => boolean): AsyncGenerator<Uint8Array> {
  const rate = wav.format.sample_rate
  const chunkFrames = Math.max(1, Math.round(rate * options.chunkMs / 1000))
  let framesSent = 0
  let t0 = 0
  display.progress(0, wav.totalSeconds, 0)
  for await (const chunk of wav.chunks(chunkFrames)) {
    if (stopped()) break
    if (framesSent === 0) {
      t0 = performance.now()
      stats.audioStarted()
    } else if (options.realTime) {
      const due = t0 + framesSent / rate * 1000
      const wait = due - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      if (stopped()) break
    }
    yield chunk
    // The transport asks for the next chunk once this one is written.
    sent.add(chunk)
    framesSent += chunk.length / wav.bytesPerFrame
    display.progress(framesSent / rate, wav.totalSeconds, sent.bytes)
  }
  if (framesSent === 0) stats.audioStarted()
}
