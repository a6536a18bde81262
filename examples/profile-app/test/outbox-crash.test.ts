/**
 * From commit to screen, through crashes: instance A (a real app process) takes 2,000 profile
 * writes and is SIGKILLed at random moments (20 times), restarted each time; instance B (in this
 * process, on the same database and Redis) holds an admin subscribed to `profile`. Some writes are
 * made to fail inside their transaction, after the outbox insert (a trigger refuses their outbox
 * row). At the end, B's subscriber must hold exactly one patch per committed write, in commit
 * order per user, none for a failed write, and the last patch of each user must equal the
 * database. Run on SQLite and on PostgreSQL.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawClient } from '../../../packages/realtime/test/utils/raw-client.js'
import { sleep, waitFor } from '../../../packages/realtime/test/utils/wait.js'
import { ADMIN_ID, SESSION_SECRET, startApp, type RunningApp } from './utils/app.js'
import { appRoot } from './utils/paths.js'
import { POSTGRES_URL, deleteRedisKeys, dropSchema, requirePostgres, requireRedis, uniqueSchema } from './utils/services.js'

const WRITES = 2000
const KILLS = 20
const USERS = 20
/** Every FAIL_EVERY-th write of a user is made to fail after its outbox insert. */
const FAIL_EVERY = 9

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Instance A: the app's own entry point in a process of its own, killed and started again. */
class Victim {
  private child: ChildProcess | undefined
  output = ''
  constructor(
    private readonly env: Record<string, string>,
    readonly url: string,
  ) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server/main.ts', '--demo'], {
      cwd: appRoot,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.child = child
    child.stdout!.on('data', (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-20_000)))
    child.stderr!.on('data', (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-20_000)))
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`instance A exited:\n${this.output}`)
        return fetch(`${this.url}/healthz`).then((r) => r.status === 200, () => false)
      },
      30_000,
      'instance A up',
    )
  }

  /** SIGKILL: no shutdown hook runs, whatever was in flight is cut. */
  async kill(): Promise<void> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }
}

type Outcome = 'committed' | 'failed' | 'unknown'

interface Store {
  name: string
  env: Record<string, string>
  storage: Parameters<typeof startApp>[0]
  /** Makes the outbox insert of writes named `fail-…` throw, inside their transaction. */
  injectFailures(): Promise<void>
  names(): Promise<Map<string, string>>
  dispose(): Promise<void>
}

