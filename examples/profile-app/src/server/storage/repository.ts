import type { OutboxStore } from '@app/realtime/outbox'
import type { Topics, User } from '../../shared/topics.js'

/** Fields a write may change. `undefined` leaves a field as it is. */
export interface UserChanges {
  tgUsername?: string
  photoUrl?: string | null
}

/** One item of a batch update. */
export interface UserUpdate {
  userId: string
  changes: UserChanges
}

/** Thrown by `updateMany` when an item names no existing user; nothing was written. */
export class UserNotFoundError extends Error {
  override readonly name = 'UserNotFoundError'
  constructor(readonly userId: string) {
    super(`no user ${userId}`)
  }
}

/** One publish a write records in its transaction (the outbox): topics and the payload they all take. */
export type Announcement =
  | { topics: readonly ('profile' | `user:${string}`)[]; payload: Topics['profile'] }
  | { topics: readonly ['cache:users']; payload: Topics['cache:users'] }

/**
 * What a write of these users announces, built by the app (the patches, the cache invalidation).
 * The repository records it in the outbox in the write's own transaction: it is published if and
 * only if the write commits, even if the process dies right after the commit.
 */
export type Announce = (users: User[]) => Announcement[]

/**
 * Where profiles live. SQLite (one process or several on one machine) and PostgreSQL
 * (several machines) implement it; the same contract tests run against both.
 */
export interface UserRepository {
  get(userId: string): Promise<User | null>
  /** Users ordered by numeric id. */
  list(page: { limit: number; offset: number }): Promise<{ users: User[]; total: number }>
  /** Creates the user or replaces name and photo; sets `updatedAt`. */
  upsert(user: Omit<User, 'updatedAt'>): Promise<User>
  /** Applies the changes; null when there is no such user. */
  update(userId: string, changes: UserChanges): Promise<User | null>
  /** Applies every item in one transaction, or none (throws `UserNotFoundError`). */
  updateMany(items: UserUpdate[]): Promise<User[]>
  /** The outbox every write records its announcements in; the app runs its relay. */
  readonly outbox: OutboxStore
  close(): Promise<void>
}

/**
 * The next `updatedAt`: now, but always after `previous`, so that clients ordering patches by
 * it never see time go back within one user even when the clock does.
 */
export function nextUpdatedAt(previous: string | undefined, now = Date.now()): string {
  const last = previous ? Date.parse(previous) : Number.NaN
  return new Date(Number.isFinite(last) && last >= now ? last + 1 : now).toISOString()
}

/** A `users` row as both databases return it (snake_case columns). */
export interface UserRow {
  user_id: string
  tg_username: string
  photo_url: string | null
  updated_at: string
}

/** Maps a `users` row to the API's shape. */
export function toUser(row: UserRow): User {
  return { userId: row.user_id, tgUsername: row.tg_username, photoUrl: row.photo_url, updatedAt: row.updated_at }
}

/** The user a row becomes with `changes` applied (absent fields kept), with a new `updatedAt`. */
export function applyChanges(row: UserRow, changes: UserChanges): User {
  return {
    userId: row.user_id,
    tgUsername: changes.tgUsername ?? row.tg_username,
    photoUrl: changes.photoUrl !== undefined ? changes.photoUrl : row.photo_url,
    updatedAt: nextUpdatedAt(row.updated_at),
  }
}
