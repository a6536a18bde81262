import type { RedisOptions } from 'ioredis'
import { REDIS_BUS_CONNECTION_OPTIONS } from './connection.js'

/** Where a `RedisBus` finds its primary through Redis Sentinel (the `sentinel` option). */
export interface RedisSentinelOptions {
  /** Some or all of the sentinels (ioredis asks them in turn, and learns the others from them). */
  sentinels: { host: string; port: number }[]
  /** The name the sentinels monitor the primary under (`sentinel monitor <name> …`). */
  name: string
  /** Password (and `username`, for an ACL user) of the Redis nodes. */
  password?: string
  username?: string
  /** Password (and user) of the sentinels themselves, when they require one. */
  sentinelPassword?: string
  sentinelUsername?: string
  /** Database number. Default 0. */
  db?: number
}

/** Whether a Redis error says the node is a replica now (a demoted primary refuses writes). */
export function isReadOnlyError(error: Error): boolean {
  return error.message.startsWith('READONLY') || error.message.includes('READONLY You can')
}

/**
 * The ioredis options of a bus connection through Sentinel: the bus's fail-fast options
 * (`REDIS_BUS_CONNECTION_OPTIONS`), plus
 * - `failoverDetector`: each connection also subscribes to `+switch-master` on the sentinels and
 *   drops its link the moment they promote another node, instead of waiting for the old primary to
 *   die or close it;
 * - `reconnectOnError` on `READONLY`: a connection that still reaches a demoted primary (a replica
 *   now) reconnects, asking the sentinels again; the command that got the error fails (it is not
 *   replayed), so its publish rejects with `BUS_UNAVAILABLE`;
 * - `role: 'master'` (ioredis checks the node's role on every connect and tries again otherwise).
 */
export function sentinelConnectionOptions(sentinel: RedisSentinelOptions, connectionName: string): RedisOptions {
  return {
    ...REDIS_BUS_CONNECTION_OPTIONS,
    sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
    name: sentinel.name,
    role: 'master',
    ...(sentinel.password === undefined ? {} : { password: sentinel.password }),
    ...(sentinel.username === undefined ? {} : { username: sentinel.username }),
    ...(sentinel.sentinelPassword === undefined ? {} : { sentinelPassword: sentinel.sentinelPassword }),
    ...(sentinel.sentinelUsername === undefined ? {} : { sentinelUsername: sentinel.sentinelUsername }),
    db: sentinel.db ?? 0,
    failoverDetector: true,
    // Asking the sentinels again right away, then backing off to 1 s while none answers.
    sentinelRetryStrategy: (times) => Math.min(50 * times, 1000),
    reconnectOnError: (error) => isReadOnlyError(error),
    connectionName,
  }
}

/** Whether caller-supplied ioredis connections go through Sentinel. */
export function usesSentinel(options: RedisOptions): boolean {
  return Array.isArray(options.sentinels) && options.sentinels.length > 0
}
