import { postgresOutbox, type PostgresOutbox } from '@app/realtime/outbox'
import pg from 'pg'
import type { Topics, User } from '../../shared/topics.js'
import { applyChanges, nextUpdatedAt, toUser, UserNotFoundError, type Announce, type UserChanges, type UserRepository, type UserRow as Row, type UserUpdate } from './repository.js'

/** Profiles in PostgreSQL, for instances on several machines. */
export class PostgresUserRepository implements UserRepository {
  readonly outbox: PostgresOutbox<Topics>
  readonly #announce: Announce
  readonly #pool: pg.Pool
  readonly #table: string
  readonly #schema: string
  #ready: Promise<void> | undefined

  /**
   * `schema` holds the `users` table and the outbox (created on first use with the schema
   * itself); tests pass a unique one so that they never touch anyone else's tables. `announce`
   * says what each write records in the outbox.
   */
  constructor(connectionString: string, announce: Announce, schema = 'public') {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid PostgreSQL schema name "${schema}"`)
    this.#schema = schema
    this.#table = `"${schema}".users`
    this.#pool = new pg.Pool({ connectionString, max: 10 })
    // An idle client's error (a restarted server) must not crash the process; the pool replaces it.
    this.#pool.on('error', () => {})
    this.outbox = postgresOutbox<Topics>({ pool: this.#pool, table: `${schema}.realtime_outbox` })
    this.#announce = announce
  }

  /**
   * Creates the schema and table when missing. Every method awaits it.
   *
   * `CREATE … IF NOT EXISTS` is not safe against a concurrent creator: two instances started
   * together on a new schema both pass the existence check and one fails on a duplicate key in
   * the catalog (pg_namespace, pg_type). A transaction-scoped advisory lock, keyed by the schema,
   * makes the instances create it one after the other; the later ones find it there.
   */
  init(): Promise<void> {
    this.#ready ??= this.#createTables().catch((error: unknown) => {
      this.#ready = undefined
      throw error
    })
    return this.#ready
  }

  async #createTables(): Promise<void> {
    const client = await this.#pool.connect()
    try {
      await client.query('BEGIN')
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`profile-app:schema:${this.#schema}`])
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`)
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.#table} (
           user_id     TEXT PRIMARY KEY,
           tg_username TEXT NOT NULL,
           photo_url   TEXT,
           updated_at  TEXT NOT NULL
         )`,
      )
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    } finally {
      client.release()
    }
    await this.outbox.migrate()
  }

  async get(userId: string): Promise<User | null> {
    await this.init()
    const { rows } = await this.#pool.query<Row>(`SELECT * FROM ${this.#table} WHERE user_id = $1`, [userId])
    return rows[0] ? toUser(rows[0]) : null
  }

  async list(page: { limit: number; offset: number }): Promise<{ users: User[]; total: number }> {
    await this.init()
    const [{ rows }, count] = await Promise.all([
      this.#pool.query<Row>(
        `SELECT * FROM ${this.#table} ORDER BY length(user_id), user_id LIMIT $1 OFFSET $2`,
        [page.limit, page.offset],
      ),
      this.#pool.query<{ total: string }>(`SELECT count(*) AS total FROM ${this.#table}`),
    ])
    return { users: rows.map(toUser), total: Number(count.rows[0]?.total ?? 0) }
  }

  async upsert(user: Omit<User, 'updatedAt'>): Promise<User> {
    return this.#transaction(async (client) => {
      const { rows } = await client.query<Row>(`SELECT * FROM ${this.#table} WHERE user_id = $1 FOR UPDATE`, [
        user.userId,
      ])
      const updatedAt = nextUpdatedAt(rows[0]?.updated_at)
      await client.query(
        `INSERT INTO ${this.#table} (user_id, tg_username, photo_url, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET tg_username = EXCLUDED.tg_username,
           photo_url = EXCLUDED.photo_url, updated_at = EXCLUDED.updated_at`,
        [user.userId, user.tgUsername, user.photoUrl, updatedAt],
      )
      return (await this.#record(client, [{ ...user, updatedAt }]))[0] as User
    })
  }

  async update(userId: string, changes: UserChanges): Promise<User | null> {
    return this.#transaction(async (client) => {
      const user = await this.#apply(client, userId, changes)
      return user && ((await this.#record(client, [user]))[0] as User)
    })
  }

  async updateMany(items: UserUpdate[]): Promise<User[]> {
    return this.#transaction(async (client) => {
      const users: User[] = []
      for (const { userId, changes } of items) {
        const user = await this.#apply(client, userId, changes)
        if (!user) throw new UserNotFoundError(userId)
        users.push(user)
      }
      return this.#record(client, users)
    })
  }

  async close(): Promise<void> {
    await this.#pool.end()
  }

  async #transaction<R>(work: (client: pg.PoolClient) => Promise<R>): Promise<R> {
    await this.init()
    const client = await this.#pool.connect()
    try {
      await client.query('BEGIN')
      const result = await work(client)
      await client.query('COMMIT')
      return result
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    } finally {
      client.release()
    }
  }

  /** Records the write's announcements in the outbox, in the write's transaction (`client`). */
  async #record(client: pg.PoolClient, users: User[]): Promise<User[]> {
    for (const { topics, payload } of this.#announce(users)) await this.outbox.add(client, topics as never[], payload as never)
    return users
  }

  async #apply(client: pg.PoolClient, userId: string, changes: UserChanges): Promise<User | null> {
    const { rows } = await client.query<Row>(`SELECT * FROM ${this.#table} WHERE user_id = $1 FOR UPDATE`, [userId])
    const row = rows[0]
    if (!row) return null
    const user = applyChanges(row, changes)
    await client.query(`UPDATE ${this.#table} SET tg_username = $1, photo_url = $2, updated_at = $3 WHERE user_id = $4`, [
      user.tgUsername,
      user.photoUrl,
      user.updatedAt,
      userId,
    ])
    return user
  }
}