function sqliteStore(): Store {
  const dir = mkdtempSync(join(tmpdir(), 'profile-app-crash-'))
  const file = join(dir, 'profile.db')
  return {
    name: 'SQLite',
    env: { SQLITE_PATH: file, DATA_DIR: dir },
    storage: { sqlitePath: file },
    async injectFailures() {
      const db = new Database(file)
      db.pragma('busy_timeout = 5000')
      db.exec(`CREATE TRIGGER IF NOT EXISTS fail_outbox BEFORE INSERT ON realtime_outbox
        WHEN NEW.payload LIKE '%"tgUsername":"fail-%' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`)
      db.close()
    },
    async names() {
      const db = new Database(file, { readonly: true })
      const rows = db.prepare('SELECT user_id, tg_username FROM users').all() as { user_id: string; tg_username: string }[]
      db.close()
      return new Map(rows.map((r) => [r.user_id, r.tg_username]))
    },
    async dispose() {
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function postgresStore(): Store {
  const schema = uniqueSchema()
  const dir = mkdtempSync(join(tmpdir(), 'profile-app-crash-'))
  const query = async (sql: string) => {
    const client = new pg.Client({ connectionString: POSTGRES_URL })
    await client.connect()
    try {
      return await client.query(sql)
    } finally {
      await client.end()
    }
  }
  return {
    name: 'PostgreSQL',
    env: { DATABASE_URL: POSTGRES_URL, PG_SCHEMA: schema, DATA_DIR: dir },
    storage: { databaseUrl: POSTGRES_URL, pgSchema: schema },
    async injectFailures() {
      await query(`CREATE FUNCTION "${schema}".fail_outbox() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql`)
      await query(`CREATE TRIGGER fail_outbox BEFORE INSERT ON "${schema}".realtime_outbox FOR EACH ROW
        WHEN (NEW.payload LIKE '%"tgUsername":"fail-%') EXECUTE FUNCTION "${schema}".fail_outbox()`)
    },
    async names() {
      const { rows } = await query(`SELECT user_id, tg_username FROM "${schema}".users`)
      return new Map(rows.map((r: { user_id: string; tg_username: string }) => [r.user_id, r.tg_username]))
    },
    async dispose() {
      await dropSchema(schema)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

describe.each([['SQLite', sqliteStore], ['PostgreSQL', postgresStore]] as const)('the outbox through crashes (%s)', (_name, makeStore) => {
  let store: Store
  const prefix = `profile-app-crash:${process.pid}:${Math.random().toString(36).slice(2, 8)}:`
  beforeAll(async () => {
    await requireRedis()
    await requirePostgres()
    store = makeStore()
  })
  afterAll(async () => {
    await store.dispose()
    await deleteRedisKeys(prefix)
  })

  it(`delivers exactly the committed writes, once each and in order, through ${KILLS} SIGKILLs during ${WRITES} writes`, async () => {
    const redisUrl = await requireRedis()
    const port = await freePort()
    const victim = new Victim(
      {
        PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL: redisUrl,
        REDIS_PREFIX: prefix,
        SESSION_SECRET,
        ADMIN_USER_IDS: ADMIN_ID,
        LOG_LEVEL: 'error',
        ACTIVITY_INTERVAL_MS: '0',
        ...store.env,
      },
      `http://127.0.0.1:${port}`,
    )
    let observer: RunningApp | undefined
    let subscriber: RawClient | undefined
    try {
      await victim.start()
      observer = await startApp(store.storage, { config: { redisUrl, redisPrefix: prefix, activityIntervalMs: 0 } })
      const admin = await observer.signIn(ADMIN_ID, 'Admin')
      const users = Array.from({ length: USERS }, (_, i) => String(100 + i))
      for (const userId of users) await observer.signIn(userId)
      await store.injectFailures()
      subscriber = await RawClient.connect(`${observer.url.replace('http', 'ws')}/ws`)
      subscriber.send({ type: 'hello', v: 1, auth: admin.token })
      await subscriber.nextOf('welcome')
      subscriber.send({ type: 'subscribe', topic: 'profile', id: 1 })
      await subscriber.nextOf('subscribed', 1)

      const outcomes = new Map<string, Outcome>()
      let written = 0
      let kills = 0
      let down: Promise<void> | undefined
      const perUser = WRITES / USERS
      const writer = async (userId: string) => {
        for (let seq = 1; seq <= perUser; seq++) {
          const name = `${seq % FAIL_EVERY === 0 ? 'fail' : 'ok'}-${userId}-${String(seq).padStart(4, '0')}`
          while (down) await down
          let outcome: Outcome
          try {
            const response = await fetch(`${victim.url}/api/users/${userId}`, {
              method: 'PUT',
              headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' },
              body: JSON.stringify({ tgUsername: name }),
            })
            await response.text()
            outcome = response.status === 200 ? 'committed' : response.status === 500 ? 'failed' : 'unknown'
            if (response.status !== 200 && response.status !== 500) throw new Error(`unexpected ${response.status}`)
          } catch {
            // Cut by a kill: committed or not, we cannot tell from here.
            outcome = 'unknown'
          }
          outcomes.set(name, outcome)
          written++
        }
      }
      const killer = (async () => {
        while (kills < KILLS) {
          const target = Math.floor(((kills + 1) * WRITES) / (KILLS + 1)) + Math.floor((Math.random() - 0.5) * 40)
          await waitFor(() => written >= target, 120_000, `write ${target}`)
          // A random moment within the next few milliseconds of writing.
          await sleep(Math.random() * 15)
          let up!: () => void
          down = new Promise<void>((resolve) => (up = resolve))
          await victim.kill()
          kills++
          await victim.start()
          down = undefined
          up()
        }
      })()
      await Promise.all([...users.map(writer), killer])
      expect(kills).toBe(KILLS)

      // Both relays drain what is left (instance A after its restart, B by its poll).
      await waitFor(async () => (await observer!.request('GET', '/healthz')).body.outbox?.backlog === 0, 30_000, 'an empty outbox')
      const seen = () => subscriber!.frames.filter((f) => f.type === 'patch').length
      let last = -1
      await waitFor(
        async () => {
          const now = seen()
          const settled = now === last
          last = now
          if (!settled) await sleep(300)
          return settled
        },
        30_000,
        'no more patches',
      )

      const patches = subscriber.frames.flatMap((f) => (f.type === 'patch' ? [f.payload as { userId: string; tgUsername: string }] : []))
      const named = patches.filter((p) => /^(ok|fail)-/.test(p.tgUsername))
      const counts = new Map<string, number>()
      for (const p of named) counts.set(p.tgUsername, (counts.get(p.tgUsername) ?? 0) + 1)
      const duplicates = [...counts].filter(([, n]) => n > 1)
      const committed = [...outcomes].filter(([, o]) => o === 'committed').map(([n]) => n)
      const failed = [...outcomes].filter(([, o]) => o === 'failed').map(([n]) => n)
      const unknown = [...outcomes].filter(([, o]) => o === 'unknown').map(([n]) => n)
      console.log(
        `outbox crash test (${store.name}): ${WRITES} writes, ${kills} SIGKILLs; ${committed.length} committed, ${failed.length} failed by injection, ` +
          `${unknown.length} cut by a kill (of which ${unknown.filter((n) => counts.has(n)).length} had committed); ${named.length} patches, ${duplicates.length} duplicates`,
      )
      expect(duplicates).toEqual([])
      expect(committed.filter((n) => !counts.has(n))).toEqual([])
      expect(named.filter((p) => p.tgUsername.startsWith('fail-'))).toEqual([])
      expect(failed.length).toBeGreaterThan(0)
      // Commit order per user: each user's writes were made one after the other.
      for (const userId of users) {
        const order = named.filter((p) => p.userId === userId).map((p) => p.tgUsername)
        expect(order).toEqual([...order].sort())
      }
      // What the page shows (the last patch of each user) is what the database holds.
      const inDatabase = await store.names()
      for (const userId of users) {
        const lastPatch = named.filter((p) => p.userId === userId).at(-1)
        expect(lastPatch?.tgUsername, `user ${userId}`).toBe(inDatabase.get(userId))
      }
    } catch (error) {
      console.error(`instance A's last output:\n${victim.output}`)
      throw error
    } finally {
      subscriber?.close()
      await victim.kill()
      await observer?.close()
    }
  }, 240_000)
})
