import { isRealtimeError } from '../errors.js'
import type { PublishOptions } from '../bus/types.js'
import type { Position } from '../topics.js'
import { LatencyHistogram, type LatencyStats } from '../server/latency.js'
import type { Logger } from '../server/types.js'
import type { OutboxRow, OutboxStore } from './types.js'

/** What the relay publishes through: a realtime server (`createRealtimeServer`). */
export interface OutboxPublisher {
  publishTopics(topics: readonly never[], payload: never, options?: PublishOptions): Promise<Position[]>
}

export interface OutboxRelayOptions {
  /** The outbox to relay (`postgresOutbox`, `sqliteOutbox`). */
  outbox: OutboxStore
  /** The realtime server the rows are published through. */
  realtime: OutboxPublisher
  /** Rows taken per batch. Default 100. */
  batchSize?: number
  /**
   * Longest time between two looks at the table even when nothing woke the relay (a lost
   * `LISTEN` connection, another process's SQLite writes). Default 1000 ms.
   */
  pollMs?: number
  /** Wait before trying again after the bus refused a publish. Default 500 ms. */
  retryMs?: number
  logger?: Logger
}

/** Counters and gauges of a relay (also in the app's metrics). */
export interface OutboxRelayStats {
  /** Rows published (a row to several topics counts once). */
  published: number
  /** Rows dropped because the server refused them for good (invalid topic or payload). */
  dropped: number
  /** Times a batch was given back because the bus was unavailable. */
  failures: number
  /** Rows waiting at the last look (`refreshBacklog`, and after each batch). */
  backlog: number
  /** Age of the oldest waiting row at the last look, in ms (0 when none). */
  oldestAgeMs: number
  /** Seconds from a row's insert to its publish confirmed by the bus. */
  publishLatency: LatencyStats
}

const silent: Logger = { info() {}, warn() {}, error() {} }

/**
 * Publishes committed outbox rows to the bus, in id order, then deletes them. Started by
 * `createOutboxRelay`. A row is published with an idempotency key made of the table, its id and
 * its insert time: after a crash between the publish and the delete, the row is published again
 * and the bus answers the repeat without publishing it, so subscribers see it once (within the
 * bus's history age).
 */
export class OutboxRelay {
  private readonly outbox: OutboxStore
  private readonly realtime: OutboxPublisher
  private readonly batchSize: number
  private readonly pollMs: number
  private readonly retryMs: number
  private readonly logger: Logger
  private readonly latency = new LatencyHistogram()
  private counters = { published: 0, dropped: 0, failures: 0, backlog: 0, oldestAt: undefined as number | undefined }
  private running: Promise<void> | undefined
  /** Set when a wake came while a pass was running: one more pass follows. */
  private again = false
  /** Set by a pass that gave its rows back (the bus or the database refused): look again after `retryMs`. */
  private failed = false
  private closed = false
  private timer: ReturnType<typeof setTimeout> | undefined
  private unwatch: (() => Promise<void>) | undefined

  constructor(options: OutboxRelayOptions) {
    this.outbox = options.outbox
    this.realtime = options.realtime
    this.batchSize = Math.max(1, Math.floor(options.batchSize ?? 100))
    this.pollMs = Math.max(10, options.pollMs ?? 1000)
    this.retryMs = Math.max(10, options.retryMs ?? 500)
    this.logger = options.logger ?? silent
  }

  /** @internal Watches the outbox and makes the first pass (rows left by a crash go out now). */
  async start(): Promise<void> {
    this.unwatch = await this.outbox.watch(() => this.wake())
    await this.wake()
  }

  /** Runs a pass now (or one more after the running one); resolves when the passes are done. */
  wake(): Promise<void> {
    if (this.closed) return Promise.resolve()
    if (this.running) {
      this.again = true
      return this.running
    }
    this.running = (async () => {
      try {
        do {
          this.again = false
          this.failed = false
          await this.pass()
        } while (this.again && !this.closed)
      } finally {
        this.running = undefined
        this.schedule(this.failed ? this.retryMs : this.pollMs)
      }
    })()
    return this.running
  }

