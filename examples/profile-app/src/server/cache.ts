import { randomUUID } from 'node:crypto'
import type { User } from '../shared/topics.js'

/**
 * The read cache of `GET /api/users/:userId`. Every write invalidates it on every instance (the
 * app listens to the `cache:users` topic); the TTL only bounds the damage of a lost invalidation.
 */
export class UserCache {
  /** Names this cache in `cache:users` messages: the writer invalidates itself, the echo is skipped. */
  readonly origin = randomUUID()
  readonly #entries = new Map<string, { user: User; expiresAt: number }>()
  readonly #ttlMs: number
  readonly #maxEntries: number
  // A read that started before an invalidation must not store what it read (it may be stale).
  #generation = 0
  hits = 0
  misses = 0
  invalidations = 0

  constructor(options: { ttlMs?: number; maxEntries?: number } = {}) {
    this.#ttlMs = options.ttlMs ?? 30_000
    this.#maxEntries = options.maxEntries ?? 10_000
  }

  /** The cached user, or what `load` reads (cached unless invalidated meanwhile). */
  async get(userId: string, load: () => Promise<User | null>): Promise<User | null> {
    const entry = this.#entries.get(userId)
    if (entry && entry.expiresAt > Date.now()) {
      this.hits++
      return entry.user
    }
    this.misses++
    const generation = this.#generation
    const user = await load()
    if (user && generation === this.#generation) {
      if (this.#entries.size >= this.#maxEntries) {
        const oldest = this.#entries.keys().next().value
        if (oldest !== undefined) this.#entries.delete(oldest)
      }
      this.#entries.set(userId, { user, expiresAt: Date.now() + this.#ttlMs })
    }
    return user
  }

  invalidate(userIds: readonly string[]): void {
    this.#generation++
    this.invalidations++
    for (const userId of userIds) this.#entries.delete(userId)
  }

  has(userId: string): boolean {
    return this.#entries.has(userId)
  }
}
