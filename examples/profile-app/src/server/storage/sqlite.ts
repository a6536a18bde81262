import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { sqliteOutbox, type SqliteOutbox } from '@app/realtime/outbox'
import Database from 'better-sqlite3'
import type { Topics, User } from '../../shared/topics.js'
import { applyChanges, nextUpdatedAt, toUser, UserNotFoundError, type Announce, type UserChanges, type UserRepository, type UserRow as Row, type UserUpdate } from './repository.js'

/** Profiles in one SQLite file; WAL mode lets several processes on one machine share it. */
export class SqliteUserRepository implements UserRepository {
  readonly outbox: SqliteOutbox<Topics>
  readonly #announce: Announce
  readonly #db: Database.Database
  readonly #getStmt: Database.Statement<[string], Row>
  readonly #upsertStmt: Database.Statement<[string, string, string | null, string]>
  readonly #updateStmt: Database.Statement<[string, string | null, string, string]>

  /**
   * Opens (and creates, with its schema and outbox) the database at `file`; ':memory:' for a
   * private one. `announce` says what each write records in the outbox.
   */
  constructor(file: string, announce: Announce) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true })
    this.#db = new Database(file)
    // Another instance may hold the write lock for a moment (even while switching to WAL): wait.
    this.#db.pragma('busy_timeout = 5000')
    this.#db.pragma('journal_mode = WAL')
    this.#db.exec(`CREATE TABLE IF NOT EXISTS users (
      user_id     TEXT PRIMARY KEY,
      tg_username TEXT NOT NULL,
      photo_url   TEXT,
      updated_at  TEXT NOT NULL
    )`)
    this.outbox = sqliteOutbox<Topics>({ db: this.#db })
    this.outbox.migrate()
    this.#announce = announce
    this.#getStmt = this.#db.prepare('SELECT * FROM users WHERE user_id = ?')
    this.#upsertStmt = this.#db.prepare(`INSERT INTO users (user_id, tg_username, photo_url, updated_at)
      VALUES (?, ?, ?, ?)
      ON CONFLICT (user_id) DO UPDATE SET tg_username = excluded.tg_username,
        photo_url = excluded.photo_url, updated_at = excluded.updated_at`)
    this.#updateStmt = this.#db.prepare(
      'UPDATE users SET tg_username = ?, photo_url = ?, updated_at = ? WHERE user_id = ?',
    )
  }

  async get(userId: string): Promise<User | null> {
    const row = this.#getStmt.get(userId)
    return row ? toUser(row) : null
  }

  async list(page: { limit: number; offset: number }): Promise<{ users: User[]; total: number }> {
    const rows = this.#db
      .prepare<[number, number], Row>('SELECT * FROM users ORDER BY length(user_id), user_id LIMIT ? OFFSET ?')
      .all(page.limit, page.offset)
    const { total } = this.#db.prepare<[], { total: number }>('SELECT count(*) AS total FROM users').get()!
    return { users: rows.map(toUser), total }
  }

  async upsert(user: Omit<User, 'updatedAt'>): Promise<User> {
    return this.#db.transaction(() => {
      const previous = this.#getStmt.get(user.userId)
      const updatedAt = nextUpdatedAt(previous?.updated_at)
      this.#upsertStmt.run(user.userId, user.tgUsername, user.photoUrl, updatedAt)
      return this.#record([{ ...user, updatedAt }])[0] as User
    }).immediate()
  }

  async update(userId: string, changes: UserChanges): Promise<User | null> {
    return this.#db
      .transaction(() => {
        const user = this.#apply(userId, changes)
        return user && (this.#record([user])[0] as User)
      })
      .immediate()
  }

  async updateMany(items: UserUpdate[]): Promise<User[]> {
    return this.#db
      .transaction(() =>
        this.#record(
          items.map(({ userId, changes }) => {
            const user = this.#apply(userId, changes)
            // Throwing inside the transaction function rolls every item back.
            if (!user) throw new UserNotFoundError(userId)
            return user
          }),
        ),
      )
      .immediate()
  }

  async close(): Promise<void> {
    this.#db.close()
  }

  /** Records the write's announcements in the outbox (inside the write's transaction). */
  #record(users: User[]): User[] {
    for (const { topics, payload } of this.#announce(users)) this.outbox.add(topics as never[], payload as never)
    return users
  }

  #apply(userId: string, changes: UserChanges): User | null {
    const row = this.#getStmt.get(userId)
    if (!row) return null
    const user = applyChanges(row, changes)
    this.#updateStmt.run(user.tgUsername, user.photoUrl, user.updatedAt, userId)
    return user
  }
}
