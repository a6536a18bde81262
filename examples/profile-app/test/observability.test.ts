/**
 * Observability of one app instance over a scripted session on real sockets: connect, subscribe,
 * publish (a profile edit through the API), a forbidden subscribe, refused credentials and a slow
 * consumer. `/metrics` is scraped before and after each step and every counter and gauge must
 * have moved by exactly what the step explains; the captured pino lines of the same session must
 * tell the story and carry no token, secret or init data. Then `/healthz` and the bus gauges
 * through a Redis of the test's own that is stopped and started again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { signInitData } from '../src/server/telegram/initData.js'
import { BOT_TOKEN, SESSION_SECRET, sqliteStorage, startApp, type RunningApp, type TestStorage } from './utils/app.js'
// The library's own-redis-server helper, raw protocol client and wait: one implementation for
// both packages' tests.
import { RawClient } from '../../../packages/realtime/test/utils/raw-client.js'
import { OwnRedisServer as OwnRedis } from '../../../packages/realtime/test/utils/redis.js'
import type { AppConfig } from '../src/server/config.js'
import { waitFor } from '../../../packages/realtime/test/utils/wait.js'
import { parseExposition, valueOf, type Family } from './utils/prometheus.js'

const METRICS_TOKEN = 'metrics-token-0123456789abcdef'
/** Small, so that a paused reader trips it after a few MB of patches (the kernel buffers first). */
const MAX_BUFFERED_BYTES = 64 * 1024

let storage: TestStorage
let running: RunningApp
const logLines: string[] = []
const clients: RawClient[] = []
const secrets: Record<string, string> = { SESSION_SECRET, BOT_TOKEN, METRICS_TOKEN }

type Scrape = Map<string, Family>
const scrapes: Record<'before' | 'connected' | 'published' | 'refused' | 'slow' | 'closed', Scrape> = {} as never
let slowPublishes = 0
let bytesToClients = 0

