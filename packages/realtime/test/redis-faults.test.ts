import { Redis } from 'ioredis'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { isRealtimeError } from '../src/errors.js'
import type { BusMessage } from '../src/bus/types.js'
import { REDIS_BUS_CONNECTION_OPTIONS, RedisBus } from '../src/redis/index.js'
import { startInstance } from './utils/instances.js'
import { closeAfterTest, useClient, useServer } from './utils/harness.js'
import { OwnRedisServer, freePort, uniquePrefix } from './utils/redis.js'
import type { TestServer } from './utils/server.js'
import { sleep, waitFor } from './utils/wait.js'

type Topics = Record<string, { n: number }>

function recordingClient(url: string | (() => string)) {
  // `url` may be a function (a load balancer's choice per connection): pass it as the option.
  const client = useClient<Topics>(typeof url === 'string' ? url : '', { url })
  const numbers: number[] = []
  const resyncs: string[] = []
  const states: string[] = []
  client.on('patch', (msg) => numbers.push(msg.payload.n))
  client.on('resync', (topic) => resyncs.push(topic))
  client.on('state', (state) => states.push(state))
  return { client, numbers, resyncs, states }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

// Every test here breaks a Redis of its own, never the shared one.
describe('Redis faults', () => {
  let redis: OwnRedisServer

  beforeAll(async () => {
    redis = await OwnRedisServer.start()
  })
  // First in, so last out: Redis is started again (for the next test) once the harness closed
  // this test's clients, servers and instances.
  beforeEach(() => {
    closeAfterTest(async () => {
      if (!redis.running) await redis.start()
    })
  })
  afterAll(() => redis.stop())

  async function server(): Promise<TestServer<Topics>> {
    const bus = new RedisBus({ url: redis.url, prefix: uniquePrefix('faults'), publishTimeoutMs: 500 })
    const started = await useServer<Topics>({ bus })
    await waitFor(() => bus.healthy, 10_000, 'the bus to be up')
    return started
  }

  async function subscribedClients(urls: (string | (() => string))[], topic: string) {
    const recorders = urls.map((url) => recordingClient(url))
    for (const r of recorders) r.client.subscribe(topic)
    await waitFor(() => recorders.every((r) => r.client.subscriptionState(topic) === 'subscribed'), 10_000, 'clients subscribed')
    return recorders
  }

  describe('RedisBus without Redis', () => {
    it('rejects a publish with BUS_UNAVAILABLE within publishTimeoutMs when Redis never answered', async () => {
      const bus = new RedisBus({ url: `redis://127.0.0.1:${await freePort()}`, publishTimeoutMs: 300 })
      const started = Date.now()
      const error = await bus.publish('nowhere', '1').catch((e: unknown) => e)
      expect(isRealtimeError(error) && error.code).toBe('BUS_UNAVAILABLE')
      expect(Date.now() - started).toBeLessThan(1000)
      const subscribing = await bus.subscribe('nowhere', () => {}).catch((e: unknown) => e)
      expect(isRealtimeError(subscribing) && subscribing.code).toBe('BUS_UNAVAILABLE')
      expect(bus.healthy).toBe(false)
      // Closing ends a wait for the connection at once, with CLOSED.
      const waiting = bus.publish('nowhere', '2').catch((e: unknown) => e)
      await bus.close()
      const closed = await waiting
      expect(isRealtimeError(closed) && closed.code).toBe('CLOSED')
    })
  })

  describe('RedisBus subscriber connection lost while Redis stays up', () => {
    // The subscriber reconnects after 300 ms, so what others publish meanwhile misses it.
    async function slowlyReconnectingBus(prefix: string, size: number) {
      const sub = new Redis(redis.url, { ...REDIS_BUS_CONNECTION_OPTIONS, autoResubscribe: false, retryStrategy: () => 300 })
      const pub = new Redis(redis.url, REDIS_BUS_CONNECTION_OPTIONS)
      const bus = new RedisBus({ redis: { pub, sub }, prefix, history: { size } })
      await waitFor(() => bus.healthy, 10_000, 'bus up')
      return {
        bus,
        async close() {
          await bus.close()
          pub.disconnect()
          sub.disconnect()
        },
      }
    }

    it('fills the gap from the stream: every message once, in order, no gap reported', async () => {
      const prefix = uniquePrefix('fill')
      const { bus, close } = await slowlyReconnectingBus(prefix, 100)
      const publisher = new RedisBus({ url: redis.url, prefix })
      try {
        const got: BusMessage[] = []
        const gaps: string[] = []
        bus.onGap((topic) => gaps.push(topic))
        await bus.subscribe('fill', (m) => got.push(m))
        for (let n = 1; n <= 5; n++) await publisher.publish('fill', String(n))
        await waitFor(() => got.length === 5, 10_000, '5 messages')
        await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub')
        await waitFor(() => !bus.healthy, 10_000, 'bus down')
        for (let n = 6; n <= 30; n++) await publisher.publish('fill', String(n))
        await waitFor(() => got.length >= 30, 10_000, '30 messages')
        await sleep(50)
        expect(got.map((m) => Number(m.data))).toEqual(range(1, 30))
        expect(gaps).toEqual([])
        // Some of them never came over pub/sub: they were read from the stream.
        expect(bus.messagesReceived).toBeLessThan(30)
      } finally {
        await publisher.close()
        await close()
      }
    })

    it('reports a gap when the history no longer holds what was missed', async () => {
      const prefix = uniquePrefix('gap')
      const { bus, close } = await slowlyReconnectingBus(prefix, 5)
      const publisher = new RedisBus({ url: redis.url, prefix, history: { size: 5 } })
      try {
        const got: number[] = []
        const gaps: string[] = []
        bus.onGap((topic) => gaps.push(topic))
        await bus.subscribe('gap', (m) => got.push(Number(m.data)))
        await publisher.publish('gap', '1')
        await waitFor(() => got.length === 1, 10_000, 'message 1')
        await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub')
        // Past the approximate trimming granularity (100 entries per stream node).
        for (let n = 2; n <= 400; n++) await publisher.publish('gap', String(n))
        await waitFor(() => gaps.length === 1, 10_000, 'the gap report')
        expect(gaps).toEqual(['gap'])
        await publisher.publish('gap', '401')
        await waitFor(() => got.includes(401), 10_000, 'message 401')
        expect(got[0]).toBe(1)
      } finally {
        await publisher.close()
        await close()
      }
    })
  })

  describe('Redis restarted mid-stream (its data lost)', () => {
    it('rejects publishes with BUS_UNAVAILABLE while down, keeps clients connected, then resumes and resyncs them', async () => {
      // Two instances on one Redis: one prefix for both.
      const prefix = uniquePrefix('restart')
      const buses = [0, 1].map(() => new RedisBus({ url: redis.url, prefix, publishTimeoutMs: 500 }))
      const [a, b] = await Promise.all(buses.map((bus) => useServer<Topics>({ bus })))
      await waitFor(() => buses.every((bus) => bus.healthy), 10_000, 'buses up')
      const recorders = await subscribedClients([a!.url, b!.url], 'restart')
      for (let n = 1; n <= 50; n++) await a!.realtime.publishTopic('restart', { n })
      await waitFor(() => recorders.every((r) => r.numbers.length === 50), 10_000, '50 patches')

      await redis.stop('SIGKILL')
      await waitFor(() => buses.every((bus) => !bus.healthy), 10_000, 'buses down')
      const started = Date.now()
      const outcomes = await Promise.allSettled(range(51, 60).map((n) => a!.realtime.publishTopic('restart', { n })))
      const waited = Date.now() - started
      for (const outcome of outcomes) {
        expect(outcome.status).toBe('rejected')
        const reason = (outcome as PromiseRejectedResult).reason
        expect(isRealtimeError(reason) && reason.code).toBe('BUS_UNAVAILABLE')
      }
      // Bounded: the publish timeout (500 ms) plus scheduling, never a hang.
      expect(waited).toBeLessThan(1500)
      expect(a!.realtime.stats()).toMatchObject({ busStatus: 'down' })

      await redis.start()
      await waitFor(() => buses.every((bus) => bus.healthy), 15_000, 'buses up again')
      // The history died with Redis: every subscriber is told to refetch.
      await waitFor(() => recorders.every((r) => r.resyncs.length === 1), 10_000, 'every client to resync')
      for (let n = 61; n <= 80; n++) await b!.realtime.publishTopic('restart', { n })
      await waitFor(() => recorders.every((r) => r.numbers.length === 70), 10_000, 'delivery to resume')
      for (const r of recorders) {
        expect(r.numbers).toEqual([...range(1, 50), ...range(61, 80)])
        expect(r.resyncs).toEqual(['restart'])
        // Connected once, at the start, and never dropped.
        expect(r.states).toEqual(['connected'])
      }
    })
  })

  describe('Redis FLUSHALL', () => {
    it('starts a new epoch; a client reconnecting from before it gets resync', async () => {
      const s = await server()
      // `returns` can be held offline: while `offline`, its reconnects go to a port nobody listens on.
      let offline = false
      const deadUrl = `ws://127.0.0.1:${await freePort()}/ws`
      const [stays, returns] = await subscribedClients([s.url, () => (offline ? deadUrl : s.url)], 'flushed')
      for (let n = 1; n <= 10; n++) await s.realtime.publishTopic('flushed', { n })
      await waitFor(() => stays!.numbers.length === 10 && returns!.numbers.length === 10, 10_000, '10 patches')
      const before = returns!.client.position('flushed')!

      await redis.command('FLUSHALL')
      const after = await s.realtime.publishTopic('flushed', { n: 11 })
      expect(after.epoch).not.toBe(before.epoch)
      await waitFor(() => stays!.numbers.length === 11 && returns!.numbers.length === 11, 10_000, 'patch 11')

      // Offline across a flush and new messages: nothing before the flush can be recovered. (Held
      // offline for sure: a reconnect that beat the flush would rightly see no loss and no resync.)
      offline = true
      returns!.client.reconnect()
      await redis.command('FLUSHALL')
      await s.realtime.publishTopic('flushed', { n: 12 })
      offline = false
      await waitFor(() => returns!.resyncs.length === 1, 10_000, 'resync')
      expect(returns!.resyncs).toEqual(['flushed'])
      await s.realtime.publishTopic('flushed', { n: 13 })
      await waitFor(() => returns!.numbers.includes(13) && stays!.numbers.includes(13), 10_000, 'patch 13')
      expect(stays!.numbers).toEqual(range(1, 13))
    })
  })

  describe('an instance killed with SIGKILL', () => {
    it('moves its clients to another instance, where they recover with no gap', async () => {
      const prefix = uniquePrefix('sigkill')
      const [a, b, c] = await Promise.all([0, 1, 2].map(() => startInstance({ redisUrl: redis.url, prefix, historySize: 5000 })))
      for (const instance of [a!, b!, c!]) closeAfterTest(() => instance.stop('SIGKILL'))
      // The load balancer: sends the movers to A while it is in the rotation, else to B.
      let alive = [a!, b!]
      const balanced = () => (alive.includes(a!) ? a! : b!).url
      const movers = await subscribedClients([balanced, balanced], 'killed')
      const onB = await subscribedClients([b!.url], 'killed')
      expect((await a!.stats()).stats).toMatchObject({ connections: 2 })

      const total = 2000
      let killed = false
      movers[0]!.client.on('patch', (msg) => {
        if (!killed && msg.payload.n === 700) {
          killed = true
          // Taken out of the rotation as its health check fails.
          alive = [b!]
          a!.process.kill('SIGKILL')
        }
      })
      const published = await c!.publish('killed', 1, total)
      expect(published.failed).toEqual([])
      await waitFor(() => [...movers, ...onB].every((r) => r.numbers.length >= total), 20_000, 'movers to get everything')
      expect(killed).toBe(true)
      for (const r of [...movers, ...onB]) {
        expect(r.numbers).toEqual(range(1, total))
        expect(r.resyncs).toEqual([])
      }
      // The movers did lose their connection, and came back (to B, the only one left).
      for (const r of movers) expect(r.states).toEqual(['connected', 'connecting', 'connected'])
      expect((await b!.stats()).stats).toMatchObject({ connections: 3 })
    })
  })
})
