import { ApiError } from '../../schemas/error-codes.ts'
import { command, entries, Script, type RedisConnection, type StreamEntry } from './connection.ts'

// A paired session in Redis, so any instance can answer any of its requests:
//   s:<id>        hash: start (the create body, JSON), mode, key, owner, state (open, stopping,
//                 ended), stopped, ended_by, accepted (highest contiguous seq), bytes, paused
//   s:<id>:held   hash seq -> chunk (base64) held behind a gap
//   s:<id>:audio  stream: `start`, then chunks in seq order and control entries (stop,
//                 finalize, keepalive) in the order they were taken: what the owner consumes,
//                 and what a new owner replays from the start after a failover
//   s:<id>:events stream: the events, entry id `<event id>-1` so Last-Event-ID is a position
//   s:<id>:readers sorted set of the events readers open on any instance (member
//                 `<instance>:<n>`, score: when it lapses unless its instance renews it), so
//                 paired.max_readers holds across instances and a dead instance's readers lapse
//   sessions      set of the ids not ended yet (what failover looks through)
// The reordering is one Lua script: whichever instance gets a chunk, the ack is the same.

export interface ChunkAck { status: 'applied' | 'held' | 'duplicate', accepted: number, bytes: number, held: number[] }

const CHUNK = new Script(`
local h, held, audio = KEYS[1], KEYS[2], KEYS[3]
local seq, data, len, window, maxBytes, retention = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local s = redis.call('HMGET', h, 'state', 'accepted', 'bytes', 'paused', 'ended_by', 'stopped', 'held_bytes')
if not s[1] then return {'not_found'} end
local accepted, bytes, heldBytes = tonumber(s[2]), tonumber(s[3]), tonumber(s[7] or '0')
local function ack(status)
  local seqs = redis.call('HKEYS', held)
  local out = {status, accepted, bytes}
  for _, k in ipairs(seqs) do table.insert(out, tonumber(k)) end
  return out
end
if seq <= accepted or redis.call('HEXISTS', held, seq) == 1 then return ack('duplicate') end
if s[1] ~= 'open' then
  if s[6] == '1' then return {'stopped', accepted} end
  return {'ended', accepted, s[5] or 'ended'}
end
if s[4] == '1' then return {'paused', accepted} end
if seq == accepted + 1 then
  local function apply(n, d, l)
    redis.call('XADD', audio, 'MAXLEN', retention, '*', 't', 'a', 'seq', n, 'd', d)
    accepted = n
    bytes = bytes + l
  end
  apply(seq, data, len)
  local nextData = redis.call('HGET', held, accepted + 1)
  while nextData do
    redis.call('HDEL', held, accepted + 1)
    local l = math.floor(string.len(nextData) * 3 / 4)
    if string.sub(nextData, -2) == '==' then l = l - 2 elseif string.sub(nextData, -1) == '=' then l = l - 1 end
    heldBytes = heldBytes - l
    apply(accepted + 1, nextData, l)
    nextData = redis.call('HGET', held, accepted + 1)
  end
  redis.call('HSET', h, 'accepted', accepted, 'bytes', bytes, 'held_bytes', heldBytes)
  return ack('applied')
end
if seq > accepted + window then return {'too_far', accepted} end
if heldBytes + len > maxBytes then return {'too_many_bytes', accepted} end
redis.call('HSET', held, seq, data)
redis.call('HSET', h, 'held_bytes', heldBytes + len)
return ack('held')
`)

// stop: held chunks are dropped (reported), a stop entry queued for the owner. Idempotent.
const STOP = new Script(`
local h, held, audio = KEYS[1], KEYS[2], KEYS[3]
local s = redis.call('HMGET', h, 'state', 'accepted')
if not s[1] then return {'not_found'} end
if s[1] ~= 'open' then return {'ok', tonumber(s[2])} end
local seqs = redis.call('HKEYS', held)
table.sort(seqs, function (a, b) return tonumber(a) < tonumber(b) end)
redis.call('DEL', held)
redis.call('HSET', h, 'state', 'stopping', 'stopped', '1', 'held_bytes', 0)
redis.call('XADD', audio, '*', 't', 'stop', 'discarded', table.concat(seqs, ','))
local out = {'ok', tonumber(s[2])}
for _, k in ipairs(seqs) do table.insert(out, tonumber(k)) end
return out
`)

// finalize / keepalive: a control entry for the owner, while the session is open.
const CONTROL = new Script(`
local h, audio = KEYS[1], KEYS[2]
local s = redis.call('HMGET', h, 'state', 'accepted')
if not s[1] then return {'not_found'} end
if s[1] ~= 'open' then return {'closed', tonumber(s[2])} end
redis.call('XADD', audio, '*', 't', ARGV[1])
return {'ok', tonumber(s[2])}
`)

