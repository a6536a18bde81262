/**
 * `@app/realtime/outbox`: publish exactly what the database committed. The app records "publish
 * this payload to these topics" in the same transaction as its write; a relay per instance
 * publishes committed rows to the bus in order, then deletes them. See docs/outbox.md.
 */
export { createOutboxRelay, OutboxRelay, type OutboxPublisher, type OutboxRelayOptions, type OutboxRelayStats } from './relay.js'
export { postgresOutbox, PostgresOutbox, type PgPoolClientLike, type PgPoolLike, type PgQueryable, type PgResult, type PostgresOutboxOptions } from './postgres.js'
export { sqliteOutbox, SqliteOutbox, type SqliteDatabaseLike, type SqliteOutboxOptions, type SqliteStatementLike } from './sqlite.js'
export type { OutboxBacklog, OutboxBatch, OutboxRow, OutboxStore } from './types.js'
