/**
 * The PostgreSQL of the tests (`DATABASE_URL`, else the local default). Tests share it: each works
 * in a schema of its own and drops it afterwards.
 */
import pg from 'pg'

export const POSTGRES_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'

/** Fails (never skips) with how to start PostgreSQL when it cannot be reached. */
export async function requirePostgres(): Promise<string> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${POSTGRES_URL} (${(error as Error).message}). Start it ` +
        '(Debian: `apt-get install postgresql && pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, ' +
        'database "test" with trust auth for user postgres) or set DATABASE_URL.',
    )
  } finally {
    await client.end().catch(() => {})
  }
  return POSTGRES_URL
}

/** A new schema of this test's own, with a pool whose connections use it; `drop` removes both. */
export async function testSchema(label: string): Promise<{ schema: string; pool: pg.Pool; drop(): Promise<void> }> {
  const schema = `rt_test_${label}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const admin = new pg.Client({ connectionString: POSTGRES_URL })
  await admin.connect()
  await admin.query(`CREATE SCHEMA "${schema}"`)
  await admin.end()
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 10, options: `-c search_path=${schema}` })
  pool.on('error', () => {})
  return {
    schema,
    pool,
    async drop() {
      await pool.end()
      const client = new pg.Client({ connectionString: POSTGRES_URL })
      await client.connect()
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await client.end()
    },
  }
}