  stats(): OutboxRelayStats {
    const { published, dropped, failures, backlog, oldestAt } = this.counters
    return {
      published,
      dropped,
      failures,
      backlog,
      oldestAgeMs: oldestAt === undefined ? 0 : Math.max(0, Date.now() - oldestAt),
      publishLatency: this.latency.snapshot(),
    }
  }

  /** Counts the rows waiting now (for a health check that must not wait for the next batch). */
  async refreshBacklog(): Promise<OutboxRelayStats> {
    const backlog = await this.outbox.backlog()
    this.counters.backlog = backlog.rows
    this.counters.oldestAt = backlog.oldestAt
    return this.stats()
  }

  /** Stops watching; a batch in progress finishes (its rows are deleted or left for the next relay). */
  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.timer)
    await this.unwatch?.()
    await this.running?.catch(() => {})
  }

  private schedule(ms: number): void {
    if (this.closed) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.wake(), ms)
    this.timer.unref?.()
  }

  /** Batches until the table is empty, another relay holds it, or the bus refuses. */
  private async pass(): Promise<void> {
    while (!this.closed) {
      let batch
      try {
        batch = await this.outbox.claim(this.batchSize)
      } catch (error) {
        this.logger.warn({ err: error, outbox: this.outbox.name }, 'realtime outbox: could not read the outbox')
        this.failed = true
        return
      }
      if (batch === undefined) return
      if (batch.rows.length === 0) {
        await batch.done().catch(() => {})
        this.counters.backlog = 0
        this.counters.oldestAt = undefined
        return
      }
      let sent = 0
      try {
        for (const row of batch.rows) {
          if (await this.publish(row)) this.counters.published++
          else this.counters.dropped++
          sent++
        }
      } catch (error) {
        this.counters.failures++
        this.logger.warn({ err: error, outbox: this.outbox.name, rows: batch.rows.length, sent }, 'realtime outbox: publish failed; retrying')
        // The rows stay; what was published goes again, and the bus drops the repeats.
        await batch.abandon().catch(() => {})
        this.failed = true
        this.again = false
        return
      }
      try {
        await batch.done()
      } catch (error) {
        // The rows stay (the delete did not commit): the next pass publishes them again, and the
        // bus drops the repeats by their keys.
        this.counters.failures++
        this.logger.warn({ err: error, outbox: this.outbox.name, rows: batch.rows.length }, 'realtime outbox: could not delete published rows; retrying')
        this.failed = true
        this.again = false
        return
      }
      if (batch.rows.length < this.batchSize) {
        // Every row there was is out (a row committed meanwhile has woken the relay again).
        this.counters.backlog = 0
        this.counters.oldestAt = undefined
        return
      }
      const left = await this.outbox.backlog().catch(() => undefined)
      if (left) {
        this.counters.backlog = left.rows
        this.counters.oldestAt = left.oldestAt
      }
    }
  }

  /** Publishes one row; false when the server refuses it for good (it is then dropped, and logged). */
  private async publish(row: OutboxRow): Promise<boolean> {
    let payload: unknown
    try {
      payload = JSON.parse(row.payload)
    } catch (error) {
      this.logger.error({ err: error, outbox: this.outbox.name, id: row.id }, 'realtime outbox: row payload is not JSON; dropped')
      return false
    }
    try {
      const id = `outbox:${this.outbox.name}:${row.id}:${Math.round(row.createdAt * 1000)}`
      await this.realtime.publishTopics(row.topics as never[], payload as never, { id })
    } catch (error) {
      if (isRealtimeError(error) && (error.code === 'INVALID_TOPIC' || error.code === 'INVALID_PAYLOAD')) {
        this.logger.error({ err: error, outbox: this.outbox.name, id: row.id, topics: row.topics }, 'realtime outbox: row refused; dropped')
        return false
      }
      throw error
    }
    this.latency.observe(Math.max(0, Date.now() - row.createdAt) / 1000)
    return true
  }
}

/** Starts a relay for `outbox` (see `OutboxRelay`); resolves once its first pass is done. */
export async function createOutboxRelay(options: OutboxRelayOptions): Promise<OutboxRelay> {
  const relay = new OutboxRelay(options)
  await relay.start()
  return relay
}
