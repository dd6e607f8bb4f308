import { randomBytes } from 'node:crypto'
import type { ClusterConfig } from '../../schemas/config.ts'
import { ApiError } from '../../schemas/error-codes.ts'
import { command, Script, type RedisConnection } from './connection.ts'

// Cluster membership and cluster-wide admission. Each instance keeps, with a TTL of
// claim_timeout_ms renewed every heartbeat_ms: `hb:<instance>` (alive) and `load:<instance>`
// (its open sessions: `total` and `k:<key id>`). An instance that dies stops renewing: its
// counts expire with its heartbeat and its paired sessions are claimed (see the session store).

export interface LocalLoad { total: number, perKey: Map<string, number> }

// Sums the load of every live member (forgetting dead ones) and, when under the limits,
// counts one more session for this instance at once: two instances cannot both take the last slot.
const RESERVE = new Script(`
local prefix, me, key, maxTotal, maxKey, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local total, forKey = 0, 0
for _, member in ipairs(redis.call('SMEMBERS', prefix .. 'members')) do
  if redis.call('EXISTS', prefix .. 'hb:' .. member) == 1 then
    total = total + tonumber(redis.call('HGET', prefix .. 'load:' .. member, 'total') or '0')
    if key ~= '' then forKey = forKey + tonumber(redis.call('HGET', prefix .. 'load:' .. member, 'k:' .. key) or '0') end
  else
    redis.call('SREM', prefix .. 'members', member)
  end
end
if total >= maxTotal then return {'total', total} end
if key ~= '' and maxKey > 0 and forKey >= maxKey then return {'key', forKey} end
local load = prefix .. 'load:' .. me
redis.call('HINCRBY', load, 'total', 1)
if key ~= '' then redis.call('HINCRBY', load, 'k:' .. key, 1) end
redis.call('PEXPIRE', load, ttl)
return {'ok', total + 1}
`)

// Alive, and these are my counts now: one script, so an admission never sees the counts
// half rewritten (deleted, not yet set) and lets a session past the limit.
const BEAT = new Script(`
local prefix, me, now, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local load = prefix .. 'load:' .. me
redis.call('SET', prefix .. 'hb:' .. me, now, 'PX', ttl)
redis.call('SADD', prefix .. 'members', me)
redis.call('DEL', load)
for i = 5, #ARGV, 2 do redis.call('HSET', load, ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', load, ttl)
return 0
`)

export class Membership {
  readonly id: string
  readonly prefix: string
  readonly #config: ClusterConfig
  readonly #client: RedisConnection

  constructor (client: RedisConnection, config: ClusterConfig) {
    this.#client = client
    this.#config = config
    this.prefix = `${config.key_prefix}:`
    this.id = config.instance_id ?? `i-${randomBytes(6).toString('hex')}`
  }

  // Alive, and these are my sessions now (the local registry: every transport).
  async beat (load: LocalLoad): Promise<void> {
    const fields: Array<string | number> = ['total', load.total]
    for (const [key, count] of load.perKey) fields.push(`k:${key}`, count)
    await BEAT.run(this.#client, [], [this.prefix, this.id, Date.now(), this.#config.claim_timeout_ms, ...fields])
  }

  async isAlive (instance: string): Promise<boolean> {
    return await command(this.#client, ['EXISTS', `${this.prefix}hb:${instance}`]) === 1
  }

  // Throws too_many_sessions when the cluster (or the key) is at its limit.
  async reserve (key: string | undefined, maxSessions: number, maxPerKey: number): Promise<void> {
    const reply = await RESERVE.run(this.#client, [], [this.prefix, this.id, key ?? '', maxSessions, maxPerKey, this.#config.claim_timeout_ms]) as [string, number]
    if (reply[0] === 'total') throw new ApiError('too_many_sessions', `The cluster is at its limit of ${maxSessions} open sessions (limits.max_sessions, counted across instances); retry shortly`)
    if (reply[0] === 'key') throw new ApiError('too_many_sessions', `This API key has ${maxPerKey} open sessions across the cluster, the limit per key (limits.max_sessions_per_key); end one first`)
  }

  // Live members and their session counts, for /metrics.
  async members (): Promise<Map<string, number>> {
    const result = new Map<string, number>()
    const ids = await command(this.#client, ['SMEMBERS', `${this.prefix}members`]) as string[]
    for (const id of ids) {
      if (!await this.isAlive(id)) continue
      result.set(id, Number(await command(this.#client, ['HGET', `${this.prefix}load:${id}`, 'total']) ?? 0))
    }
    return result
  }

  async leave (): Promise<void> {
    await command(this.#client, ['DEL', `${this.prefix}hb:${this.id}`, `${this.prefix}load:${this.id}`])
    await command(this.#client, ['SREM', `${this.prefix}members`, this.id])
  }
}
