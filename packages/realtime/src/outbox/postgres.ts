import type { TopicMap, TopicName, TopicsPayload } from '../topics.js'
import { quoteTable, type OutboxBacklog, type OutboxBatch, type OutboxRow, type OutboxStore } from './types.js'

/** What the outbox needs of a `pg` client or pool: `query`. (A `pg.PoolClient` in a transaction.) */
export interface PgQueryable {
  /** One result, or one per statement for a query of several statements (pg's simple protocol). */
  query(text: string, values?: unknown[]): Promise<PgResult | PgResult[]>
}

/** The part of a `pg` result the outbox reads. */
export interface PgResult {
  rows: any[]
}

/** The rows of statement `index` of a reply (a query of several statements answers an array). */
function rowsOf(reply: PgResult | PgResult[], index = 0): any[] {
  if (Array.isArray(reply)) return reply[index]?.rows ?? []
  return index === 0 ? reply.rows : []
}

/** What the outbox needs of a `pg.PoolClient` it holds: `query`, notifications, `release`. */
export interface PgPoolClientLike extends PgQueryable {
  release(error?: Error | boolean): void
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown
  on(event: 'error', listener: (error: Error) => void): unknown
}

/** What the outbox needs of a `pg.Pool`. */
export interface PgPoolLike extends PgQueryable {
  connect(): Promise<PgPoolClientLike>
}

export interface PostgresOutboxOptions {
  /** The app's `pg.Pool`: the relay takes a client from it per batch, and one for `LISTEN`. */
  pool: PgPoolLike
  /** The outbox table, optionally schema-qualified. Default `'realtime_outbox'`. */
  table?: string
}

/** The `LISTEN`/`NOTIFY` channel of a table: one per outbox. */
function channelOf(table: string): string {
  return `realtime_outbox_${table.replace(/\W/g, '_')}`.slice(0, 63).toLowerCase()
}

/**
 * An outbox table in PostgreSQL. The app calls `add(client, topics, payload)` with the client of
 * its own transaction, so the row commits (and its `NOTIFY` is delivered) with the app's write, or
 * not at all. The relay claims rows in id order under a transaction-scoped advisory lock: one relay
 * at a time works through the table, so rows are published once and each topic keeps its order.
 */
export class PostgresOutbox<T extends TopicMap = TopicMap> implements OutboxStore {
  readonly name: string
  readonly table: string
  private readonly quoted: string
  private readonly channel: string
  private readonly pool: PgPoolLike
  /** The advisory lock of the relays of this table (a checked name: safe in a SQL literal). */
  private readonly lockKey: string

  constructor(options: PostgresOutboxOptions) {
    this.table = options.table ?? 'realtime_outbox'
    this.quoted = quoteTable(this.table)
    this.name = this.table
    this.channel = channelOf(this.table)
    this.pool = options.pool
    this.lockKey = `realtime-outbox:relay:${this.table}`
  }

  /** The migration `migrate` runs (shown in docs/outbox.md). */
  get migrationSql(): string {
    return `CREATE TABLE IF NOT EXISTS ${this.quoted} (
  id         bigserial   PRIMARY KEY,
  topics     text[]      NOT NULL,
  payload    text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
)`
  }