async function scrape(): Promise<Scrape> {
  const response = await fetch(`${running.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parseExposition(await response.text())
}

async function connect(token: string): Promise<RawClient> {
  const client = await RawClient.connect(running.url.replace('http', 'ws') + '/ws')
  clients.push(client)
  await client.hello(token)
  return client
}

beforeAll(async () => {
  storage = sqliteStorage()
  running = await startApp(storage.config, {
    config: {
      logger: { level: 'info', stream: { write: (line: string) => void logLines.push(line) } },
      logRequests: true,
      metricsToken: METRICS_TOKEN,
      // The `$stats` publisher would add its own publishes and frames between two scrapes.
      activityIntervalMs: 0,
      realtimeLimits: { maxBufferedBytes: MAX_BUFFERED_BYTES },
    },
  })
  const admin = await running.signIn('1', 'Admin')
  const user = await running.signIn('2', 'Bob')
  const slow = await running.signIn('3', 'Slow')
  secrets.adminToken = admin.token
  secrets.userToken = user.token
  secrets.slowToken = slow.token
  // A Telegram sign-in, so that init data crosses the app (and must not reach a log line).
  const initData = signInitData({ query_id: 'AAHdF6IQAAAAAN0XohDhrOrc', auth_date: Math.floor(Date.now() / 1000), user: { id: 4, username: 'tg_user' } }, BOT_TOKEN)
  secrets.initData = initData
  secrets.initDataHash = new URLSearchParams(initData).get('hash')!
  expect((await running.request('POST', '/api/auth/telegram', { body: { initData } })).status).toBe(200)
  const forged = initData.replace(/hash=[0-9a-f]{4}/, 'hash=0000')
  secrets.forgedInitData = forged
  expect((await running.request('POST', '/api/auth/telegram', { body: { initData: forged } })).status).toBe(401)

  scrapes.before = await scrape()

  // Connect and subscribe: an admin on `profile`, a user on their own topic.
  const a = await connect(admin.token)
  const u = await connect(user.token)
  expect((await a.subscribe(1, 'profile')).type).toBe('subscribed')
  expect((await u.subscribe(1, 'user:2')).type).toBe('subscribed')
  scrapes.connected = await scrape()

  // Publish: an edit through the API publishes `cache:users`, `user:2` and `profile`.
  expect((await running.request('PUT', '/api/users/2', { token: user.token, body: { tgUsername: 'Bob Edited' } })).status).toBe(200)
  await a.next((f) => f.type === 'patch' && f.topic === 'profile')
  await u.next((f) => f.type === 'patch' && f.topic === 'user:2')
  scrapes.published = await scrape()

  // A forbidden subscribe, and a hello with a forged token (closed 4001).
  expect(await u.subscribe(2, 'profile')).toMatchObject({ type: 'error', code: 'FORBIDDEN', topic: 'profile' })
  const forgedToken = user.token.slice(0, -4) + (user.token.endsWith('AAAA') ? 'BBBB' : 'AAAA')
  secrets.forgedToken = forgedToken
  const intruder = await RawClient.connect(running.url.replace('http', 'ws') + '/ws')
  clients.push(intruder)
  intruder.send({ type: 'hello', v: 1, auth: forgedToken })
  expect(await intruder.closed()).toBe(4001)
  await waitFor(async () => valueOf(await scrape(), 'realtime_connections') === 2, 10_000, 'the refused connection to be gone')
  bytesToClients = a.bytesIn + u.bytesIn + intruder.bytesIn
  scrapes.refused = await scrape()

  // A slow consumer: it stops reading while patches of 32 KiB keep coming on its topic.
  const s = await connect(slow.token)
  expect((await s.subscribe(1, 'user:3')).type).toBe('subscribed')
  s.pauseReading()
  const big = { type: 'profile_updated' as const, userId: '3', tgUsername: 'x'.repeat(32 * 1024), photoUrl: null, updatedAt: new Date().toISOString() }
  const cut = () => (running.app.realtime.stats().drops.slow_consumer ?? 0) > 0
  // The in-memory bus fans out inside publishTopic: the cut shows right after the publish that trips it.
  while (!cut() && slowPublishes < 5000) {
    await running.app.publishTopic('user:3', big)
    slowPublishes++
  }
  expect(cut()).toBe(true)
  await waitFor(() => running.app.realtime.stats().connections === 2, 10_000, 'the slow consumer to be gone')
  scrapes.slow = await scrape()
  s.close()

  // Clean closes.
  a.socket.close(1000)
  u.socket.close(1000)
  await Promise.all([a.closed(), u.closed()])
  await waitFor(() => running.app.realtime.stats().connections === 0, 10_000, 'the clean closes')
  scrapes.closed = await scrape()
}, 120_000)

afterAll(async () => {
  for (const client of clients) client.close()
  await running?.close()
  await storage?.dispose()
})

/** The change of a series between two scrapes. */
function delta(from: Scrape, to: Scrape, name: string, labels: Record<string, string> = {}): number {
  return valueOf(to, name, labels) - valueOf(from, name, labels)
}

describe('/metrics', () => {
  it('wants the bearer token when METRICS_TOKEN is set', async () => {
    expect((await fetch(`${running.url}/metrics`)).status).toBe(401)
    const wrong = await fetch(`${running.url}/metrics`, { headers: { authorization: 'Bearer nope' } })
    expect(wrong.status).toBe(401)
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer')
  })

  it('is the Prometheus text format, with every metric of the issue typed', () => {
    const families = scrapes.closed
    const types = Object.fromEntries([...families.values()].map((f) => [f.name, f.type]))
    expect(types).toMatchObject({
      realtime_connections: 'gauge',
      realtime_subscriptions: 'gauge',
      realtime_topics: 'gauge',
      realtime_bus_up: 'gauge',
      realtime_connections_opened_total: 'counter',
      realtime_frames_received_total: 'counter',
      realtime_frames_sent_total: 'counter',
      realtime_bytes_sent_total: 'counter',
      realtime_patches_published_total: 'counter',
      realtime_patches_delivered_total: 'counter',
      realtime_errors_total: 'counter',
      realtime_closes_total: 'counter',
      realtime_drops_total: 'counter',
      realtime_refusals_total: 'counter',
      realtime_bus_reconnects_total: 'counter',
      realtime_publish_to_send_seconds: 'histogram',
      realtime_bus_publish_seconds: 'histogram',
      profile_app_user_cache_hits_total: 'counter',
      profile_app_user_cache_misses_total: 'counter',
      profile_app_user_cache_invalidations_total: 'counter',
    })
    for (const family of families.values()) expect(family.help, family.name).not.toBe('')
  })

  it('moves each gauge and counter by exactly what each step of the session explains', () => {
    const { before, connected, published, refused, slow, closed } = scrapes
    const g = (s: Scrape, name: string) => valueOf(s, name)

    // Connect and subscribe: 2 connections, 2 subscriptions; hello + subscribe each way per client.
    expect(g(before, 'realtime_connections')).toBe(0)
    expect(g(connected, 'realtime_connections')).toBe(2)
    expect(g(connected, 'realtime_subscriptions')).toBe(2)
    expect(delta(before, connected, 'realtime_topics')).toBe(2)
    expect(delta(before, connected, 'realtime_connections_opened_total')).toBe(2)
    expect(delta(before, connected, 'realtime_frames_received_total')).toBe(4)
    expect(delta(before, connected, 'realtime_frames_sent_total')).toBe(4)
    expect(delta(before, connected, 'realtime_patches_published_total')).toBe(0)

    // One edit: 3 publishes (cache:users, then user:2 and profile in one publishTopics call), 2
    // patches delivered (one per subscriber), 2 bus calls timed, 2 fanouts timed (cache:users has
    // no subscriber).
    expect(delta(connected, published, 'realtime_patches_published_total')).toBe(3)
    expect(delta(connected, published, 'realtime_patches_delivered_total')).toBe(2)
    expect(delta(connected, published, 'realtime_frames_sent_total')).toBe(2)
    expect(delta(connected, published, 'realtime_frames_received_total')).toBe(0)
    expect(delta(connected, published, 'realtime_bus_publish_seconds_count')).toBe(2)
    expect(delta(connected, published, 'realtime_bus_publish_seconds_bucket', { le: '+Inf' })).toBe(2)
    expect(delta(connected, published, 'realtime_publish_to_send_seconds_count')).toBe(2)
    expect(delta(connected, published, 'realtime_publish_to_send_seconds_sum')).toBeGreaterThan(0)
    expect(delta(connected, published, 'realtime_publish_to_send_seconds_sum')).toBeLessThan(1)

    // Forbidden subscribe (one frame each way), then a hello with a forged token: one more
    // connection opened, one frame in, no frame out but the close, 4001.
    expect(delta(published, refused, 'realtime_errors_total', { code: 'FORBIDDEN' })).toBe(1)
    expect(delta(published, refused, 'realtime_refusals_total', { reason: 'forbidden' })).toBe(1)
    expect(delta(published, refused, 'realtime_refusals_total', { reason: 'unauthorized' })).toBe(1)
    expect(delta(published, refused, 'realtime_closes_total', { code: '4001' })).toBe(1)
    expect(delta(published, refused, 'realtime_connections_opened_total')).toBe(1)
    expect(delta(published, refused, 'realtime_frames_received_total')).toBe(2)
    expect(delta(published, refused, 'realtime_frames_sent_total')).toBe(1)
    expect(g(refused, 'realtime_connections')).toBe(2)
    expect(g(refused, 'realtime_subscriptions')).toBe(2)
    // Every byte the server counted as sent since the first scrape reached the three clients.
    expect(delta(before, refused, 'realtime_bytes_sent_total')).toBe(bytesToClients)

    // The slow consumer: connect, hello, subscribe; N publishes on its topic, each handed to it
    // (N delivered, N fanouts timed), of which the last found its buffer over the limit and was
    // not sent: N - 1 patch frames out. Then one 4008 and one slow_consumer drop.
    const n = slowPublishes
    expect(n).toBeGreaterThan(1)
    expect(delta(refused, slow, 'realtime_connections_opened_total')).toBe(1)
    expect(delta(refused, slow, 'realtime_frames_received_total')).toBe(2)
    expect(delta(refused, slow, 'realtime_patches_published_total')).toBe(n)
    expect(delta(refused, slow, 'realtime_patches_delivered_total')).toBe(n)
    expect(delta(refused, slow, 'realtime_frames_sent_total')).toBe(2 + n - 1)
    expect(delta(refused, slow, 'realtime_bus_publish_seconds_count')).toBe(n)
    expect(delta(refused, slow, 'realtime_publish_to_send_seconds_count')).toBe(n)
    expect(delta(refused, slow, 'realtime_drops_total', { reason: 'slow_consumer' })).toBe(1)
    expect(delta(refused, slow, 'realtime_closes_total', { code: '4008' })).toBe(1)
    expect(delta(refused, slow, 'realtime_bytes_sent_total')).toBeGreaterThan((n - 1) * 32 * 1024)
    expect(g(slow, 'realtime_connections')).toBe(2)
    expect(g(slow, 'realtime_subscriptions')).toBe(2)

    // Two clean closes.
    expect(delta(slow, closed, 'realtime_closes_total', { code: '1000' })).toBe(2)
    expect(g(closed, 'realtime_connections')).toBe(0)
    expect(g(closed, 'realtime_subscriptions')).toBe(0)
    expect(delta(before, closed, 'realtime_topics')).toBe(0)

    // Nothing else moved over the whole session.
    expect(delta(before, closed, 'realtime_errors_total', { code: 'FORBIDDEN' })).toBe(1)
    for (const name of ['realtime_errors_total', 'realtime_closes_total', 'realtime_drops_total', 'realtime_refusals_total']) {
      const total = (s: Scrape) => s.get(name)!.samples.reduce((sum, sample) => sum + sample.value, 0)
      const expected = { realtime_errors_total: 1, realtime_closes_total: 4, realtime_drops_total: 1, realtime_refusals_total: 2 }[name]
      expect(total(closed) - total(before), name).toBe(expected)
    }
    expect(delta(before, closed, 'realtime_bus_reconnects_total')).toBe(0)
    // The one edit dropped user 2 from the read cache once: by the writer (its own `cache:users`
    // message is for the other instances). No API read: the cache's only lookups are the three
    // sockets' authentications, each reading its user's name for the `$online` presence info.
    expect(delta(before, closed, 'profile_app_user_cache_invalidations_total')).toBe(1)
    expect(delta(before, closed, 'profile_app_user_cache_hits_total') + delta(before, closed, 'profile_app_user_cache_misses_total')).toBe(3)
    expect(g(closed, 'realtime_bus_up')).toBe(1)
  })
})

describe('logs', () => {
  const entries = () => logLines.map((line) => JSON.parse(line) as Record<string, any>)

  it('has one line per connection open and close (with the code), per publish and per refusal', () => {
    const lines = entries()
    expect(lines.filter((l) => l.msg === 'realtime: connection opened')).toHaveLength(4)
    const closes = lines.filter((l) => l.msg === 'realtime: connection closed').map((l) => l.code)
    expect(closes.sort()).toEqual([1000, 1000, 4001, 4008])

    const publishes = lines.filter((l) => l.msg === 'realtime: published')
    // 4 sign-ins (3 dev, 1 Telegram) and the edit publish 3 each; then the slow consumer's.
    expect(publishes).toHaveLength(5 * 3 + slowPublishes)
    const edit = publishes.filter((l) => l.topic === 'user:2' || l.topic === 'profile').slice(-2)
    expect(edit).toEqual([
      expect.objectContaining({ topic: 'user:2', subscribers: 1, offset: expect.stringMatching(/^\d+$/) }),
      expect.objectContaining({ topic: 'profile', subscribers: 1, offset: expect.stringMatching(/^\d+$/) }),
    ])
    expect(publishes.filter((l) => l.topic === 'user:3' && l.subscribers === 1).length).toBeGreaterThanOrEqual(slowPublishes - 1)

    expect(lines.filter((l) => l.msg === 'realtime: subscription forbidden')).toEqual([
      expect.objectContaining({ topic: 'profile', connectionId: expect.any(String) }),
    ])
    expect(lines.filter((l) => l.msg === 'realtime: authentication refused')).toHaveLength(1)
    expect(lines.filter((l) => l.msg === 'profile updated').map((l) => l.source)).toEqual(['dev_login', 'dev_login', 'dev_login', 'telegram', 'edit'])
    // Request lines are on in this app: the Telegram sign-ins are there, by URL only.
    expect(lines.filter((l) => l.req?.url === '/api/auth/telegram')).toHaveLength(2)
  })

  it('has no token, secret or init data in any line', () => {
    expect(logLines.length).toBeGreaterThan(20)
    const all = logLines.join('\n')
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret.length, name).toBeGreaterThan(8)
      expect(all.includes(secret), `${name} appears in the logs`).toBe(false)
    }
    expect(all).not.toMatch(/auth_date|query_id|"auth":|authorization/i)
  })
})

describe('/healthz', () => {
  it('is ok with the in-memory bus', async () => {
    const response = await running.request('GET', '/healthz')
    expect(response).toEqual({ status: 200, body: { ok: true, bus: 'up', draining: false, outbox: { backlog: 0, oldestAgeMs: 0, stale: false } } })
  })

  /** An app (SQLite) on a Redis of the test's own, which the test may stop and start. */
  async function withOwnRedis(config: Partial<AppConfig>, test: (app: RunningApp, redis: OwnRedis) => Promise<void>): Promise<void> {
    const redis = await OwnRedis.start()
    const redisStorage = sqliteStorage()
    let app: RunningApp | undefined
    try {
      app = await startApp(redisStorage.config, { config: { redisUrl: redis.url, activityIntervalMs: 0, ...config } })
      await test(app, redis)
    } finally {
      await app?.close()
      await redis.stop()
      await redisStorage.dispose()
    }
  }
  const metricOf = async (app: RunningApp, name: string) => valueOf(parseExposition(await (await fetch(`${app.url}/metrics`)).text()), name)

  it('answers 503 while the Redis bus is down, and counts the reconnect', async () => {
    await withOwnRedis({ redisPrefix: `profile-app-healthz:${process.pid}:` }, async (app, redis) => {
      const metric = (name: string) => metricOf(app, name)
      expect(await app.request('GET', '/healthz')).toEqual({ status: 200, body: { ok: true, bus: 'up', draining: false, outbox: { backlog: 0, oldestAgeMs: 0, stale: false } } })
      expect(await metric('realtime_bus_up')).toBe(1)

      await redis.stop()
      await waitFor(async () => (await app.request('GET', '/healthz')).status === 503, 10_000, '/healthz 503')
      expect((await app.request('GET', '/healthz')).body).toEqual({ ok: false, bus: 'down', draining: false, outbox: { backlog: 0, oldestAgeMs: 0, stale: false } })
      expect(await metric('realtime_bus_up')).toBe(0)

      await redis.start()
      await waitFor(async () => (await app.request('GET', '/healthz')).status === 200, 15_000, '/healthz 200 again')
      expect(await metric('realtime_bus_reconnects_total')).toBe(1)
      expect(await metric('realtime_bus_up')).toBe(1)
    })
  }, 40_000)

  it('answers 503 while the outbox cannot drain, and publishes its rows once the bus is back', async () => {
    await withOwnRedis({ redisPrefix: `profile-app-outbox:${process.pid}:`, outboxStaleMs: 300 }, async (app, redis) => {
      const admin = await app.signIn('1', 'Admin')
      await redis.stop()
      await waitFor(async () => (await app.request('GET', '/healthz')).body.bus === 'down', 10_000, 'the bus down')
      // The write commits; its patches wait in the outbox (the relay cannot reach the bus).
      const edit = await app.request('PUT', '/api/users/1', { token: admin.token, body: { tgUsername: 'Written while Redis was down' } })
      expect(edit.status).toBe(200)
      await waitFor(async () => (await app.request('GET', '/healthz')).body.outbox?.stale === true, 10_000, 'a stale outbox')
      const stale = (await app.request('GET', '/healthz')).body
      expect(stale.outbox.backlog).toBe(2)
      expect(stale.outbox.oldestAgeMs).toBeGreaterThan(300)
      expect(await metricOf(app, 'profile_app_outbox_backlog_rows')).toBe(2)

      await redis.start()
      await waitFor(async () => (await app.request('GET', '/healthz')).status === 200, 20_000, '/healthz 200 again')
      expect((await app.request('GET', '/healthz')).body.outbox).toEqual({ backlog: 0, oldestAgeMs: 0, stale: false })
      expect(app.app.outboxRelay.stats().published).toBeGreaterThanOrEqual(3)
    })
  }, 60_000)
})
