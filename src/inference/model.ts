// The contract between the server and a model. A model module exports `createModel` (named or
// default export); each worker thread calls it once and then calls `infer` for every segment.
// Inference may block its thread (the dummy does, as a real CPU-bound model would): it runs in
// a worker thread, never on the server's event loop.

// JSON-serialisable fields; they are flattened into the `segment` event for the audio that was
// inferred (the dummy returns { count }). Fields the protocol owns (type, channel, start_time,
// end_time, is_final) win over model fields of the same name.
export type ModelOutput = Record<string, unknown>

export interface Model {
  // `audio`: 16 kHz mono samples in [-1, 1]. Throwing reports an `inference_failed` error for
  // this segment (the message is shown to the client) and the stream goes on.
  infer (audio: Float32Array): ModelOutput | Promise<ModelOutput>
}

// `options` is config.json's model.options, as is; validate it here and throw with a clear
// message, which then fails server start-up.
export type CreateModel = (options: Record<string, unknown>) => Model | Promise<Model>
