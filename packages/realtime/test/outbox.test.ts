import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InMemoryBus } from '../src/bus/memory.js'
import { createOutboxRelay, postgresOutbox, sqliteOutbox, type OutboxBatch, type OutboxStore } from '../src/outbox/index.js'
import type { PatchFrame } from '../src/protocol.js'
import { RedisBus } from '../src/redis/index.js'
import { closeAfterTest, useRawClient, useServer } from './utils/harness.js'
import { requirePostgres, testSchema } from './utils/postgres.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'
import { sleep, waitFor, type RawClient, type TestServer } from './utils/server.js'

type Change = { userId: string; seq: number }
type Topics = { profile: Change; [k: `user:${string}`]: Change }

const patches = (client: RawClient) => client.frames.filter((f): f is PatchFrame => f.type === 'patch')
const payloads = (client: RawClient) => patches(client).map((f) => f.payload as Change)

async function subscriber(server: TestServer, ...topics: string[]): Promise<RawClient> {
  const client = await useRawClient(server.url)
  for (const [i, topic] of topics.entries()) {
    client.send({ type: 'subscribe', topic, id: i + 1 })
    await client.nextOf('subscribed', i + 1)
  }
  return client
}

/**
 * An outbox whose relay dies after publishing a batch and before deleting it (as a SIGKILL there
 * would): the rows stay, and the next relay publishes them again.
 */
function crashingAfterPublish(store: OutboxStore): OutboxStore & { crashed: number } {
  const wrapped = {
    crashed: 0,
    name: store.name,
    backlog: () => store.backlog(),
    watch: (wake: () => void) => store.watch(wake),
    async claim(limit: number): Promise<OutboxBatch | undefined> {
      const batch = await store.claim(limit)
      if (!batch || batch.rows.length === 0) return batch
      return {
        rows: batch.rows,
        done: async () => {
          wrapped.crashed++
          await batch.abandon()
          throw new Error('process died before the delete')
        },
        abandon: () => batch.abandon(),
      }
    },
  }
  return wrapped
}

