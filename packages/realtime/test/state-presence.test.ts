import { afterAll, beforeAll, describe } from 'vitest'
import { InMemoryBus } from '../src/bus/memory.js'
import { RedisBus } from '../src/redis/index.js'
import { statePresenceSuite } from './state-presence.contract.js'
import { OwnRedisCluster } from './utils/cluster.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'

describe('state topics and presence on InMemoryBus (two servers on one bus)', () => {
  statePresenceSuite({
    async pair() {
      const bus = new InMemoryBus()
      return [bus, bus]
    },
  })
})

describe('state topics and presence on RedisBus (two servers on one Redis)', () => {
  const prefix = uniquePrefix('state-presence')
  const buses: RedisBus[] = []
  beforeAll(requireSharedRedis)
  afterAll(async () => {
    await Promise.all(buses.map((bus) => bus.close()))
    await deleteKeys(REDIS_URL, prefix)
  })
  statePresenceSuite({
    async pair() {
      const pair: [RedisBus, RedisBus] = [new RedisBus({ url: REDIS_URL, prefix }), new RedisBus({ url: REDIS_URL, prefix })]
      buses.push(...pair)
      return pair
    },
  })
})

describe('state topics and presence on RedisBus over a Redis Cluster (two servers)', () => {
  let cluster: OwnRedisCluster
  const buses: RedisBus[] = []
  beforeAll(async () => {
    cluster = await OwnRedisCluster.start()
  }, 60_000)
  afterAll(async () => {
    await Promise.all(buses.map((bus) => bus.close()))
    await cluster?.stop()
  })
  statePresenceSuite({
    async pair() {
      const prefix = uniquePrefix('state-presence-cluster')
      const pair: [RedisBus, RedisBus] = [new RedisBus({ cluster: { nodes: cluster.nodes }, prefix }), new RedisBus({ cluster: { nodes: cluster.nodes }, prefix })]
      buses.push(...pair)
      return pair
    },
  })
})
