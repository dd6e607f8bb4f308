import type { AudioFormat } from '../../schemas/audio-format.ts'

// What stream-file.ts needs of the audio it sends, whether a WAV file (wav-file.ts) or stdin
// (stdin-audio.ts): the format for the start message, the audio in whole frames, and a way
// to hash the start of what was sent (proof of delivery when the server took only part of it).
export interface AudioSource {
  name: string // for messages: the file's path, or "stdin"
  format: AudioFormat
  bytesPerFrame: number
  // A file: its data chunk, known up front. stdin: what was read so far (the length of a pipe
  // is known only at its end).
  readonly dataBytes: number
  readonly duration: number // seconds, of dataBytes
  // Null while unknown (stdin before its end): the progress line then shows no total.
  readonly totalSeconds: number | null
  chunks: (chunkFrames: number) => AsyncGenerator<Uint8Array>
  // Hex SHA-256 of the first `bytes` bytes of the audio (at most dataBytes), or null if the
  // source cannot say any more (stdin keeps only a bounded window of what it sent).
  sha256Of: (bytes: number) => Promise<string | null>
  close: () => Promise<void>
}
