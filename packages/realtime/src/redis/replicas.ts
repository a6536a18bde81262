import type { Redis } from 'ioredis'
import { RealtimeError } from '../errors.js'

/** Options of `RedisBus`'s `replicaAck`: confirm a publish only once replicas have it. */
export interface ReplicaAckOptions {
  /** Replicas that must have acknowledged the publish. Default 1. */
  replicas?: number
  /**
   * Longest wait for them, in milliseconds; then the publish rejects with `BUS_UNAVAILABLE`.
   * Default: half of `publishTimeoutMs`.
   */
  timeoutMs?: number
}

/**
 * `WAIT` after publishes, so that a confirmed publish survives a failover: the promoted replica
 * has it. One `WAIT` covers every write sent before it on the connection, so the publishes sent
 * in one turn of the event loop share one: it is sent after them, in the next turn (`WAIT` blocks
 * the connection in Redis until it returns, so one per publish would cost a replication round
 * trip each).
 *
 * A `WAIT` that times out cannot undo the publish: the message is in the primary's stream and
 * reached the instances subscribed there. The publish rejects all the same ("unknown", as for a
 * timeout): the caller may retry, and if the primary then fails over, the failover check makes
 * the subscribers resync.
 */
export class ReplicaAck {
  private next: Promise<number> | undefined

  constructor(
    private readonly pub: Redis,
    readonly replicas: number,
    readonly timeoutMs: number,
  ) {}

  /** The wait a bus's `replicaAck` option asks for, or undefined when it is off. */
  static of(option: ReplicaAckOptions | boolean | undefined, pub: Redis, publishTimeoutMs: number): ReplicaAck | undefined {
    if (!option) return undefined
    const { replicas, timeoutMs } = option === true ? ({} as ReplicaAckOptions) : option
    return new ReplicaAck(pub, Math.max(1, Math.floor(replicas ?? 1)), Math.max(1, Math.floor(timeoutMs ?? publishTimeoutMs / 2)))
  }

  /** Call right after sending a write on `pub`: resolves once enough replicas have it. */
  async confirmed(): Promise<void> {
    if (!this.next) {
      this.next = new Promise<number>((resolve, reject) =>
        setImmediate(() => {
          this.next = undefined
          this.pub.wait(this.replicas, this.timeoutMs).then(resolve, reject)
        }),
      )
    }
    const acknowledged = await this.next
    if (acknowledged < this.replicas) {
      throw new RealtimeError(
        'BUS_UNAVAILABLE',
        `only ${acknowledged} of ${this.replicas} replicas acknowledged the publish within ${this.timeoutMs} ms: it reached the primary, but a failover may lose it`,
      )
    }
  }
}
