import { Type, type Static } from '@sinclair/typebox'

// The server's configuration: defaults here, then config.json (or the file STREAMER_CONFIG
// names), then environment variables (see src/config.ts). Durations in the names' units.
// Every object refuses fields it does not know (additionalProperties: false), so a typo fails
// start-up with the field's path instead of being silently ignored; model.options is the one
// free-form object, since only the model module knows its options.
export const DummyModelOptions = Type.Object({
  delay: Type.Number({ minimum: 0, default: 0.5, description: 'Seconds added to every inference' }),
  constant_factor: Type.Number({ minimum: 0, default: 0.3, description: 'Seconds of sleep per second of audio' }),
  jitter: Type.Number({ minimum: 0, default: 0.2, description: 'Uniform +- seconds added to the sleep' }),
  failure_rate: Type.Number({ minimum: 0, maximum: 1, default: 0.01, description: 'Probability an inference returns an error' }),
  panic_rate: Type.Number({ minimum: 0, maximum: 1, default: 0, description: 'Probability an inference crashes its worker' }),
  warmup_penalty: Type.Number({ minimum: 1, default: 10, description: 'How many times slower the first call of each worker is' })
}, { $id: 'DummyModelOptions', additionalProperties: false, description: 'The built-in dummy model\'s options (model.options when model.module is "dummy")' })
export type DummyModelOptions = Static<typeof DummyModelOptions>

export const ModelConfig = Type.Object({
  module: Type.String({ default: 'dummy', description: '"dummy", or a path (relative to the config file) to a module exporting createModel' }),
  threads: Type.Integer({ minimum: 1, default: 2, description: 'Worker threads running the model' }),
  options: Type.Record(Type.String(), Type.Unknown(), { default: {}, description: 'Passed to createModel; for the dummy, DummyModelOptions' }),
  timeout_seconds: Type.Number({ minimum: 0.1, default: 30, description: 'Deadline of one inference: past it the span gets inference_timeout, and the thread running it is terminated and replaced (the default fits the dummy\'s slowest call, about 10 s for a 30 s utterance, three times over)' })
}, { $id: 'ModelConfig', additionalProperties: false, description: 'The model behind the server and its worker pool' })
export type ModelConfig = Static<typeof ModelConfig>

export const VadConfig = Type.Object({
  threshold: Type.Number({ minimum: 0, maximum: 1, default: 0.5, description: 'Speech probability that starts speech' }),
  min_silence_ms: Type.Integer({ minimum: 0, default: 500, description: 'Silence that ends an utterance' }),
  speech_pad_ms: Type.Integer({ minimum: 0, default: 30, description: 'Audio kept before speech start and after speech end' }),
  threads: Type.Integer({ minimum: 1, default: 2, description: 'Worker threads running Silero VAD; a second takes a task only while the first is busy, and keeps the VAD from falling behind near saturation' })
}, { $id: 'VadConfig', additionalProperties: false, description: 'Silero VAD, which cuts the audio into utterances' })
export type VadConfig = Static<typeof VadConfig>