// The owner's heartbeat is gone: this instance takes the session (only one claimer wins).
const CLAIM = new Script(`
local h, prefix, me = KEYS[1], ARGV[1], ARGV[2]
local owner = redis.call('HGET', h, 'owner')
if not owner then return 0 end
if owner == me then return 0 end
if redis.call('EXISTS', prefix .. 'hb:' .. owner) == 1 then return 0 end
redis.call('HSET', h, 'owner', me, 'paused', '0')
return 1
`)

// A new events reader, unless the session (not ended yet) has max_readers live ones. Lapsed
// entries (their instance died) are dropped first; Redis's clock is the one every instance uses.
const READER = new Script(`
local h, readers, member, max, ttl = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HGET', h, 'state')
if not state then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', readers, '-inf', now)
local open = redis.call('ZCARD', readers)
if state ~= 'ended' and open >= max then return open end
redis.call('ZADD', readers, now + ttl, member)
-- An open session's keys expire after its end (markEnded); an ended one's are expiring already.
if state == 'ended' then
  local left = redis.call('PTTL', h)
  if left > 0 then redis.call('PEXPIRE', readers, left) end
end
return 0
`)

// Renews this instance's readers (those still listed).
const RENEW_READERS = new Script(`
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do redis.call('ZADD', key, 'XX', expires, ARGV[i + 1]) end
return 0
`)

const OWNERS = new Script(`
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGET', key, 'owner') end
return out
`)

export interface StoredSession {
  start: string // the create body's start fields, JSON
  mode: string
  key: string | undefined
  owner: string
  state: string
}

const NOT_FOUND = 'No such session: the id is unknown, or the session ended and is no longer kept'

export class SessionStore {
  readonly #client: RedisConnection
  readonly #prefix: string

  constructor (client: RedisConnection, prefix: string) {
    this.#client = client
    this.#prefix = prefix
  }

