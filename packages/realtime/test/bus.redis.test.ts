import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BusMessage } from '../src/bus/types.js'
import { REDIS_BUS_CONNECTION_OPTIONS, RedisBus } from '../src/redis/index.js'
import { busContractSuite } from './bus-contract.js'
import { closeAfterTest } from './utils/harness.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'
import { waitFor } from './utils/wait.js'

beforeAll(requireSharedRedis)

let prefix = uniquePrefix('contract')

busContractSuite('RedisBus', {
  create: (options) => new RedisBus({ url: REDIS_URL, prefix, ...options }),
  peer: () => new RedisBus({ url: REDIS_URL, prefix }),
  // What a restarted Redis without persistence, or a FLUSHALL, leaves: none of the bus's keys.
  loseHistory: async (bus) => {
    await deleteKeys(REDIS_URL, prefix)
    return bus
  },
  cleanup: async () => {
    await deleteKeys(REDIS_URL, prefix)
    prefix = uniquePrefix('contract')
  },
})

describe('RedisBus', () => {
  const testPrefix = uniquePrefix('redisbus')

  afterAll(() => deleteKeys(REDIS_URL, testPrefix))

  function redisBus(options: ConstructorParameters<typeof RedisBus>[0] = {}): RedisBus {
    const bus = new RedisBus({ url: REDIS_URL, prefix: testPrefix, ...options })
    closeAfterTest(() => bus.close())
    return bus
  }

  describe('across instances', () => {
    it('delivers a message published on one instance to listeners on every instance, once', async () => {
      const [a, b, c] = [redisBus(), redisBus(), redisBus()]
      const got = new Map<string, BusMessage[]>()
      for (const [name, bus] of [['a', a], ['b', b], ['c', c]] as const) {
        got.set(name, [])
        await bus.subscribe('across:1', (m) => got.get(name)!.push(m))
      }
      const positions = [await a.publish('across:1', '"from a"'), await b.publish('across:1', '"from b"'), await c.publish('across:1', '"from c"')]
      await waitFor(() => [...got.values()].every((list) => list.length === 3), 10_000, '3 messages on every instance')
      for (const list of got.values()) {
        expect(list.map((m) => m.data)).toEqual(['"from a"', '"from b"', '"from c"'])
        expect(list.map((m) => m.offset)).toEqual(positions.map((p) => p.offset))
      }
      // One instance recovers what another published: the history is in Redis, not in a process.
      const result = await c.history('across:1', positions[0])
      expect(result.recovered).toBe(true)
      expect(result.messages.map((m) => m.data)).toEqual(['"from b"', '"from c"'])
    })
  })

  describe('new RedisBus({ redis })', () => {
    it('works on caller-supplied connections and leaves them open on close', async () => {
      const pub = new Redis(REDIS_URL, REDIS_BUS_CONNECTION_OPTIONS)
      const sub = new Redis(REDIS_URL, REDIS_BUS_CONNECTION_OPTIONS)
      for (const connection of [pub, sub]) closeAfterTest(() => connection.quit())
      const bus = new RedisBus({ redis: { pub, sub }, prefix: testPrefix })
      const got: string[] = []
      await bus.subscribe('supplied', (m) => got.push(m.data))
      await bus.publish('supplied', '1')
      await waitFor(() => got.length === 1, 10_000, 'the message')
      await bus.close()
      expect(pub.status).toBe('ready')
      expect(await pub.ping()).toBe('PONG')
      // The bus took its channels back from the shared subscriber connection.
      await waitFor(async () => (await pub.pubsub('SHARDNUMSUB', `${testPrefix}{supplied}:c`))[1] === 0, 10_000, 'no channel left')
    })

    it('refuses one connection for both roles', () => {
      const same = new Redis(REDIS_URL, { lazyConnect: true })
      expect(() => new RedisBus({ redis: { pub: same, sub: same } })).toThrow(TypeError)
      same.disconnect()
    })
  })

  describe('#healthy and #onStatus', () => {
    it('is healthy once both connections are up', async () => {
      const bus = redisBus()
      const statuses: string[] = []
      bus.onStatus((s) => statuses.push(s))
      await waitFor(() => bus.healthy, 10_000, 'healthy')
      expect(statuses).toEqual(['up'])
    })
  })

  describe('keys', () => {
    it('keeps a topic in one stream (capped near the history size, expiring) and one epoch hash', async () => {
      const bus = redisBus({ history: { size: 10, ttlMs: 60_000 } })
      for (let i = 0; i < 250; i++) await bus.publish('keys:1', String(i))
      const redis = new Redis(REDIS_URL)
      closeAfterTest(() => redis.quit())
      const keys = (await redis.keys(`${testPrefix}{keys:1}*`)).sort()
      expect(keys).toEqual([`${testPrefix}{keys:1}:e`, `${testPrefix}{keys:1}:s`])
      const length = await redis.xlen(`${testPrefix}{keys:1}:s`)
      // Approximate trimming removes whole stream nodes (100 entries): at least size + 1 remain.
      expect(length).toBeGreaterThanOrEqual(11)
      expect(length).toBeLessThanOrEqual(111)
      for (const key of keys) {
        const ttl = await redis.pttl(key)
        expect(ttl).toBeGreaterThan(50_000)
        expect(ttl).toBeLessThanOrEqual(60_000)
      }
    })
  })
})
