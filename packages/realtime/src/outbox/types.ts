/** One recorded publish: what the app's transaction asked to publish, as committed. */
export interface OutboxRow {
  /** The row's id in its table: increasing in insertion order. */
  id: string
  topics: string[]
  /** The payload's JSON, as the app serialized it. */
  payload: string
  /** When the row was inserted (ms since 1970), for the backlog age and the relay latency. */
  createdAt: number
}

/** Rows taken by one relay; `done` deletes them, `abandon` leaves them for the next attempt. */
export interface OutboxBatch {
  rows: OutboxRow[]
  done(): Promise<void>
  abandon(): Promise<void>
}

/** How many rows wait, and since when the oldest does. */
export interface OutboxBacklog {
  rows: number
  /** Insertion time of the oldest row (ms since 1970); undefined when none waits. */
  oldestAt: number | undefined
}

/**
 * Where an app's outbox rows live (`postgresOutbox`, `sqliteOutbox`): what the relay needs.
 * `claim` returns the oldest rows in id order, or undefined when another relay holds the outbox
 * right now (PostgreSQL); `watch` calls `wake` when rows may have been committed.
 */
export interface OutboxStore {
  /** Names the table in idempotency keys (two outboxes of one bus never collide). */
  readonly name: string
  claim(limit: number): Promise<OutboxBatch | undefined>
  backlog(): Promise<OutboxBacklog>
  /** Starts calling `wake` on new commits; resolves with the function that stops it. */
  watch(wake: () => void): Promise<() => Promise<void>>
}

/** A table name, optionally schema-qualified: `realtime_outbox`, `app.realtime_outbox`. */
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/

/** The table name checked and quoted for SQL (`"app"."realtime_outbox"`). */
export function quoteTable(table: string): string {
  if (!TABLE.test(table)) throw new TypeError(`invalid outbox table name ${JSON.stringify(table)}: letters, digits and _, optionally schema.table`)
  return table
    .split('.')
    .map((part) => `"${part}"`)
    .join('.')
}
