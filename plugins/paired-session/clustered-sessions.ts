import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ServerConfig } from '../../schemas/config.ts'
import { ApiError } from '../../schemas/error-codes.ts'
import type { StreamEvent } from '../../schemas/events.ts'
import type { Mode } from '../../schemas/messages.ts'
import { ErrorReply } from 'redis'
import { command, connect, entries, Script, type RedisConnection } from '../../src/cluster/connection.ts'
import { Membership } from '../../src/cluster/membership.ts'
import { ReplayFilter, type PublishedEntry } from '../../src/cluster/replay-filter.ts'
import { SessionStore } from '../../src/cluster/session-store.ts'
import type { Streamer } from '../../src/core/streamer.ts'
import type { Stream } from '../../src/core/stream.ts'
import { openEventStream, type EventStream } from '../event-stream.ts'
import type { AudioAck, StopAck } from './paired-session.ts'

// Paired sessions across instances (cluster.redis_url). Any instance answers any request: the
// chunk reordering is a Lua script on the session's Redis hash (src/cluster/session-store.ts),
// so the ack is the same wherever the POST lands. One instance, the owner, runs the session's
// pipeline: it consumes the session's audio stream (chunks in seq order, then stop/finalize/
// keepalive entries) and publishes every event to the events stream with its event id as the
// entry id. Readers on any instance replay from Last-Event-ID with XRANGE and follow with XREAD.
// When an owner's heartbeat expires, another instance claims the session, replays its audio
// stream from the start into a fresh pipeline and publishes only the events the previous owner
// had not (src/cluster/replay-filter.ts recognises them), numbered on from its last id.

// Gives up a session this instance owns (not one another instance has claimed meanwhile).
const RELEASE = new Script(`
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('HSET', KEYS[1], 'owner', '') end
return 0
`)

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface OwnedOptions {
  id: string
  mode: Mode
  startJson: string
  key: string | undefined
  client: string | undefined
  published: PublishedEntry[] // what a previous owner published (none for a new session)
  lastId: number // the last id published
}

// An events reader that takes nothing for this long is closed (it can resume with Last-Event-ID).
const READER_STALL_MS = 15000

export class ClusterNode {
  readonly membership: Membership
  readonly store: SessionStore
  readonly #config: ServerConfig
  readonly #streamer: Streamer
  readonly #client: RedisConnection // requests: fails fast while Redis is down
  readonly #publisher: RedisConnection // events and owner state: queued over a disconnect
  readonly #owned = new Map<string, Owned>()
  readonly #log: (message: string, error?: unknown) => void
  #timer: NodeJS.Timeout | null = null
  #beatOk = false
  #closing = false
  #leaving = false // handing its sessions over (SIGTERM): it claims and creates none
  #ticking = false
  readonly #starting = new Set<string>() // being created or rebuilt here, not yet in #owned
  #claimsFrom = 0 // no claims before this time (see #tick)
  readonly #blocking = new Set<RedisConnection>()
  readonly #readers = new Map<string, string>() // member in s:<id>:readers -> session id
  readonly #readerStreams = new Set<EventStream>()
  readonly #admitting = new Map<symbol, string | undefined>() // admitted, not yet in the registry: their keys
  #readerCount = 0

