/**
 * The real services the tests need. A missing one fails the test with how to start it: a test
 * that silently skips would pass on a machine that tests nothing.
 */
import { existsSync } from 'node:fs'
import { Redis } from 'ioredis'
import pg from 'pg'
import { POSTGRES_URL, requirePostgres } from '../../../../packages/realtime/test/utils/postgres.js'

export { POSTGRES_URL, requirePostgres }

export const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

export async function requireRedis(): Promise<string> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    await redis.connect()
    await redis.ping()
  } catch (error) {
    throw new Error(
      `Redis is not reachable at ${REDIS_URL} (${(error as Error).message}). Start it ` +
        `(Debian: \`apt-get install redis-server && redis-server --daemonize yes --port ${Number(new URL(REDIS_URL).port) || 6379} --save ""\`) or set REDIS_URL.`,
    )
  } finally {
    redis.disconnect()
  }
  return REDIS_URL
}

export function requireChromium(): string {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not at ${CHROMIUM_PATH}. Install Debian's: \`apt-get update && apt-get install -y chromium\` ` +
        '(or set CHROMIUM_PATH).',
    )
  }
  return CHROMIUM_PATH
}

/** Deletes every Redis key under `prefix` (a test run's own keys only). */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      if (keys.length) await redis.del(...keys)
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}

/** Drops a test run's PostgreSQL schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  if (!/^profile_app_test_[a-z0-9_]+$/.test(schema)) throw new Error(`refusing to drop schema ${schema}`)
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await client.end()
  }
}

/** A schema name no other run uses. */
export function uniqueSchema(): string {
  return `profile_app_test_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
}