export const LimitsConfig = Type.Object({
  max_channels: Type.Integer({ minimum: 1, default: 8, description: 'Channels per stream' }),
  max_sessions: Type.Integer({ minimum: 1, default: 500, description: 'Open sessions on all transports together; more are refused with too_many_sessions' }),
  max_frame_bytes: Type.Integer({ minimum: 1024, default: 1048576, description: 'Largest WebSocket frame or HTTP chunk' }),
  max_upload_bytes: Type.Integer({ minimum: 1024, default: 1073741824, description: 'Largest HTTP upload body' }),
  max_utterance_seconds: Type.Number({ minimum: 1, default: 30, description: 'A longer utterance is finalised and a new one begins' }),
  interim_interval_ms: Type.Integer({ minimum: 50, default: 500, description: 'Interim inference period during speech' }),
  simple_max_in_flight: Type.Integer({ minimum: 1, default: 2, description: 'Concurrent inferences per channel in simple mode' }),
  simple_max_chunk_seconds: Type.Number({ minimum: 0.1, default: 30, description: 'Largest merged inference in simple mode' }),
  idle_timeout_seconds: Type.Number({ minimum: 0.1, default: 15, description: 'A stream that receives no audio and no keepalive for this long ends with idle_timeout (its results for the audio received are sent first); a WebSocket with no stream is closed after it too' }),
  max_stream_seconds: Type.Number({ minimum: 1, default: 14400, description: 'Seconds of audio one stream may carry; then it ends with max_duration' }),
  max_buffered_seconds: Type.Number({ minimum: 0.5, default: 10, description: 'Audio received but not yet through the VAD and the model that one stream may make the server hold; past it the server stops reading that stream (TCP backpressure; a paired chunk gets 429 rate_limited) until the work drains' }),
  max_outbound_bytes: Type.Integer({ minimum: 1024, default: 1048576, description: 'Events one client may leave unread; past it interim segments are dropped (counted in end), and a final that would be dropped ends the stream with slow_consumer' }),
  ping_interval_seconds: Type.Number({ minimum: 0.1, default: 20, description: 'The server pings each WebSocket this often and closes one that did not answer the previous ping' }),
  max_sessions_per_ip: Type.Integer({ minimum: 0, default: 0, description: 'Open sessions per client address (0: no per-address cap); more are refused with too_many_sessions' }),
  max_sessions_per_key: Type.Integer({ minimum: 0, default: 0, description: 'Open sessions per API key, those opened with its tokens included (0: no per-key cap); more are refused with too_many_sessions' }),
  max_streams_per_connection: Type.Integer({ minimum: 1, default: 100, description: 'Concurrent HTTP/2 streams per connection (advertised in SETTINGS and enforced)' })
}, { $id: 'LimitsConfig', additionalProperties: false, description: 'Sizes, counts and periods that bound each stream and the server' })
export type LimitsConfig = Static<typeof LimitsConfig>

// Paired sessions (POST audio chunks by session id, read events from an EventSource).
export const PairedConfig = Type.Object({
  linger_ms: Type.Integer({ minimum: 0, default: 30000, description: 'How long an ended session still answers its events URL (replaying what a reader missed) before its id gives 404' }),
  replay_events: Type.Integer({ minimum: 16, default: 1000, description: 'Events kept per session for Last-Event-ID replay' }),
  reorder_window: Type.Integer({ minimum: 1, default: 64, description: 'How many chunks past the highest contiguous seq may be held waiting for a gap to fill' }),
  reorder_max_bytes: Type.Integer({ minimum: 1024, default: 8388608, description: 'Largest total of chunks held waiting for a gap to fill' }),
  max_readers: Type.Integer({ minimum: 1, default: 4, description: 'Simultaneous events readers per session (each gets the whole stream)' }),
  cors_origins: Type.Array(Type.String(), { default: ['*'], description: 'Origins allowed to call the routes a browser page uses (paired sessions, the HTTP upload): "*" or exact origins like "https://app.example.com". Left unset with auth on: none' })
}, { $id: 'PairedConfig', default: {}, additionalProperties: false, description: 'Paired sessions: audio POSTed in chunks by session id, events read from an EventSource' })
export type PairedConfig = Static<typeof PairedConfig>

// Scale-out: with redis_url the instance joins a cluster of instances sharing one Redis
// (paired sessions served by any instance, cluster-wide session limits, failover).
export const ClusterConfig = Type.Object({
  redis_url: Type.Optional(Type.String({ minLength: 1, description: 'redis://host:port of the Redis the instances share (env REDIS_URL). Unset: a single instance, no Redis needed' })),
  instance_id: Type.Optional(Type.String({ minLength: 1, pattern: '^[A-Za-z0-9_.-]+$', description: 'This instance\'s name in the cluster (metrics, ownership). Unset: a random one at start-up' })),
  key_prefix: Type.String({ minLength: 1, default: 'streamer', description: 'Prefix of every Redis key the cluster uses, so several clusters can share one Redis' }),
  heartbeat_ms: Type.Integer({ minimum: 50, default: 1000, description: 'How often an instance renews its heartbeat and publishes its session counts' }),
  claim_timeout_ms: Type.Integer({ minimum: 200, default: 5000, description: 'An instance whose heartbeat is this old is dead: its sessions are claimed by another instance and its counts no longer count' }),
  audio_retention_chunks: Type.Integer({ minimum: 16, default: 100000, description: 'Audio chunks kept per paired session in Redis, so another instance can rebuild the session after a failure; a session that sent more cannot be rebuilt and ends with audio_retention_exceeded' })
}, { $id: 'ClusterConfig', default: {}, additionalProperties: false, description: 'Scale-out: several instances sharing one Redis' })
export type ClusterConfig = Static<typeof ClusterConfig>

