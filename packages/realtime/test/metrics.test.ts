/**
 * Metrics of the server: `stats()` (counters, latency histograms, busiest topics, bus reconnects)
 * and the same numbers through `createPrometheusMetrics` on a real prom-client registry.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { isValidTopic } from '../src/protocol.js'
import { createPrometheusMetrics, latencyQuantile, LATENCY_BUCKETS_SECONDS } from '../src/server/index.js'
import { LatencyHistogram } from '../src/server/latency.js'
import { RedisBus } from '../src/redis/index.js'
import { OwnRedisServer, REDIS_URL, deleteKeys, uniquePrefix } from './utils/redis.js'
import { closeAfterTest, useRawClient, useServer } from './utils/harness.js'
import { waitFor, type RawClient, type TestServer } from './utils/server.js'

/** The running test's server (the harness closes it, and its clients, when the test ends). */
let server: TestServer | undefined

async function connect(): Promise<RawClient> {
  const client = await useRawClient(server!.url)
  await client.hello()
  return client
}

/** `name{labels} value` lines of a scrape, by series (name plus label text). */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const match = /^(\S+?(?:\{.*\})?) (\S+)$/.exec(line)
    if (!match) throw new Error(`not a sample line: ${line}`)
    map.set(match[1]!, Number(match[2]))
  }
  return map
}

/** One scrape of `realtime`'s metrics (prefix `rt_`) on a registry of its own. */
async function scrape(realtime: TestServer['realtime']): Promise<Map<string, number>> {
  const registry = new Registry()
  createPrometheusMetrics(realtime, { registry, prefix: 'rt_' })
  return samples(await registry.metrics())
}

describe('LatencyHistogram', () => {
  it('counts each observation once, in the first bucket that holds it', () => {
    const histogram = new LatencyHistogram([0.001, 0.01])
    for (const seconds of [0.0005, 0.001, 0.005, 0.5, -1]) histogram.observe(seconds)
    expect(histogram.snapshot()).toEqual({
      count: 5,
      sum: 0.0005 + 0.001 + 0.005 + 0.5,
      buckets: [
        { le: 0.001, count: 3 },
        { le: 0.01, count: 4 },
      ],
    })
  })

  it('estimates quantiles inside a bucket', () => {
    const histogram = new LatencyHistogram([0.001, 0.002])
    for (let i = 0; i < 10; i++) histogram.observe(0.0015)
    expect(latencyQuantile(histogram.snapshot(), 0.5)).toBeCloseTo(0.0015)
    expect(latencyQuantile(new LatencyHistogram().snapshot(), 0.5)).toBeUndefined()
  })
})

describe('topic names', () => {
  it('allow one leading $ for system topics', () => {
    expect(isValidTopic('$stats')).toBe(true)
    expect(isValidTopic('$')).toBe(false)
    expect(isValidTopic('$$stats')).toBe(false)
    expect(isValidTopic('a$')).toBe(false)
    expect(isValidTopic('$' + 'a'.repeat(199))).toBe(true)
    expect(isValidTopic('$' + 'a'.repeat(200))).toBe(false)
  })
})

describe('stats()', () => {
  it('counts opened connections, latencies once per publish and fanout, and the busiest topics', async () => {
    server = await useServer({ heartbeatMs: 60_000 })
    const { realtime } = server
    const a = await connect()
    const b = await connect()
    for (const [client, topic] of [
      [a, 'busy'],
      [b, 'busy'],
      [a, 'quiet'],
    ] as const) {
      client.send({ type: 'subscribe', id: topic, topic })
      await client.nextOf('subscribed', topic)
    }
    for (let i = 0; i < 3; i++) await realtime.publishTopic('busy', { i })
    await realtime.publishTopic('nobody', {})
    await waitFor(() => realtime.stats().messagesOut === 2 + 3 + 6)

    const stats = realtime.stats()
    expect(stats.connectionsOpened).toBe(2)
    expect(stats.published).toBe(4)
    expect(stats.delivered).toBe(6)
    expect(stats.busPublish.count).toBe(4)
    // Three fanouts reached subscribers (one per publish, not one per subscriber); 'nobody' none.
    expect(stats.publishToSend.count).toBe(3)
    expect(stats.publishToSend.sum).toBeGreaterThanOrEqual(0)
    expect(stats.publishToSend.buckets.at(-1)!.count).toBe(3)
    expect(stats.busiestTopics).toEqual([
      { topic: 'busy', subscribers: 2, delivered: 6 },
      { topic: 'quiet', subscribers: 1, delivered: 0 },
    ])
    expect(stats.busReconnects).toBe(0)
  })

  it('counts a bus reconnect when Redis comes back', async () => {
    const redis = await OwnRedisServer.start()
    closeAfterTest(() => redis.stop())
    const bus = new RedisBus({ url: redis.url, prefix: `metrics-test:${process.pid}:` })
    server = await useServer({ bus })
    const { realtime } = server
    await waitFor(() => realtime.stats().busStatus === 'up', 5000, 'bus up')
    await redis.stop()
    await waitFor(() => realtime.stats().busStatus === 'down', 5000, 'bus down')
    expect(realtime.stats().busReconnects).toBe(0)
    await redis.start()
    await waitFor(() => realtime.stats().busStatus === 'up', 10_000, 'bus up again')
    expect(realtime.stats().busReconnects).toBe(1)
  })

  it('reports the RedisBus flow control (absent with the in-memory bus)', async () => {
    const prefix = uniquePrefix('metrics-flow')
    try {
      server = await useServer({ bus: new RedisBus({ url: REDIS_URL, prefix }) })
      const client = await connect()
      client.send({ type: 'subscribe', id: 1, topic: 'flow' })
      await client.nextOf('subscribed', 1)
      await Promise.all(Array.from({ length: 40 }, (_, n) => server!.realtime.publishTopic('flow', { n })))
      for (let n = 0; n < 40; n++) await client.nextOf('patch')
      const flow = server.realtime.stats().busFlowControl
      expect(flow).toMatchObject({ waiting: 0 })
      expect(flow!.window).toBeGreaterThanOrEqual(4)
      const s = await scrape(server.realtime)
      expect(s.get('rt_bus_publish_waiting')).toBe(0)
      expect(s.get('rt_bus_publish_window')).toBe(flow!.window)
      expect(s.get('rt_bus_delivery_lag_seconds')).toBeGreaterThanOrEqual(0)
    } finally {
      await server?.close()
      server = undefined
      await deleteKeys(REDIS_URL, prefix)
    }
    server = await useServer()
    expect(server.realtime.stats().busFlowControl).toBeUndefined()
    expect((await scrape(server.realtime)).has('rt_bus_publish_waiting')).toBe(false)
  })
})

