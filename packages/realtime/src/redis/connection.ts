import type { Cluster, Redis, RedisOptions } from 'ioredis'
import type { BusStatus } from '../bus/types.js'
import { RealtimeError } from '../errors.js'

/**
 * Connection options under which a command fails fast while Redis is down instead of waiting in an
 * offline queue: the bus then answers `BUS_UNAVAILABLE` within its bound. Used for the connections
 * the bus creates from `url`; recommended for caller-supplied ones.
 */
export const REDIS_BUS_CONNECTION_OPTIONS: RedisOptions = {
  enableOfflineQueue: false,
  // A command in flight when the connection drops is failed, not replayed: a replayed publish could
  // land after the caller was told it failed.
  maxRetriesPerRequest: 0,
  commandTimeout: 5000,
  retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
}

/** A connection the bus runs commands on: one Redis, or a Cluster (both emit 'ready' and have a `status`). */
export type CommandConnection = Redis | Cluster

/** One wait per connection for its next 'ready', shared by every call that waits meanwhile. */
const readiness = new WeakMap<CommandConnection, Promise<void>>()

function whenReady(connection: CommandConnection): Promise<void> {
  let ready = readiness.get(connection)
  if (!ready) {
    ready = new Promise<void>((resolve) =>
      connection.once('ready', () => {
        readiness.delete(connection)
        resolve()
      }),
    )
    readiness.set(connection, ready)
  }
  return ready
}

/**
 * Runs Redis calls within a time bound, waiting for a connection that is (re)connecting first:
 * with the offline queue off, a call on a connection that is not ready would fail at once, also
 * just after the bus was created. Every failure becomes a `RealtimeError`.
 */
export class Deadlines {
  /** Rejecters of the calls in progress, so that closing the bus ends them at once. */
  private readonly inProgress = new Set<(error: RealtimeError) => void>()

  constructor(readonly timeoutMs: number) {}

  /**
   * Runs `call` once `connection` is ready (at once without one: `call` then waits itself) and
   * `gate`, when it returns a promise, has settled (the failover check), all within the bound;
   * else `BUS_UNAVAILABLE`.
   */
  async run<T>(
    what: string,
    connection: CommandConnection | undefined,
    call: () => Promise<T>,
    gate?: () => Promise<void> | undefined,
  ): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined
    let abort: ((error: RealtimeError) => void) | undefined
    // Once the caller was told it failed, a call still waiting for the connection must never run.
    let over = false
    const deadline = new Promise<never>((_, reject) => {
      abort = reject
      this.inProgress.add(reject)
      timer = setTimeout(
        () => reject(new RealtimeError('BUS_UNAVAILABLE', `Redis did not answer the ${what} within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      )
    })
    const attempt = (async () => {
      if (connection && connection.status !== 'ready') {
        await whenReady(connection)
        if (over) throw new RealtimeError('BUS_UNAVAILABLE', `the ${what} was given up`)
      }
      const waiting = gate?.()
      if (waiting) {
        await waiting
        if (over) throw new RealtimeError('BUS_UNAVAILABLE', `the ${what} was given up`)
      }
      return call()
    })()
    try {
      return await Promise.race([attempt, deadline])
    } catch (error) {
      if (error instanceof RealtimeError) throw error
      throw new RealtimeError('BUS_UNAVAILABLE', `Redis failed the ${what}: ${(error as Error).message}`, { cause: error })
    } finally {
      over = true
      clearTimeout(timer)
      if (abort) this.inProgress.delete(abort)
      // The attempt may still settle after the deadline; its outcome is already reported.
      attempt.catch(() => {})
    }
  }

  /** Ends every call in progress with `error`. */
  abortAll(error: RealtimeError): void {
    for (const abort of [...this.inProgress]) abort(error)
  }
}

/** Closes a connection the bus opened: politely when it is up, at once otherwise. */
export async function quit(connection: CommandConnection): Promise<void> {
  if (connection.status === 'end') return
  if (connection.status !== 'ready') {
    connection.disconnect()
    return
  }
  await connection.quit().catch(() => connection.disconnect())
}

/**
 * Whether a bus's two sides (commands, subscriptions) are both ready: `'up'`, else `'down'`.
 * `update` (on each connection event) tells the listeners of a real change only; after `stop`, nothing.
 */
export class PairStatus {
  private readonly listeners = new Set<(status: BusStatus) => void>()
  private stopped = false
  current: BusStatus

  constructor(
    private readonly pub: { readonly status: string },
    private readonly sub: { readonly status: string },
  ) {
    this.current = this.read()
  }

  /** Learns of each change; returns the function that stops it. */
  listen(listener: (status: BusStatus) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  update(): void {
    if (this.stopped) return
    const status = this.read()
    if (status === this.current) return
    this.current = status
    for (const listener of this.listeners) listener(status)
  }

  stop(): void {
    this.stopped = true
    this.listeners.clear()
  }

  private read(): BusStatus {
    return this.pub.status === 'ready' && this.sub.status === 'ready' ? 'up' : 'down'
  }
}