describe('outbox on SQLite', () => {
  function setup() {
    const db = new Database(':memory:')
    closeAfterTest(() => db.close())
    db.exec('CREATE TABLE users (user_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)')
    const outbox = sqliteOutbox<Topics>({ db })
    outbox.migrate()
    const write = db.transaction((userId: string, seq: number, fail = false) => {
      db.prepare('INSERT INTO users (user_id, seq) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq').run(userId, seq)
      outbox.add([`user:${userId}`, 'profile'], { userId, seq })
      if (fail) throw new Error('the write failed after the outbox insert')
    })
    return { db, outbox, write }
  }

  it('publishes a committed write to every topic once, in order, and empties the table', async () => {
    const { outbox, write } = setup()
    const server = await useServer<Topics>()
    const relay = await createOutboxRelay({ outbox, realtime: server.realtime, pollMs: 60_000 })
    closeAfterTest(() => relay.close())
    const [user, admins] = [await subscriber(server, 'user:1'), await subscriber(server, 'profile')]
    for (let seq = 1; seq <= 50; seq++) write('1', seq)
    // Woken by the writes themselves (the poll is a minute away).
    await waitFor(() => patches(admins).length === 50, 5000, '50 patches')
    expect(payloads(user).map((p) => p.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
    expect(payloads(admins).map((p) => p.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
    await waitFor(async () => (await outbox.backlog()).rows === 0, 5000, 'an empty outbox')
    expect(relay.stats()).toMatchObject({ published: 50, dropped: 0, failures: 0 })
    expect(relay.stats().publishLatency.count).toBe(50)
  })

  it('publishes nothing for a transaction that rolls back after the outbox insert', async () => {
    const { outbox, write } = setup()
    const server = await useServer<Topics>()
    const relay = await createOutboxRelay({ outbox, realtime: server.realtime, pollMs: 20 })
    closeAfterTest(() => relay.close())
    const admins = await subscriber(server, 'profile')
    expect(() => write('2', 1, true)).toThrow(/failed after the outbox insert/)
    write('3', 1)
    await waitFor(() => patches(admins).length === 1, 5000, 'the committed write')
    await sleep(100)
    expect(payloads(admins)).toEqual([{ userId: '3', seq: 1 }])
  })

  it('publishes again what a relay published before dying, and subscribers see it once', async () => {
    const { outbox, write } = setup()
    const server = await useServer<Topics>()
    const admins = await subscriber(server, 'profile')
    const dying = crashingAfterPublish(outbox)
    const first = await createOutboxRelay({ outbox: dying, realtime: server.realtime, pollMs: 60_000 })
    for (let seq = 1; seq <= 5; seq++) write('4', seq)
    await waitFor(() => dying.crashed > 0, 5000, 'the crash')
    await first.close()
    expect((await outbox.backlog()).rows).toBe(5)
    const second = await createOutboxRelay({ outbox, realtime: server.realtime, pollMs: 60_000 })
    closeAfterTest(() => second.close())
    await waitFor(async () => (await outbox.backlog()).rows === 0, 5000, 'an empty outbox')
    await sleep(50)
    expect(payloads(admins).map((p) => p.seq)).toEqual([1, 2, 3, 4, 5])
  })

  it('drops a row the server refuses for good (and says so) instead of blocking the ones after it', async () => {
    const { db, outbox } = setup()
    const server = await useServer<Topics>()
    const relay = await createOutboxRelay({ outbox, realtime: server.realtime, pollMs: 60_000 })
    closeAfterTest(() => relay.close())
    const admins = await subscriber(server, 'profile')
    db.transaction(() => {
      outbox.add(['user:not a topic!' as `user:${string}`], { userId: 'x', seq: 1 })
      outbox.add(['profile'], { userId: 'y', seq: 2 })
    })()
    await waitFor(() => patches(admins).length === 1, 5000, 'the valid row')
    expect(relay.stats()).toMatchObject({ published: 1, dropped: 1 })
  })
})

describe('outbox on PostgreSQL with Redis', () => {
  let prefix = uniquePrefix('outbox')
  beforeAll(async () => {
    await requirePostgres()
    await requireSharedRedis()
  })
  afterAll(() => deleteKeys(REDIS_URL, prefix))

  async function setup() {
    const { pool, drop } = await testSchema('outbox')
    closeAfterTest(drop)
    await pool.query('CREATE TABLE users (user_id text PRIMARY KEY, seq int NOT NULL)')
    const outbox = postgresOutbox<Topics>({ pool })
    // Twice, concurrently: the DDL is safe when instances start together.
    await Promise.all([outbox.migrate(), outbox.migrate()])
    const write = async (userId: string, seq: number, fail = false) => {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        await client.query('INSERT INTO users VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET seq = EXCLUDED.seq', [userId, seq])
        await outbox.add(client, [`user:${userId}`, 'profile'], { userId, seq })
        if (fail) throw new Error('the write failed after the outbox insert')
        await client.query('COMMIT')
      } catch (error) {
        await client.query('ROLLBACK')
        throw error
      } finally {
        client.release()
      }
    }
    const instance = async () => useServer<Topics>({ bus: new RedisBus({ url: REDIS_URL, prefix }) })
    return { pool, outbox, write, instance }
  }

  it('wakes on NOTIFY: a commit reaches subscribers in milliseconds, not a poll interval', async () => {
    const { outbox, write, instance } = await setup()
    const server = await instance()
    const relay = await createOutboxRelay({ outbox, realtime: server.realtime, pollMs: 60_000 })
    closeAfterTest(() => relay.close())
    const user = await subscriber(server, 'user:1')
    const started = Date.now()
    await write('1', 1)
    await waitFor(() => patches(user).length === 1, 5000, 'the patch')
    expect(Date.now() - started).toBeLessThan(1000)
    expect(payloads(user)).toEqual([{ userId: '1', seq: 1 }])
  })

  it('publishes nothing for a transaction that rolls back after the outbox insert', async () => {
    const { outbox, write, instance } = await setup()
    const server = await instance()
    const relay = await createOutboxRelay({ outbox, realtime: server.realtime, pollMs: 50 })
    closeAfterTest(() => relay.close())
    const admins = await subscriber(server, 'profile')
    await expect(write('2', 1, true)).rejects.toThrow(/failed after the outbox insert/)
    await write('3', 1)
    await waitFor(() => patches(admins).length === 1, 5000, 'the committed write')
    await sleep(150)
    expect(payloads(admins)).toEqual([{ userId: '3', seq: 1 }])
  })

  it('with two relays on one database, publishes every row once and keeps each topic in order', async () => {
    const { outbox, write, instance } = await setup()
    const [a, b] = [await instance(), await instance()]
    for (const server of [a, b]) {
      const relay = await createOutboxRelay({ outbox, realtime: server.realtime, batchSize: 20, pollMs: 200 })
      closeAfterTest(() => relay.close())
    }
    const users = Array.from({ length: 10 }, (_, i) => String(i + 1))
    const watchers = await Promise.all(users.map((u) => subscriber(u === '1' ? a : b, `user:${u}`)))
    const admins = await subscriber(a, 'profile')
    // Ten writers at once, each writing its user 40 times in a row.
    await Promise.all(users.map(async (u) => {
      for (let seq = 1; seq <= 40; seq++) await write(u, seq)
    }))
    await waitFor(() => patches(admins).length >= 400, 15_000, '400 patches')
    await sleep(200)
    for (const watcher of watchers) expect(payloads(watcher).map((p) => p.seq).join(',')).toEqual(Array.from({ length: 40 }, (_, i) => i + 1).join(','))
    expect(patches(admins)).toHaveLength(400)
    for (const u of users) {
      expect(payloads(admins).filter((p) => p.userId === u).map((p) => p.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
    }
    expect((await outbox.backlog()).rows).toBe(0)
  })

  it('publishes again what a relay published before dying, and subscribers see it once', async () => {
    const { outbox, write, instance } = await setup()
    const [a, b] = [await instance(), await instance()]
    const admins = await subscriber(b, 'profile')
    const dying = crashingAfterPublish(outbox)
    const first = await createOutboxRelay({ outbox: dying, realtime: a.realtime, pollMs: 60_000 })
    for (let seq = 1; seq <= 5; seq++) await write('4', seq)
    await waitFor(() => dying.crashed > 0, 5000, 'the crash')
    await first.close()
    await waitFor(() => patches(admins).length >= 1, 5000, 'the first publish')
    const second = await createOutboxRelay({ outbox, realtime: b.realtime, pollMs: 100 })
    closeAfterTest(() => second.close())
    await waitFor(async () => (await outbox.backlog()).rows === 0, 5000, 'an empty outbox')
    await sleep(100)
    expect(payloads(admins).map((p) => p.seq)).toEqual([1, 2, 3, 4, 5])
    prefix = uniquePrefix('outbox')
  })
})