describe('createPrometheusMetrics', () => {
  it('leaves prom-client out of the built package: no import or require of it, in code or types', () => {
    const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist')
    const files = readdirSync(dist).filter((f) => /\.(c?js|d\.c?ts)$/.test(f))
    expect(files.some((f) => f.startsWith('server.'))).toBe(true)
    for (const file of files) {
      // Doc comments may name it (the usage example); code lines may not.
      const code = readFileSync(join(dist, file), 'utf8')
        .split('\n')
        .filter((line) => !/^\s*(\*|\/\/|\/\*)/.test(line))
      expect(code.filter((line) => line.includes('prom-client')), file).toEqual([])
    }
  })

  it('exposes the numbers of stats() on a prom-client registry', async () => {
    server = await useServer({ heartbeatMs: 60_000, authorize: (_p, topic) => topic !== 'secret' })
    const registry = new Registry()
    const metrics = createPrometheusMetrics(server.realtime, { registry, prefix: 'rt_' })
    const client = await connect()
    client.send({ type: 'subscribe', id: 1, topic: 'news' })
    await client.nextOf('subscribed', 1)
    client.send({ type: 'subscribe', id: 2, topic: 'secret' })
    expect(await client.nextOf('error', 2)).toMatchObject({ code: 'FORBIDDEN' })
    await server.realtime.publishTopic('news', { n: 1 })
    await client.nextOf('patch')

    const text = await registry.metrics()
    expect(text).toContain('# TYPE rt_connections gauge')
    expect(text).toContain('# TYPE rt_frames_received_total counter')
    expect(text).toContain('# TYPE rt_publish_to_send_seconds histogram')
    const s = samples(text)
    expect(s.get('rt_connections')).toBe(1)
    expect(s.get('rt_subscriptions')).toBe(1)
    expect(s.get('rt_connections_opened_total')).toBe(1)
    expect(s.get('rt_frames_received_total')).toBe(3)
    expect(s.get('rt_frames_sent_total')).toBe(4)
    expect(s.get('rt_patches_published_total')).toBe(1)
    expect(s.get('rt_patches_delivered_total')).toBe(1)
    expect(s.get('rt_errors_total{code="FORBIDDEN"}')).toBe(1)
    expect(s.get('rt_refusals_total{reason="forbidden"}')).toBe(1)
    expect(s.get('rt_bus_up')).toBe(1)
    expect(s.get('rt_bus_reconnects_total')).toBe(0)
    expect(s.get('rt_publish_to_send_seconds_count')).toBe(1)
    expect(s.get('rt_publish_to_send_seconds_bucket{le="+Inf"}')).toBe(1)
    expect(s.get(`rt_bus_publish_seconds_bucket{le="${LATENCY_BUCKETS_SECONDS.at(-1)}"}`)).toBe(1)
    expect(s.get('rt_bus_publish_seconds_count')).toBe(1)

    client.socket.close(1000)
    await waitFor(() => server!.realtime.stats().connections === 0)
    expect(samples(await registry.metrics()).get('rt_closes_total{code="1000"}')).toBe(1)

    expect(() => createPrometheusMetrics(server!.realtime, { registry, prefix: 'rt_' })).toThrow(/already been registered/)
    metrics.unregister()
    expect(await registry.metrics()).toBe('\n')
  })
})