  hashKey (id: string): string { return `${this.#prefix}s:${id}` }
  audioKey (id: string): string { return `${this.#prefix}s:${id}:audio` }
  eventsKey (id: string): string { return `${this.#prefix}s:${id}:events` }
  #heldKey (id: string): string { return `${this.#prefix}s:${id}:held` }
  #readersKey (id: string): string { return `${this.#prefix}s:${id}:readers` }
  get sessionsKey (): string { return `${this.#prefix}sessions` }
  // Every key of a session: what expires after its end, or goes when it is forgotten.
  keysOf (id: string): string[] { return [this.hashKey(id), this.#heldKey(id), this.audioKey(id), this.eventsKey(id), this.#readersKey(id)] }

  async create (id: string, session: StoredSession): Promise<void> {
    await command(this.#client, ['HSET', this.hashKey(id), 'start', session.start, 'mode', session.mode, 'key', session.key ?? '', 'owner', session.owner, 'state', 'open', 'accepted', -1, 'bytes', 0])
    await command(this.#client, ['XADD', this.audioKey(id), '*', 't', 'start'])
    await command(this.#client, ['SADD', this.sessionsKey, id])
  }

  async get (id: string): Promise<StoredSession | null> {
    const [start, mode, key, owner, state] = await command(this.#client, ['HMGET', this.hashKey(id), 'start', 'mode', 'key', 'owner', 'state']) as Array<string | null>
    if (start === null || start === undefined) return null
    return { start, mode: mode ?? 'segmented', key: key === '' || key === null ? undefined : key, owner: owner ?? '', state: state ?? 'open' }
  }

  async pushChunk (id: string, seq: number, bytes: Uint8Array, limits: { window: number, maxBytes: number, retention: number }): Promise<ChunkAck> {
    const reply = await CHUNK.run(this.#client, [this.hashKey(id), this.#heldKey(id), this.audioKey(id)], [seq, Buffer.from(bytes).toString('base64'), bytes.length, limits.window, limits.maxBytes, limits.retention]) as Array<string | number>
    const [status, accepted] = reply as [string, number]
    switch (status) {
      case 'not_found': throw new ApiError('not_found', NOT_FOUND)
      case 'stopped': throw new ApiError('conflict', `The session was stopped after seq ${accepted}; it accepts no more audio`, { field: 'seq' })
      case 'ended': {
        const why = `seq ${seq} was not taken: the server ended this stream after seq ${accepted}`
        if (reply[2] === 'shutting_down') throw new ApiError('shutting_down', `${why} because it is restarting; start a new session to send the rest`, { field: 'seq' })
        throw new ApiError('conflict', `${why} (${String(reply[2])}, see its events); it accepts no more audio`, { field: 'seq' })
      }
      case 'paused': throw new ApiError('rate_limited', `Audio is arriving faster than the server works through it (limits.max_buffered_seconds): seq ${seq} was not taken; send it again after the Retry-After seconds`, { field: 'seq' })
      case 'too_far': throw new ApiError('conflict', `seq ${seq} is too far ahead: chunks up to seq ${accepted} are applied and at most ${limits.window} chunks past that are held (seq ${accepted + 1} to ${accepted + limits.window}); send seq ${accepted + 1} first`, { field: 'seq' })
      case 'too_many_bytes': throw new ApiError('conflict', `Holding seq ${seq} would keep more than ${limits.maxBytes} bytes waiting for seq ${accepted + 1}; send seq ${accepted + 1} first`, { field: 'seq' })
    }
    return { status: status as ChunkAck['status'], accepted, bytes: reply[2] as number, held: (reply.slice(3) as number[]).sort((a, b) => a - b) }
  }

  async stop (id: string): Promise<{ accepted: number, discarded: number[] }> {
    const reply = await STOP.run(this.#client, [this.hashKey(id), this.#heldKey(id), this.audioKey(id)], []) as Array<string | number>
    if (reply[0] === 'not_found') throw new ApiError('not_found', NOT_FOUND)
    return { accepted: reply[1] as number, discarded: reply.slice(2) as number[] }
  }

  async control (id: string, type: 'finalize' | 'keepalive'): Promise<number> {
    const reply = await CONTROL.run(this.#client, [this.hashKey(id), this.audioKey(id)], [type]) as [string, number]
    if (reply[0] === 'not_found') throw new ApiError('not_found', NOT_FOUND)
    if (reply[0] === 'closed' && type === 'finalize') throw new ApiError('conflict', 'The session was stopped; there is nothing left to finalize')
    return reply[1]
  }

  async setPaused (id: string, paused: boolean): Promise<void> {
    await command(this.#client, ['HSET', this.hashKey(id), 'paused', paused ? '1' : '0'])
  }

  async forget (id: string): Promise<void> {
    await command(this.#client, ['DEL', ...this.keysOf(id)])
    await command(this.#client, ['SREM', this.sessionsKey, id])
  }

  // Throws conflict when the session already has max readers (ended sessions take any number:
  // their readers only collect what is left).
  async addReader (id: string, member: string, max: number, ttlMs: number): Promise<void> {
    const open = await READER.run(this.#client, [this.hashKey(id), this.#readersKey(id)], [member, max, ttlMs]) as number
    if (open === -1) throw new ApiError('not_found', NOT_FOUND)
    if (open > 0) throw new ApiError('conflict', `This session already has ${open} events readers (paired.max_readers, counted across instances); close one first`)
  }

  async removeReader (id: string, member: string): Promise<void> {
    await command(this.#client, ['ZREM', this.#readersKey(id), member])
  }

  async renewReaders (readers: ReadonlyMap<string, string>, ttlMs: number): Promise<void> {
    if (readers.size === 0) return
    const keys: string[] = []
    const members: string[] = []
    for (const [member, id] of readers) { keys.push(this.#readersKey(id)); members.push(member) }
    await RENEW_READERS.run(this.#client, keys, [ttlMs, ...members])
  }

  async lastEventId (id: string): Promise<number> {
    const last = entries(await command(this.#client, ['XREVRANGE', this.eventsKey(id), '+', '-', 'COUNT', 1]))[0]
    return last === undefined ? 0 : Number(last[0].split('-')[0])
  }

  // Every event still kept (at most paired.replay_events), oldest first.
  async allEvents (id: string): Promise<StreamEntry[]> {
    return entries(await command(this.#client, ['XRANGE', this.eventsKey(id), '-', '+']))
  }

  async firstEventId (id: string): Promise<number | null> {
    const first = entries(await command(this.#client, ['XRANGE', this.eventsKey(id), '-', '+', 'COUNT', 1]))[0]
    return first === undefined ? null : Number(first[0].split('-')[0])
  }

  async openIds (): Promise<string[]> {
    return await command(this.#client, ['SMEMBERS', this.sessionsKey]) as string[]
  }

  // The owner of each session ('' when released, null when gone), in one round trip.
  async ownersOf (ids: string[]): Promise<Array<string | null>> {
    if (ids.length === 0) return []
    return await OWNERS.run(this.#client, ids.map((id) => this.hashKey(id)), []) as Array<string | null>
  }

  async claim (id: string, me: string): Promise<boolean> {
    return await CLAIM.run(this.#client, [this.hashKey(id)], [this.#prefix, me]) === 1
  }
}