export const ShutdownConfig = Type.Object({
  drain_seconds: Type.Number({ minimum: 0, default: 20, description: 'On SIGTERM/SIGINT open streams are drained (told, finalised, end sent) for at most this long; then what is still open is ended with shutting_down and the process exits. The default fits in Kubernetes\' 30 s grace period' })
}, { $id: 'ShutdownConfig', default: {}, additionalProperties: false, description: 'Graceful shutdown' })
export type ShutdownConfig = Static<typeof ShutdownConfig>

// Authentication: off with no keys (the server is open, and says so at start-up), on with one.
export const AuthConfig = Type.Object({
  api_keys: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'API keys a client sends as Authorization: Bearer <key>; each the key itself or "sha256:<64 hex digits>", the SHA-256 of the key. Empty: no authentication, every route is open' }),
  token_secret: Type.Optional(Type.String({ minLength: 32, description: 'Signs the short-lived tokens of POST /api/v1/tokens (HMAC-SHA256); instances with the same secret accept each other\'s tokens. Unset: a random secret made at start-up, so tokens do not survive a restart or work on another instance' })),
  token_max_ttl_seconds: Type.Integer({ minimum: 1, maximum: 86400, default: 3600, description: 'Longest lifetime a token may be asked for (expires_in; 60 s when not asked)' }),
  max_failures: Type.Integer({ minimum: 1, default: 10, description: 'Requests with bad credentials one address may make within failure_window_seconds; then its requests are refused with rate_limited (429, Retry-After) until the window has passed' }),
  failure_window_seconds: Type.Number({ minimum: 1, default: 60, description: 'The sliding window max_failures counts in' }),
  sessions_per_minute_per_key: Type.Integer({ minimum: 1, default: 600, description: 'Sessions one API key (with its tokens) may open per minute; more are refused with rate_limited (429, Retry-After)' })
}, { $id: 'AuthConfig', default: {}, additionalProperties: false, description: 'Authentication: API keys for servers, short-lived signed tokens for browsers' })
export type AuthConfig = Static<typeof AuthConfig>

export const MetricsConfig = Type.Object({
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Serve /metrics on this port (on the same host) instead of the API port; 0: any free port' })),
  require_auth: Type.Boolean({ default: true, description: 'With auth on, /metrics (on either port) needs an API key; false leaves it open, say on a port only Prometheus can reach' })
}, { $id: 'MetricsConfig', default: {}, additionalProperties: false, description: 'The Prometheus endpoint' })
export type MetricsConfig = Static<typeof MetricsConfig>

// pino's levels; 'silent' turns logging off.
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export const ServerConfig = Type.Object({
  host: Type.String({ default: '0.0.0.0', description: 'Listen address' }),
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'Listen port (0: any free port)' }),
  log_level: Type.Union(LOG_LEVELS.map((level) => Type.Literal(level)), { default: 'info', description: 'Lowest pino level logged; debug (or trace) also prints the stack of a start-up error' }),
  tls_key: Type.Optional(Type.String({ description: 'Path to a PEM key; with tls_cert the port speaks TLS (h2 and http/1.1)' })),
  tls_cert: Type.Optional(Type.String({ description: 'Path to the PEM certificate (chain) for tls_key' })),
  model: ModelConfig,
  vad: VadConfig,
  limits: LimitsConfig,
  paired: PairedConfig,
  cluster: ClusterConfig,
  shutdown: ShutdownConfig,
  auth: AuthConfig,
  metrics: MetricsConfig
}, { $id: 'ServerConfig', additionalProperties: false, description: 'The server\'s configuration (config.json)' })
export type ServerConfig = Static<typeof ServerConfig>
