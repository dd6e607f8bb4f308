import { createClient, ErrorReply } from 'redis'
import { ApiError } from '../../schemas/error-codes.ts'

// One node-redis connection, used through sendCommand only: the cluster needs a handful of
// stream commands and Lua scripts, and raw replies (RESP2 arrays) keep them simple to read.
export type RedisConnection = ReturnType<typeof createRespTwo>

function createRespTwo (url: string, queueWhileOffline: boolean) {
  return createClient({
    url,
    RESP: 2,
    disableOfflineQueue: !queueWhileOffline,
    // Reconnect forever, backing off to 500 ms: an instance rides out a Redis restart.
    socket: { reconnectStrategy: (retries: number) => Math.min(50 * (retries + 1), 500), connectTimeout: 2000 }
  })
}

export type Reply = string | number | null | Reply[]

export interface ConnectOptions {
  url: string
  // false for request-path connections: a command sent while Redis is unreachable fails at
  // once (the route answers 503 cluster_unavailable) instead of waiting in the offline queue.
  // true for the owner's event publisher: events queue during a disconnect and go out on
  // reconnect, in order, so none is lost.
  queueWhileOffline: boolean
  onError?: (error: unknown) => void
}

export async function connect (options: ConnectOptions): Promise<RedisConnection> {
  const client = createRespTwo(options.url, options.queueWhileOffline)
  // node-redis emits 'error' on every failed reconnect; unhandled, that would kill the process.
  client.on('error', (error: unknown) => { options.onError?.(error) })
  await client.connect()
  return client
}

export async function command (client: RedisConnection, args: Array<string | number>): Promise<Reply> {
  try {
    return await client.sendCommand(args.map(String)) as Reply
  } catch (error) {
    // A reply error is Redis refusing the command (a bug, NOSCRIPT): passed on. Anything else
    // (offline, socket closed, timeout) means Redis cannot be reached now.
    if (!(error instanceof ErrorReply)) {
      throw new ApiError('cluster_unavailable', 'This instance cannot reach the cluster\'s Redis now; retry shortly')
    }
    throw error
  }
}

// A Lua script by EVALSHA, loaded (again, after a Redis restart) when Redis does not know it.
export class Script {
  readonly #source: string
  #sha: string | null = null

  constructor (source: string) { this.#source = source }

  async run (client: RedisConnection, keys: string[], args: Array<string | number>): Promise<Reply> {
    if (this.#sha === null) this.#sha = await command(client, ['SCRIPT', 'LOAD', this.#source]) as string
    try {
      return await command(client, ['EVALSHA', this.#sha, keys.length, ...keys, ...args])
    } catch (error) {
      if (error instanceof Error && error.message.includes('NOSCRIPT')) {
        this.#sha = null
        return await this.run(client, keys, args)
      }
      throw error
    }
  }
}

// Entries of XRANGE/XREAD as [id, {field: value}].
export type StreamEntry = [string, Record<string, string>]

export function entries (reply: Reply): StreamEntry[] {
  if (!Array.isArray(reply)) return []
  return reply.map((entry) => {
    const [id, flat] = entry as [string, string[]]
    const fields: Record<string, string> = {}
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string
    return [id, fields]
  })
}
