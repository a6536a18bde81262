import { PostgresUserRepository } from './postgres.js'
import type { Announce, UserRepository } from './repository.js'
import { SqliteUserRepository } from './sqlite.js'

export type { Announce, Announcement, UserChanges, UserRepository, UserUpdate } from './repository.js'
export { UserNotFoundError } from './repository.js'
export { PostgresUserRepository, SqliteUserRepository }

/** Where the app keeps its users: PostgreSQL when a URL is given, else a SQLite file. */
export type StorageConfig = { databaseUrl: string; pgSchema?: string } | { sqlitePath: string }

/** Opens the repository and makes sure its schema (and outbox) exists. */
export async function openRepository(config: StorageConfig, announce: Announce): Promise<UserRepository> {
  if ('databaseUrl' in config) {
    const repository = new PostgresUserRepository(config.databaseUrl, announce, config.pgSchema)
    try {
      await repository.init()
    } catch (error) {
      await repository.close()
      throw error
    }
    return repository
  }
  return new SqliteUserRepository(config.sqlitePath, announce)
}
