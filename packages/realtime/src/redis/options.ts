import type { Redis } from 'ioredis'
import type { BusMessage, HistoryOptions } from '../bus/types.js'
import type { RedisBusClusterOptions } from './cluster.js'
import type { FlowControlOptions } from './flow.js'

/** Options of `RedisBus`. */
export interface RedisBusOptions {
  /** Redis URL (`redis://host:port/db`). Ignored when `redis` is given. Default `redis://127.0.0.1:6379`. */
  url?: string
  /**
   * Caller-supplied connections: `pub` runs commands, `sub` is put in subscriber mode (ioredis cannot
   * run ordinary commands on a subscribed connection). The bus does not close them.
   */
  redis?: { pub: Redis; sub: Redis }
  /**
   * A Redis Cluster instead of one Redis (`url`/`redis` are then not allowed): the bus opens an
   * ioredis `Cluster` for its scripts and one sharded subscriber connection per primary, and closes
   * them in `close()`. Flow control is not available on a Cluster (see the docs).
   */
  cluster?: RedisBusClusterOptions
  /** Prefix of every key and channel the bus uses. Default `'rt:'`. */
  prefix?: string
  history?: HistoryOptions
  /** Longest wait for a publish (including a wait for the connection); then `BUS_UNAVAILABLE`. Default 2000. */
  publishTimeoutMs?: number
  /** Called when a listener throws; the other listeners still get the message. Default: console.error. */
  onListenerError?: (error: unknown, message: BusMessage) => void
  /**
   * Publisher backpressure: `publish` waits while the instances receiving this bus's messages are
   * further behind than `targetLagMs` (see the docs). `false` turns it off: publishes then only
   * wait for Redis, and a publisher faster than delivery queues in Redis and in the receivers.
   * Default: on, `{ targetLagMs: 100 }`; off (and not allowed) with `cluster`.
   */
  flowControl?: FlowControlOptions | false
}
