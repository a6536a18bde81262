import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BusMessage } from '../src/bus/types.js'
import { RedisBus } from '../src/redis/index.js'
import { busContractSuite } from './bus-contract.js'
import { OwnRedisCluster } from './utils/cluster.js'
import { streamThroughFault, topicsPerShard } from './utils/cluster-stream.js'
import { closeAfterTest } from './utils/harness.js'
import { uniquePrefix } from './utils/redis.js'
import { sleep, waitFor } from './utils/wait.js'

// A cluster of the file's own: 3 primaries, 3 replicas, on free ports.
let cluster: OwnRedisCluster

beforeAll(async () => {
  cluster = await OwnRedisCluster.start()
}, 60_000)
afterAll(() => cluster?.stop())

function clusterBus(prefix: string, options: Omit<ConstructorParameters<typeof RedisBus>[0] & object, 'cluster' | 'prefix'> = {}): RedisBus {
  return new RedisBus({ cluster: { nodes: cluster.nodes }, prefix, ...options })
}

let prefix = uniquePrefix('ccontract')

busContractSuite('RedisBus on a Redis Cluster', {
  create: (options) => clusterBus(prefix, options),
  peer: () => clusterBus(prefix),
  loseHistory: async (bus) => {
    await cluster.deleteKeys(prefix)
    return bus
  },
  cleanup: async () => {
    await cluster.deleteKeys(prefix)
    prefix = uniquePrefix('ccontract')
  },
  // One script per slot: the two topics of a call are each in order, not in one order together.
  atomicAcrossTopics: false,
})

/** `INFO commandstats` calls of `command` on the node on `port`. */
async function calls(port: number, command: string): Promise<number> {
  const info = String(await cluster.command(port, 'INFO', 'commandstats'))
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)
  return match ? Number(match[1]) : 0
}

/** A `CLUSTER INFO` counter of the node on `port`. */
async function clusterStat(port: number, name: string): Promise<number> {
  const info = String(await cluster.command(port, 'CLUSTER', 'INFO'))
  const match = new RegExp(`${name}:(\\d+)`).exec(info)
  return match ? Number(match[1]) : 0
}