  /**
   * Creates the table when missing. Safe when several instances start together: the DDL runs
   * under an advisory lock (two concurrent `CREATE … IF NOT EXISTS` can fail on the catalog).
   */
  async migrate(): Promise<void> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`realtime-outbox:migrate:${this.table}`])
      await client.query(this.migrationSql)
      await client.query('COMMIT')
      client.release()
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      client.release(error as Error)
      throw error
    }
  }

  /**
   * Records a publish in the app's transaction (`client` is the transaction's client): one round
   * trip, the insert and its `NOTIFY` (delivered only if the transaction commits).
   */
  async add<K extends TopicName<T>>(client: PgQueryable, topics: readonly K[], payload: TopicsPayload<T, K>): Promise<void> {
    const data = JSON.stringify(payload)
    if (data === undefined) throw new TypeError('outbox payload is not JSON (undefined or a function)')
    await client.query(
      `WITH row AS (INSERT INTO ${this.quoted} (topics, payload) VALUES ($1, $2) RETURNING id) SELECT pg_notify($3, id::text) FROM row`,
      [topics, data, this.channel],
    )
  }

  async claim(limit: number): Promise<OutboxBatch | undefined> {
    const client = await this.pool.connect()
    let open = false
    const end = async (sql: 'COMMIT' | 'ROLLBACK', error?: Error) => {
      try {
        await client.query(sql)
      } finally {
        client.release(error)
      }
    }
    try {
      // One round trip: the transaction, the lock and the rows (none unless the lock was taken).
      // The key and the table are checked names, the limit a number: no parameter is needed,
      // so the two statements go as one simple query.
      const reply = await client.query(
        `BEGIN; SELECT l.locked, o.id, o.topics, o.payload, o.created_ms
           FROM (SELECT pg_try_advisory_xact_lock(hashtext('${this.lockKey}')) AS locked) l
           LEFT JOIN LATERAL (
             SELECT id, topics, payload, (extract(epoch FROM created_at) * 1000)::float8 AS created_ms
               FROM ${this.quoted} WHERE l.locked ORDER BY id LIMIT ${Math.max(1, Math.floor(limit))}
           ) o ON true`,
      )
      open = true
      const selected = rowsOf(reply, 1)
      const rows = selected.filter((row) => row.id !== null)
      if (!selected[0]?.locked) {
        await end('ROLLBACK')
        return undefined
      }
      const claimed: OutboxRow[] = rows.map((row) => ({ id: String(row.id), topics: row.topics, payload: row.payload, createdAt: Number(row.created_ms) }))
      let settled = false
      return {
        rows: claimed,
        done: async () => {
          if (settled) return
          settled = true
          try {
            // The delete and the commit in one round trip (the ids are PostgreSQL's own bigints).
            const ids = claimed.map((r) => r.id).filter((id) => /^\d+$/.test(id))
            await client.query(ids.length > 0 ? `DELETE FROM ${this.quoted} WHERE id IN (${ids.join(',')}); COMMIT` : 'COMMIT')
          } catch (error) {
            await client.query('ROLLBACK').catch(() => {})
            client.release(error as Error)
            throw error
          }
          client.release()
        },
        abandon: async () => {
          if (settled) return
          settled = true
          await end('ROLLBACK')
        },
      }
    } catch (error) {
      if (open) await client.query('ROLLBACK').catch(() => {})
      client.release(error as Error)
      throw error
    }
  }

  async backlog(): Promise<OutboxBacklog> {
    const rows = rowsOf(
      await this.pool.query(`SELECT count(*)::int AS rows, (extract(epoch FROM min(created_at)) * 1000)::float8 AS oldest FROM ${this.quoted}`),
    )
    const row = rows[0] ?? { rows: 0, oldest: null }
    return { rows: Number(row.rows), oldestAt: row.oldest === null ? undefined : Number(row.oldest) }
  }

  /**
   * `LISTEN`s on a client of its own; a lost connection is taken again after `retryMs` (the
   * relay's poll covers the gap meanwhile).
   */
  async watch(wake: () => void, retryMs = 1000): Promise<() => Promise<void>> {
    let client: PgPoolClientLike | undefined
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const listen = async (): Promise<void> => {
      try {
        const taken = await this.pool.connect()
        if (stopped) {
          taken.release()
          return
        }
        taken.on('notification', (message) => {
          if (message.channel === this.channel) wake()
        })
        taken.on('error', (error) => {
          if (client !== taken) return
          client = undefined
          taken.release(error)
          if (!stopped) timer = setTimeout(() => void listen(), retryMs)
        })
        await taken.query(`LISTEN "${this.channel}"`)
        client = taken
        // Rows committed while no one listened.
        wake()
      } catch {
        if (!stopped) timer = setTimeout(() => void listen(), retryMs)
      }
    }
    await listen()
    return async () => {
      stopped = true
      clearTimeout(timer)
      const held = client
      client = undefined
      if (!held) return
      await held.query(`UNLISTEN "${this.channel}"`).catch(() => {})
      held.release()
    }
  }
}

/** An outbox table in PostgreSQL (see `PostgresOutbox`). */
export function postgresOutbox<T extends TopicMap = TopicMap>(options: PostgresOutboxOptions): PostgresOutbox<T> {
  return new PostgresOutbox<T>(options)
}
