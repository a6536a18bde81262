import type { TopicMap, TopicName, TopicsPayload } from '../topics.js'
import { quoteTable, type OutboxBacklog, type OutboxBatch, type OutboxStore } from './types.js'

/** What the outbox needs of a `better-sqlite3` statement. */
export interface SqliteStatementLike {
  run(...params: unknown[]): unknown
  all(...params: unknown[]): unknown[]
  get(...params: unknown[]): unknown
}

/** What the outbox needs of a `better-sqlite3` `Database`. */
export interface SqliteDatabaseLike {
  prepare(sql: string): SqliteStatementLike
  exec(sql: string): unknown
}

export interface SqliteOutboxOptions {
  /** The app's `better-sqlite3` database: `add` runs inside the app's own transactions on it. */
  db: SqliteDatabaseLike
  /** The outbox table. Default `'realtime_outbox'`. */
  table?: string
}

interface Row {
  id: number
  topics: string
  payload: string
  created_at: number
}

/**
 * An outbox table in SQLite. The app calls `add(topics, payload)` inside its own transaction on
 * the same database (better-sqlite3's `db.transaction(…)`), so the row commits with the write or
 * not at all; the relay of this process is woken once the transaction is over (an in-process
 * write wakes it, no polling). SQLite commits one writer at a time, so id order is commit order.
 * Several processes on one file each run a relay over the same rows; the bus's idempotency keys
 * make each row reach subscribers once, and each relay goes in id order, so the order holds.
 */
export class SqliteOutbox<T extends TopicMap = TopicMap> implements OutboxStore {
  readonly name: string
  readonly table: string
  private readonly db: SqliteDatabaseLike
  private readonly quoted: string
  private readonly wakers = new Set<() => void>()
  private wakeScheduled = false
  private insert: SqliteStatementLike | undefined

  constructor(options: SqliteOutboxOptions) {
    this.table = options.table ?? 'realtime_outbox'
    this.quoted = quoteTable(this.table)
    this.name = this.table
    this.db = options.db
  }

  /** The migration `migrate` runs (shown in docs/outbox.md). */
  get migrationSql(): string {
    return `CREATE TABLE IF NOT EXISTS ${this.quoted} (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  topics     TEXT    NOT NULL,
  payload    TEXT    NOT NULL,
  created_at REAL    NOT NULL
)`
  }

  /** Creates the table when missing. */
  migrate(): void {
    this.db.exec(this.migrationSql)
  }

  /**
   * Records a publish; call it inside the transaction of the write it announces. The relay of this
   * process is woken after the current synchronous work (by then the transaction has committed,
   * or rolled back and the row is gone).
   */
  add<K extends TopicName<T>>(topics: readonly K[], payload: TopicsPayload<T, K>): void {
    const data = JSON.stringify(payload)
    if (data === undefined) throw new TypeError('outbox payload is not JSON (undefined or a function)')
    this.insert ??= this.db.prepare(`INSERT INTO ${this.quoted} (topics, payload, created_at) VALUES (?, ?, ?)`)
    this.insert.run(JSON.stringify(topics), data, performance.timeOrigin + performance.now())
    if (!this.wakeScheduled && this.wakers.size > 0) {
      this.wakeScheduled = true
      setImmediate(() => {
        this.wakeScheduled = false
        for (const wake of this.wakers) wake()
      })
    }
  }

  async claim(limit: number): Promise<OutboxBatch> {
    const rows = this.db.prepare(`SELECT id, topics, payload, created_at FROM ${this.quoted} ORDER BY id LIMIT ?`).all(limit) as Row[]
    const claimed = rows.map((row) => ({ id: String(row.id), topics: JSON.parse(row.topics) as string[], payload: row.payload, createdAt: row.created_at }))
    return {
      rows: claimed,
      done: async () => {
        if (claimed.length === 0) return
        const last = rows[rows.length - 1] as Row
        // Every row up to the last one published is done (they were taken in id order).
        this.db.prepare(`DELETE FROM ${this.quoted} WHERE id <= ?`).run(last.id)
      },
      abandon: async () => {},
    }
  }

  async backlog(): Promise<OutboxBacklog> {
    const row = this.db.prepare(`SELECT count(*) AS count, min(created_at) AS oldest FROM ${this.quoted}`).get() as { count: number; oldest: number | null }
    return { rows: row.count, oldestAt: row.oldest ?? undefined }
  }

  async watch(wake: () => void): Promise<() => Promise<void>> {
    this.wakers.add(wake)
    return async () => {
      this.wakers.delete(wake)
    }
  }
}

/** An outbox table in SQLite (see `SqliteOutbox`). */
export function sqliteOutbox<T extends TopicMap = TopicMap>(options: SqliteOutboxOptions): SqliteOutbox<T> {
  return new SqliteOutbox<T>(options)
}