describe('RedisBus on a Redis Cluster', () => {
  describe('sharded pub/sub', () => {
    it('spreads publishes to 1,000 topics over every primary, and each topic\'s messages stay in its shard', async () => {
      const p = uniquePrefix('spread')
      const publisher = clusterBus(p)
      closeAfterTest(() => publisher.close())
      const primaries = (await cluster.primaries()).map((n) => n.port)
      for (const port of primaries) await cluster.command(port, 'CONFIG', 'RESETSTAT')
      const topics = Array.from({ length: 1000 }, (_, i) => `spread:${i}`)
      for (let i = 0; i < topics.length; i += 50) await Promise.all(topics.slice(i, i + 50).map((t) => publisher.publish(t, '1')))
      const perPrimary: number[] = []
      for (const port of primaries) {
        const spublish = await calls(port, 'spublish')
        perPrimary.push(spublish)
        // Every SPUBLISH ran inside the publish script, on the node that holds the topic's stream.
        expect(await calls(port, 'xadd')).toBe(spublish)
        expect(await calls(port, 'publish')).toBe(0)
      }
      expect(perPrimary.reduce((a, b) => a + b, 0)).toBe(1000)
      // 16384 slots in 3 even ranges: each primary gets about a third.
      for (const count of perPrimary) expect(count).toBeGreaterThan(250)
      await cluster.deleteKeys(p)
    })

    it('sends a topic\'s messages only to its shard\'s nodes, and only to instances that subscribed it', async () => {
      const p = uniquePrefix('shard')
      const [subscriber, idle, publisher] = [clusterBus(p), clusterBus(p), clusterBus(p)]
      for (const bus of [subscriber, idle, publisher]) closeAfterTest(() => bus.close())
      const perShard = await topicsPerShard(cluster, p, 'shard', 1)
      const [owner, topic] = [...perShard].map(([port, list]) => [port, list[0]!] as const)[0]!
      const got: BusMessage[] = []
      await subscriber.subscribe(topic, (m) => got.push(m))
      const channel = `${p}{${topic}}:c`
      expect(await cluster.command(owner, 'PUBSUB', 'SHARDNUMSUB', channel)).toEqual([channel, 1])

      const nodes = (await cluster.topology()).map((n) => n.port)
      const shard = new Set([owner, await cluster.replicaOf(owner)])
      const before = new Map<number, [number, number]>()
      for (const port of nodes) {
        before.set(port, [await clusterStat(port, 'cluster_stats_messages_publishshard_received'), await clusterStat(port, 'cluster_stats_messages_publish_received')])
      }
      for (let n = 1; n <= 100; n++) await publisher.publish(topic, String(n))
      await waitFor(() => got.length === 100, 10_000, '100 messages')
      // The cluster bus gossip is not instant: give the counters a moment.
      await sleep(300)
      for (const port of nodes) {
        const [shardBefore, classicBefore] = before.get(port)!
        const shardReceived = (await clusterStat(port, 'cluster_stats_messages_publishshard_received')) - shardBefore
        const classicReceived = (await clusterStat(port, 'cluster_stats_messages_publish_received')) - classicBefore
        expect(classicReceived).toBe(0)
        // The owner executes SPUBLISH itself; its replica gets each message once; the 4 other nodes none.
        if (port === owner) expect(shardReceived).toBe(0)
        else if (shard.has(port)) expect(shardReceived).toBe(100)
        else expect(shardReceived).toBe(0)
      }
      expect(idle.messagesReceived).toBe(0)
      expect(publisher.messagesReceived).toBe(0)
      expect(subscriber.messagesReceived).toBe(100)

      // What classic PUBLISH would do: one message reaches every other node of the cluster.
      await cluster.command(owner, 'PUBLISH', channel, 'x')
      await sleep(300)
      for (const port of nodes) {
        if (port === owner) continue
        expect((await clusterStat(port, 'cluster_stats_messages_publish_received')) - before.get(port)![1]).toBe(1)
      }
      await cluster.deleteKeys(p)
    })

    it('groups a multi-topic publish by slot, keeping each topic in order and the idempotency key per group', async () => {
      const p = uniquePrefix('many')
      const bus = clusterBus(p)
      closeAfterTest(() => bus.close())
      const topics = [...(await topicsPerShard(cluster, p, 'many', 2)).values()].flat()
      const got = new Map<string, number[]>(topics.map((t) => [t, []]))
      for (const topic of topics) await bus.subscribe(topic, (m) => got.get(topic)!.push(Number(m.data)))
      for (let n = 1; n <= 20; n++) await bus.publishMany(topics, String(n))
      const first = await bus.publishMany(topics, '21', { id: 'row-21' })
      const again = await bus.publishMany(topics, '21', { id: 'row-21' })
      expect(again).toEqual(first)
      await waitFor(() => [...got.values()].every((list) => list.length === 21), 10_000, '21 messages per topic')
      for (const list of got.values()) expect(list).toEqual(Array.from({ length: 21 }, (_, i) => i + 1))
      await cluster.deleteKeys(p)
    })

    it('refuses a prefix with a hash tag of its own, and flow control options', () => {
      expect(() => new RedisBus({ cluster: { nodes: cluster.nodes }, prefix: 'app{x}:' })).toThrow(TypeError)
      expect(() => new RedisBus({ cluster: { nodes: cluster.nodes }, flowControl: { targetLagMs: 50 } })).toThrow(TypeError)
      expect(() => new RedisBus({ cluster: { nodes: cluster.nodes }, url: 'redis://127.0.0.1:6379' })).toThrow(TypeError)
    })
  })

  describe('slot moves', () => {
    it('follows a topic whose slot is migrated to another primary, filling what it missed from the stream', async () => {
      const p = uniquePrefix('reshard')
      // History enough for the whole run: what the subscriber misses until it notices is in the stream.
      const [subscriber, publisher] = [clusterBus(p, { history: { size: 5000 } }), clusterBus(p, { history: { size: 5000 } })]
      for (const bus of [subscriber, publisher]) closeAfterTest(() => bus.close())
      const perShard = await topicsPerShard(cluster, p, 'move', 1)
      const [[source, [topic]], [destination]] = [...perShard] as [[number, string[]], [number, string[]]]
      const got: number[] = []
      const gaps: string[] = []
      subscriber.onGap((t) => gaps.push(t))
      await subscriber.subscribe(topic!, (m) => got.push(Number(m.data)))
      let n = 0
      let stop = false
      const publishing = (async () => {
        while (!stop) {
          await publisher.publish(topic!, String(++n)).catch(() => n--)
          await sleep(2)
        }
      })()
      await sleep(200)
      await migrateSlot(`${p}{${topic}}:s`, source, destination!)
      await sleep(1500)
      stop = true
      await publishing
      await waitFor(() => got.length === n, 10_000, `all ${n} messages`)
      expect(got).toEqual(Array.from({ length: n }, (_, i) => i + 1))
      expect(gaps).toEqual([])
      expect(await cluster.primaryOf(`${p}{${topic}}:s`)).toBe(destination)
      expect(await cluster.command(destination!, 'PUBSUB', 'SHARDNUMSUB', `${p}{${topic}}:c`)).toEqual([`${p}{${topic}}:c`, 1])
      // Give the slot back, so the later tests find 3 even shards.
      await migrateSlot(`${p}{${topic}}:s`, destination!, source)
      await cluster.deleteKeys(p)
    })
  })

  describe('failover of a primary mid-stream', () => {
    it('CLUSTER FAILOVER on its replica: every confirmed publish is delivered, or its client resynced', async () => {
      const outcome = await streamThroughFault({
        cluster,
        fault: async (primary) => {
          const replica = await cluster.replicaOf(primary)
          await cluster.command(replica, 'CLUSTER', 'FAILOVER')
          await waitFor(async () => (await cluster.primaries()).some((n) => n.port === replica), 10_000, 'the replica promoted')
        },
      })
      console.log('CLUSTER FAILOVER:', JSON.stringify(outcome))
      expect(outcome.silentGaps).toBe(0)
      expect(outcome.duplicates).toBe(0)
      expect(outcome.disorder).toBe(0)
      expect(outcome.confirmed).toBeGreaterThan(outcome.published * 0.8)
      await cluster.waitUntilOk()
    })

    it('SIGKILL of a primary: every confirmed publish is delivered, or its client resynced; rejected ones are BUS_UNAVAILABLE', async () => {
      let killed = 0
      const outcome = await streamThroughFault({
        cluster,
        afterMs: 5000,
        fault: async (primary) => {
          killed = primary
          const replica = await cluster.replicaOf(primary)
          await cluster.server(primary).stop('SIGKILL')
          await waitFor(async () => (await cluster.primaries()).some((n) => n.port === replica), 15_000, 'the replica promoted')
        },
      })
      console.log('SIGKILL:', JSON.stringify(outcome))
      expect(outcome.silentGaps).toBe(0)
      expect(outcome.duplicates).toBe(0)
      expect(outcome.disorder).toBe(0)
      // The killed shard's topics could not be published to until its replica took over.
      expect(outcome.rejected).toBeGreaterThan(0)
      expect(outcome.outageMs).toBeGreaterThan(0)
      // The old primary comes back as a replica of the new one.
      await cluster.server(killed).start()
      await cluster.waitUntilOk()
    })
  })
})

/** Moves the slot of `key` (and its keys) from the primary on `from` to the one on `to`. */
async function migrateSlot(key: string, from: number, to: number): Promise<void> {
  const slot = Number(await cluster.command(from, 'CLUSTER', 'KEYSLOT', key))
  const nodes = await cluster.topology()
  const id = (port: number) => nodes.find((n) => n.port === port)!.id
  await cluster.command(to, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', id(from))
  await cluster.command(from, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', id(to))
  for (;;) {
    const keys = (await cluster.command(from, 'CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[]
    if (keys.length === 0) break
    await cluster.command(from, 'MIGRATE', '127.0.0.1', to, '', 0, 5000, 'KEYS', ...keys)
  }
  for (const node of await cluster.primaries()) await cluster.command(node.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', id(to))
}
