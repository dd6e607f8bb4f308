// The microphone's AudioWorklet processor: runs on the audio thread at the context's own rate
// (44.1 or 48 kHz, whatever the device runs at; the server resamples) and hands the main thread
// 16-bit little-endian PCM, one batch of `batchFrames` frames at a time (100 ms by default).
// The node is created with channelCount 1 and channelCountMode 'explicit', so Web Audio has
// already mixed the microphone down to mono: inputs[0][0] is the one channel.

// AudioWorkletGlobalScope's names, which TypeScript's DOM library does not describe.
const scope = /** @type {{ AudioWorkletProcessor: new () => { port: MessagePort }, registerProcessor: (name: string, processor: unknown) => void, sampleRate: number }} */ (/** @type {unknown} */ (globalThis))

class CaptureProcessor extends scope.AudioWorkletProcessor {
  /** @param {{ processorOptions?: { batchFrames?: number } }} options */
  constructor (options) {
    super()
    this.batchFrames = options.processorOptions?.batchFrames ?? Math.round(scope.sampleRate / 10)
    this.batch = new DataView(new ArrayBuffer(this.batchFrames * 2))
    this.filled = 0
    this.running = true
    // 'flush': send what is batched now, then 'flushed'; the main thread stops the node after.
    this.port.onmessage = (/** @type {MessageEvent} */ message) => {
      if (message.data !== 'flush') return
      this.post(this.filled)
      this.port.postMessage('flushed')
      this.running = false
    }
  }

  /** @param {number} frames */
  post (frames) {
    if (frames === 0) return
    const buffer = this.batch.buffer.slice(0, frames * 2)
    this.port.postMessage(buffer, [buffer])
    this.filled = 0
  }

  /** @param {Float32Array[][]} inputs */
  process (inputs) {
    const samples = inputs[0]?.[0]
    if (samples !== undefined && this.running) {
      for (let i = 0; i < samples.length; i++) {
        const v = Math.max(-1, Math.min(1, samples[i] ?? 0))
        this.batch.setInt16(this.filled * 2, Math.round(v < 0 ? v * 0x8000 : v * 0x7fff), true)
        if (++this.filled === this.batchFrames) this.post(this.filled)
      }
    }
    return this.running
  }
}

scope.registerProcessor('capture', CaptureProcessor)
