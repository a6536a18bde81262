/**
 * Issue 16 B: instances started together on a fresh PostgreSQL schema raced on
 * `CREATE SCHEMA IF NOT EXISTS` / `CREATE TABLE IF NOT EXISTS` (neither is safe against a
 * concurrent creator) and one of them crashed with a duplicate key in pg_namespace or pg_type.
 */
import { describe, expect, it } from 'vitest'
import { openRepository, type UserRepository } from '../../src/server/storage/index.js'
import { dropSchema, requirePostgres, uniqueSchema } from '../utils/services.js'

const INSTANCES = 8
const ROUNDS = 5

describe('PostgreSQL start-up', () => {
  it('does not fail when several instances create a new schema at the same time', async () => {
    const databaseUrl = await requirePostgres()
    for (let round = 0; round < ROUNDS; round++) {
      const pgSchema = uniqueSchema()
      const opened = await Promise.allSettled(Array.from({ length: INSTANCES }, () => openRepository({ databaseUrl, pgSchema }, () => [])))
      const repositories = opened.flatMap((result) => (result.status === 'fulfilled' ? [result.value as UserRepository] : []))
      try {
        const failures = opened.flatMap((result) => (result.status === 'rejected' ? [String(result.reason)] : []))
        expect(failures, `round ${round}`).toEqual([])
        // Every instance works on the one table they created together.
        await repositories[0]!.upsert({ userId: '1', tgUsername: 'first', photoUrl: null })
        for (const repository of repositories) expect((await repository.get('1'))?.tgUsername).toBe('first')
      } finally {
        await Promise.all(repositories.map((repository) => repository.close()))
        await dropSchema(pgSchema)
      }
    }
  }, 60_000)
})