  private constructor (streamer: Streamer, client: RedisConnection, publisher: RedisConnection, log: (message: string, error?: unknown) => void) {
    this.#streamer = streamer
    this.#config = streamer.config
    this.#client = client
    this.#publisher = publisher
    this.#log = log
    this.membership = new Membership(client, this.#config.cluster)
    this.store = new SessionStore(client, this.membership.prefix)
  }

  static async start (streamer: Streamer, log: (message: string, error?: unknown) => void): Promise<ClusterNode> {
    const url = streamer.config.cluster.redis_url as string
    const onError = (error: unknown): void => { log('redis connection error', error) }
    const client = await connect({ url, queueWhileOffline: false, onError })
    const publisher = await connect({ url, queueWhileOffline: true, onError })
    const node = new ClusterNode(streamer, client, publisher, log)
    await node.#tick()
    node.#timer = setInterval(() => { void node.#tick() }, streamer.config.cluster.heartbeat_ms)
    node.#timer.unref()
    return node
  }

  get ready (): boolean { return this.#client.isReady && this.#beatOk }
  get ownedCount (): number { return this.#owned.size }
  // The live members and their session counts as of the last heartbeat, for /metrics.
  members: ReadonlyMap<string, number> = new Map()

  // Heartbeat with this instance's counts, then look for sessions whose owner died. One at a
  // time: a slow one (a rebuild) must not let a later heartbeat's counts be overwritten by its.
  async #tick (): Promise<void> {
    if (this.#ticking) return
    this.#ticking = true
    try {
      await this.#beatAndClaim()
    } catch (error) {
      this.#beatOk = false
      // After Redis was unreachable every heartbeat may have lapsed, live instances' too: no
      // claims until they have had claim_timeout_ms to beat again, or two would run a session.
      this.#claimsFrom = Date.now() + this.#config.cluster.claim_timeout_ms
      this.#log('cluster heartbeat failed', error)
    } finally {
      this.#ticking = false
    }
  }

  async #beatAndClaim (): Promise<void> {
    const perKey = new Map<string, number>()
    const count = (key: string | undefined): void => { if (key !== undefined) perKey.set(key, (perKey.get(key) ?? 0) + 1) }
    for (const stream of this.#streamer.registry.entries()) count(stream.key)
    // Admitted but not open yet: counted too, or a heartbeat in between would forget them.
    for (const key of this.#admitting.values()) count(key)
    await this.membership.beat({ total: this.#streamer.registry.size + this.#admitting.size, perKey })
    await this.store.renewReaders(this.#readers, this.#config.cluster.claim_timeout_ms)
    this.#beatOk = true
    this.members = await this.membership.members()
    // A session another instance claimed while this one could not beat (a long Redis outage,
    // a process paused past claim_timeout_ms) is stopped here, silently: the claimer runs it.
    const owned = [...this.#owned.keys()]
    const owners = await this.store.ownersOf(owned)
    for (const [index, id] of owned.entries()) {
      const owner = owners[index]
      if (owner !== this.membership.id && owner !== '') {
        this.#log(`paired session ${id} was claimed by ${String(owner)}: stopped here`)
        this.#owned.get(id)?.depose()
      }
    }
    if (this.#closing || this.#leaving || !this.#streamer.ready || Date.now() < this.#claimsFrom) return
    for (const id of await this.store.openIds()) {
      if (this.#owned.has(id) || this.#starting.has(id)) continue
      const stored = await this.store.get(id)
      if (stored === null) { await command(this.#client, ['SREM', this.store.sessionsKey, id]); continue }
      // Ours in Redis but not running here (a rebuild that failed, a claim handed to us): run it.
      if (stored.owner !== this.membership.id) {
        if (await this.membership.isAlive(stored.owner)) continue
        if (!await this.store.claim(id, this.membership.id)) continue
        this.#log(`claimed paired session ${id} from ${stored.owner === '' ? 'an instance that handed it over' : stored.owner}`)
      }
      this.#starting.add(id)
      try {
        await this.#rebuild(id, stored.mode as Mode, stored.start, stored.key)
      } finally {
        this.#starting.delete(id)
      }
    }
  }

  async #rebuild (id: string, mode: Mode, startJson: string, key: string | undefined): Promise<void> {
    const published = (await this.store.allEvents(id)).map(([entryId, fields]): PublishedEntry & { id: number } => ({
      id: Number(entryId.split('-')[0]),
      event: JSON.parse(fields.e ?? '{}') as StreamEvent,
      kindCount: fields.k === undefined ? undefined : Number(fields.k)
    }))
    const lastId = published.at(-1)?.id ?? 0
    const first = entries(await command(this.#client, ['XRANGE', this.store.audioKey(id), '-', '+', 'COUNT', 1]))[0]
    if (first?.[1].t !== 'start') {
      // The audio from the start is no longer all kept: the session cannot be rebuilt.
      const event: StreamEvent = { type: 'error', channel: null, code: 'audio_retention_exceeded', message: `The instance running this session stopped and its audio was no longer all kept (cluster.audio_retention_chunks = ${this.#config.cluster.audio_retention_chunks}), so it could not be rebuilt; start a new session` }
      await this.publish(id, lastId + 1, event, 1)
      await this.markEnded(id, 'audio_retention_exceeded')
      return
    }
    this.own({ id, mode, startJson, key, client: undefined, published, lastId })
  }

  // Runs the session's pipeline here. Throws what openStream throws (limits).
  own (options: OwnedOptions): void {
    if (this.#leaving) throw new ApiError('shutting_down', 'This instance is restarting and takes no new sessions; create it again (the balancer sends it to another instance)')
    const owned: Owned = new Owned(this, this.#streamer, options, () => { if (this.#owned.get(options.id) === owned) this.#owned.delete(options.id) })
    this.#owned.set(options.id, owned)
    try {
      owned.open()
    } catch (error) {
      this.#owned.delete(options.id)
      throw error
    }
  }

  // Retried until Redis has it: a command in flight when the connection drops fails (it is not
  // queued again), and Redis may or may not have applied it. XADD with the event's own id is
  // idempotent: a retry of an applied one is refused as "equal or smaller", which means done.
  // `k`: the event is the k-th of its kind in the session (see replay-filter.ts).
  async publish (id: string, eventId: number, event: StreamEvent, kindCount: number): Promise<void> {
    await this.#retried(['XADD', this.store.eventsKey(id), 'MAXLEN', String(this.#config.paired.replay_events), `${eventId}-1`, 'e', JSON.stringify(event), 'k', String(kindCount)])
  }

  async #retried (args: string[]): Promise<void> {
    for (let attempt = 0; !this.#closing; attempt++) {
      try {
        await this.#publisher.sendCommand(args)
        return
      } catch (error) {
        if (error instanceof ErrorReply) {
          if (!error.message.includes('equal or smaller')) this.#log('publishing an event failed', error)
          return
        }
        await sleep(Math.min(50 * (attempt + 1), 500))
      }
    }
  }

  // SIGTERM in a cluster: the paired sessions running here are handed to the other instances
  // rather than drained, so a rolling restart does not end them. Each stops taking audio and
  // publishing; what it published is kept, its ownership is released (owner ''), and another
  // instance claims it at its next heartbeat (not claim_timeout_ms later) and rebuilds it from
  // the audio kept in Redis, as after a crash. Returns how many were handed over. Call it before
  // the streamer's drain, which then has only this instance's WebSocket and upload streams.
  async handOver (): Promise<number> {
    this.#leaving = true
    const owned = [...this.#owned.values()]
    await Promise.all(owned.map(async (session) => { await session.release() }))
    return owned.length
  }

  async releaseOwnership (id: string): Promise<void> {
    await RELEASE.run(this.#client, [this.store.hashKey(id)], [this.membership.id]).catch((error: unknown) => {
      // Redis is unreachable: the session is claimed once this instance's heartbeat expires.
      this.#log(`releasing paired session ${id} failed`, error)
    })
  }

  logError (message: string, error: unknown): void { this.#log(message, error) }

  async markEnded (id: string, endedBy: string | undefined): Promise<void> {
    await this.#retried(['HSET', this.store.hashKey(id), 'state', 'ended', 'ended_by', endedBy ?? ''])
    await this.#retried(['SREM', this.store.sessionsKey, id])
    // Everything is kept for linger_ms (readers collect what they missed), then expires.
    const ttl = String(Math.max(this.#config.paired.linger_ms, 1))
    for (const key of this.store.keysOf(id)) await this.#retried(['PEXPIRE', key, ttl])
  }

  async ownerCommand (args: string[]): Promise<unknown> {
    return await this.#publisher.sendCommand(args)
  }

  // A connection of its own for one blocking XREAD.
  async blockingConnection (): Promise<RedisConnection> {
    const connection = this.#publisher.duplicate()
    connection.on('error', () => {})
    await connection.connect()
    this.#blocking.add(connection)
    return connection
  }

  release (connection: RedisConnection): void {
    this.#blocking.delete(connection)
    connection.destroy()
  }

  #dropReader (member: string, id: string): void {
    this.#readers.delete(member)
    void this.store.removeReader(id, member).catch(() => {}) // else it lapses after claim_timeout_ms
  }

  // Whether the reader's unread bytes fell to `limit` (at once, or before it stalled too long).
  async #drained (stream: EventStream, limit: number): Promise<boolean> {
    let unread = stream.bufferedBytes()
    let since = Date.now()
    while (!stream.closed && unread > limit) {
      if (Date.now() - since > READER_STALL_MS) return false
      await sleep(50)
      const now = stream.bufferedBytes()
      if (now < unread) since = Date.now() // it is reading, slowly
      unread = now
    }
    return true
  }

  // The instance is closing: its readers' responses end (EventSource resumes on another instance
  // with Last-Event-ID), so they do not hold the server's close.
  endReaders (): void {
    for (const stream of this.#readerStreams) stream.end()
  }

  async close (): Promise<void> {
    this.#closing = true
    if (this.#timer !== null) clearInterval(this.#timer)
    for (const owned of this.#owned.values()) owned.stopReading()
    for (const connection of this.#blocking) connection.destroy()
    this.#blocking.clear()
    await this.membership.leave().catch(() => {})
    this.#client.destroy()
    this.#publisher.destroy()
  }

  // WebSocket and upload streams need nothing from Redis, but they count against the cluster's
  // limits (limits.max_sessions, limits.max_sessions_per_key) as paired sessions do. While Redis
  // is unreachable they are admitted on this instance's own counts (openStream checks those):
  // refusing them would make a Redis outage an outage of the streams that do not use it, and
  // readiness is 503 meanwhile, so a balancer sends this instance little.
  // Returns `settle`, to call once the stream is open (it is in the registry then) or refused.
  async admit (key: string | undefined): Promise<() => void> {
    try {
      return await this.#reserve(key)
    } catch (error) {
      if (error instanceof ApiError && error.code === 'cluster_unavailable') return () => {}
      throw error
    }
  }

  // The slot counted in Redis at once, and here until the stream is open.
  async #reserve (key: string | undefined): Promise<() => void> {
    const limits = this.#config.limits
    const ticket = Symbol('admitting')
    this.#admitting.set(ticket, key)
    try {
      await this.membership.reserve(key, limits.max_sessions, limits.max_sessions_per_key)
    } catch (error) {
      this.#admitting.delete(ticket)
      throw error
    }
    return () => { this.#admitting.delete(ticket) }
  }

  // A session's mode, for a token scoped to one mode (the creating instance's memory is not
  // enough: any instance answers the session's routes). undefined: no such session.
  async modeOf (id: string): Promise<Mode | undefined> {
    return (await this.store.get(id))?.mode as Mode | undefined
  }

  // --- the routes' bodies ---

  async create (request: FastifyRequest, mode: Mode, startFields: Record<string, unknown>, key: string | undefined, id: string): Promise<void> {
    const settle = await this.#reserve(key)
    this.#starting.add(id)
    try {
      const startJson = JSON.stringify(startFields)
      await this.store.create(id, { start: startJson, mode, key, owner: this.membership.id, state: 'open' })
      try {
        this.own({ id, mode, startJson, key, client: request.ip, published: [], lastId: 0 })
      } catch (error) {
        await this.store.forget(id)
        throw error
      }
    } finally {
      this.#starting.delete(id)
      settle()
    }
  }

  async pushChunk (id: string, seq: number, bytes: Uint8Array): Promise<{ status: number, ack: AudioAck }> {
    const paired = this.#config.paired
    const result = await this.store.pushChunk(id, seq, bytes, { window: paired.reorder_window, maxBytes: paired.reorder_max_bytes, retention: this.#config.cluster.audio_retention_chunks })
    const ack: AudioAck = { accepted_seq: result.accepted, bytes: result.bytes, ...(result.held.length > 0 ? { buffered: result.held } : {}), ...(result.status === 'duplicate' ? { duplicate: true } : {}) }
    return { status: result.status === 'held' ? 202 : 200, ack }
  }

  async stop (id: string): Promise<StopAck> {
    const { accepted, discarded } = await this.store.stop(id)
    return { accepted_seq: accepted, ...(discarded.length > 0 ? { discarded } : {}) }
  }

  async control (id: string, type: 'finalize' | 'keepalive'): Promise<number> {
    return await this.store.control(id, type)
  }

  // GET .../events: replay after `lastId`, then follow, until `end` (or the session is gone).
  async events (request: FastifyRequest, reply: FastifyReply, id: string, lastId: number | null): Promise<FastifyReply> {
    const stored = await this.store.get(id)
    if (stored === null) throw new ApiError('not_found', 'No such session: the id is unknown, or the session ended and is no longer kept')
    const after = lastId ?? 0
    const last = await this.store.lastEventId(id)
    if (after > last) throw new ApiError('invalid_message', `Last-Event-ID ${after} is ahead of this session's last event (${last}); resume with an id this session sent`, { field: 'Last-Event-ID' })
    if (stored.state === 'ended' && after >= last) return await reply.code(204).send()
    const first = await this.store.firstEventId(id)
    const member = `${this.membership.id}:${++this.#readerCount}`
    await this.store.addReader(id, member, this.#config.paired.max_readers, this.#config.cluster.claim_timeout_ms)
    this.#readers.set(member, id)
    let connection: RedisConnection
    try {
      connection = await this.blockingConnection()
    } catch (error) {
      this.#dropReader(member, id)
      throw error
    }
    const stream = openEventStream(request, reply)
    this.#readerStreams.add(stream)
    void stream.done.then(() => {
      this.#readerStreams.delete(stream)
      this.release(connection)
      this.#dropReader(member, id)
    })
    const maxUnread = this.#config.limits.max_outbound_bytes
    void (async () => {
      let position = after
      if (first !== null && after + 1 < first) {
        stream.send({ type: 'error', channel: null, code: 'events_lost', message: `Events ${after + 1} to ${first - 1} are no longer in the replay buffer (it keeps the last ${this.#config.paired.replay_events}) and were lost` }, first - 1)
        position = first - 1
      }
      try {
        while (!stream.closed) {
          // The events wait in Redis, not here, while the reader has more than
          // limits.max_outbound_bytes unread; one that takes nothing for READER_STALL_MS is closed.
          if (!await this.#drained(stream, maxUnread)) {
            request.log.info({ session: id }, 'events reader not reading: closed')
            break
          }
          const reply = await connection.sendCommand(['XREAD', 'COUNT', '256', 'BLOCK', '2000', 'STREAMS', this.store.eventsKey(id), `${position}-1`]) as Array<[string, unknown]> | null
          if (reply === null) {
            if (await connection.sendCommand<number>(['EXISTS', this.store.hashKey(id)]) === 0) break
            continue
          }
          for (const [entryId, fields] of entries(reply[0]?.[1] as never)) {
            const eventId = Number(entryId.split('-')[0])
            position = eventId
            const event = JSON.parse(fields.e ?? '{}') as StreamEvent
            stream.send(event, eventId)
            if (event.type === 'end' || (event.type === 'error' && event.code === 'audio_retention_exceeded')) { stream.end(); return }
          }
        }
      } catch (error) {
        if (!stream.closed) this.#log('events reader failed', error)
      }
      stream.end()
    })()
    return reply
  }
}

// One session whose pipeline runs on this instance.
class Owned {
  readonly #node: ClusterNode
  readonly #streamer: Streamer
  readonly #options: OwnedOptions
  readonly #onGone: () => void
  #stream: Stream | null = null
  readonly #filter: ReplayFilter
  #lastId: number
  #publishing: Promise<void> = Promise.resolve()
  #muted = false // handed over: what the pipeline makes now is the claimer's to make again
  #reading = true
  #connection: RedisConnection | null = null

  constructor (node: ClusterNode, streamer: Streamer, options: OwnedOptions, onGone: () => void) {
    this.#node = node
    this.#streamer = streamer
    this.#options = options
    this.#onGone = onGone
    this.#filter = new ReplayFilter(options.published)
    this.#lastId = options.lastId
  }

  open (): void {
    const { id, mode, startJson, key, client } = this.#options
    const start = this.#streamer.startParser.fromValidated(JSON.parse(startJson) as Parameters<Streamer['startParser']['fromValidated']>[0])
    this.#stream = this.#streamer.openStream({
      transport: 'paired',
      mode,
      start,
      id,
      client,
      key,
      sink: {
        send: (event) => { this.#emit(event) },
        close: () => { this.stopReading() }
      }
    })
    // However the stream ends (its stop, a limit, an abort), this instance stops following it:
    // sink.close comes only when the server ends it.
    void this.#stream.closed.then(() => { this.stopReading() })
    void this.#consume()
  }

  // Stops here without ending the session: see ClusterNode.handOver.
  async release (): Promise<void> {
    this.depose()
    await this.#publishing
    await this.#node.releaseOwnership(this.#options.id)
  }

  // Another instance runs the session now: nothing more is taken or published here.
  depose (): void {
    this.#muted = true
    this.stopReading()
    this.#stream?.abort()
  }

  stopReading (): void {
    if (!this.#reading) return
    this.#reading = false
    if (this.#connection !== null) this.#node.release(this.#connection)
    // Forgotten once what it emitted is published (an `end` with its markEnded): until then the
    // heartbeat must not take the session for one that needs running here.
    void this.#publishing.then(() => { this.#onGone() })
  }

  // Numbered here, as the single-instance event log numbers them. After a failover, what the
  // previous owner published is recognised and not sent again; the rest is numbered on.
  #emit (event: StreamEvent): void {
    if (this.#muted || this.#filter.published(event)) return
    const eventId = ++this.#lastId
    const kindCount = this.#filter.countOf(event)
    const id = this.#options.id
    this.#publishing = this.#publishing.then(async () => {
      await this.#node.publish(id, eventId, event, kindCount)
      if (event.type === 'end') await this.#node.markEnded(id, this.#stream?.endedBy)
    }).catch((error: unknown) => { this.#node.logError(`publishing an event of paired session ${id} failed`, error) })
  }

  async #consume (): Promise<void> {
    const id = this.#options.id
    const stream = this.#stream as Stream
    let position = '0'
    try {
      this.#connection = await this.#node.blockingConnection()
      while (this.#reading) {
        let reply: Array<[string, unknown]> | null
        try {
          reply = await this.#connection.sendCommand(['XREAD', 'COUNT', '64', 'BLOCK', '1000', 'STREAMS', this.#node.store.audioKey(id), position]) as Array<[string, unknown]> | null
        } catch {
          if (!this.#reading) return
          await sleep(200)
          continue
        }
        if (reply === null) continue
        for (const [entryId, fields] of entries(reply[0]?.[1] as never)) {
          position = entryId
          await this.#apply(stream, fields)
          if (!this.#reading) return
        }
      }
    } catch (error) {
      if (this.#reading) stream.abort()
      void error
    }
  }

  async #apply (stream: Stream, fields: Record<string, string>): Promise<void> {
    switch (fields.t) {
      case 'a': {
        if (stream.paused) {
          await this.#node.ownerCommand(['HSET', this.#node.store.hashKey(this.#options.id), 'paused', '1']).catch(() => {})
          while (stream.paused && this.#reading) await sleep(20)
          await this.#node.ownerCommand(['HSET', this.#node.store.hashKey(this.#options.id), 'paused', '0']).catch(() => {})
        }
        if (stream.accepting) stream.pushAudio(Buffer.from(fields.d ?? '', 'base64'))
        break
      }
      case 'stop': {
        const discarded = (fields.discarded ?? '') === '' ? [] : (fields.discarded as string).split(',')
        if (discarded.length > 0) {
          this.#emit({ type: 'error', channel: null, code: 'audio_lost', message: `The stream ended with chunks ${discarded.join(', ')} held waiting for an earlier seq, which never arrived; they were discarded` })
        }
        void stream.finish().catch(() => { stream.abort() })
        break
      }
      case 'finalize': void stream.finalize().catch(() => { stream.abort() }); break
      case 'keepalive': if (stream.accepting) stream.keepalive(); break
    }
  }
}
