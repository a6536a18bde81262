import type { Redis, RedisOptions } from 'ioredis'
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

/**
 * Runs Redis calls within a time bound, waiting for a connection that is (re)connecting first:
 * with the offline queue off, a call on a connection that is not ready would fail at once, also
 * just after the bus was created. Every failure becomes a `RealtimeError`.
 */
export class Deadlines {
  /** Rejecters of the calls in progress, so that closing the bus ends them at once. */
  private readonly inProgress = new Set<(error: RealtimeError) => void>()

  constructor(private readonly timeoutMs: number) {}

  /** Runs `call` once `connection` is ready, all within the bound; else `BUS_UNAVAILABLE`. */
  async run<T>(what: string, connection: Redis, call: () => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined
    let stopWaiting: (() => void) | undefined
    let abort: ((error: RealtimeError) => void) | undefined
    const deadline = new Promise<never>((_, reject) => {
      abort = reject
      this.inProgress.add(reject)
      timer = setTimeout(
        () => reject(new RealtimeError('BUS_UNAVAILABLE', `Redis did not answer the ${what} within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      )
    })
    const attempt = (async () => {
      if (connection.status !== 'ready') {
        await new Promise<void>((resolve) => {
          connection.once('ready', resolve)
          stopWaiting = () => connection.off('ready', resolve)
        })
      }
      return call()
    })()
    try {
      return await Promise.race([attempt, deadline])
    } catch (error) {
      if (error instanceof RealtimeError) throw error
      throw new RealtimeError('BUS_UNAVAILABLE', `Redis failed the ${what}: ${(error as Error).message}`, { cause: error })
    } finally {
      clearTimeout(timer)
      if (abort) this.inProgress.delete(abort)
      stopWaiting?.()
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
export async function quit(connection: Redis): Promise<void> {
  if (connection.status === 'end') return
  if (connection.status !== 'ready') {
    connection.disconnect()
    return
  }
  await connection.quit().catch(() => connection.disconnect())
}
