import type { Redis } from 'ioredis'
import type { BusMessage, HistoryOptions } from '../bus/types.js'
import type { FailoverCheckOptions } from './failover.js'
import type { RedisBusClusterOptions } from './cluster.js'
import type { FlowControlOptions } from './flow.js'
import type { ReplicaAckOptions } from './replicas.js'
import type { RedisSentinelOptions } from './sentinel.js'

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
   * Find the primary through Redis Sentinel instead of `url`: the bus opens its two connections
   * with `sentinels` and `name`, follows each failover to the new primary, and checks there what
   * the old one confirmed (`failoverCheck`). Ignored when `redis` is given.
   */
  sentinel?: RedisSentinelOptions
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
  /**
   * Presence: how long the members held by an instance that stopped (a crash, a SIGKILL) stay
   * listed. Each instance renews a lease every third of it. Default 30 000 ms.
   */
  presenceTtlMs?: number
  /**
   * After the command connection comes back to another primary (a new `run_id`: a failover),
   * hold publishes and history reads until the bus has checked that the new primary holds the
   * last position of each topic it published to or delivered; a topic where one is missing (lost in
   * the asynchronous replication window) gets a new epoch and its subscribers resync, on every
   * instance. Default: on with `sentinel` (or caller-supplied connections that use Sentinel), off
   * otherwise. `false` turns it off.
   */
  failoverCheck?: FailoverCheckOptions | boolean
  /**
   * Confirm a publish only once `replicas` replicas have it (Redis `WAIT`, one per turn of the
   * event loop for the publishes sent in it), so that a confirmed publish survives a failover. A
   * publish they do not acknowledge within `timeoutMs` rejects with `BUS_UNAVAILABLE` (it may still
   * have reached subscribers). `true`: one replica, half of `publishTimeoutMs`. Default: off.
   */
  replicaAck?: ReplicaAckOptions | boolean
}
