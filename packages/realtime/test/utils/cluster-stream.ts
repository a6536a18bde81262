/**
 * A numbered stream through a fault of a Redis Cluster, with the project's own server and client:
 * two server instances on `RedisBus({ cluster })`, clients on both subscribed to topics spread over
 * every shard, a publisher alternating between the instances, and `fault()` run mid-stream. Shared
 * by `redis-cluster.test.ts` and the chaos scenario (`bench/src/chaos/cluster.ts`).
 */
import { isRealtimeError } from '../../src/errors.js'
import { RedisBus } from '../../src/redis/index.js'
import type { RealtimeClient } from '../../src/client/index.js'
import type { OwnRedisCluster } from './cluster.js'
import { uniquePrefix } from './redis.js'
import { connectClient, startServer, type TestServer } from './server.js'
import { sleep, waitFor } from './wait.js'

type Topics = Record<string, { n: number }>

export interface StreamOutcome {
  clients: number
  topics: string[]
  /** Topics served by the shard the fault hit. */
  faultTopics: string[]
  published: number
  confirmed: number
  rejected: number
  /** Confirmed messages a client never received on a topic it was not told to resync. */
  silentGaps: number
  duplicates: number
  /** Messages a client received out of order (outside a resync). */
  disorder: number
  resyncs: number
  /** Per topic: resyncs of its clients. */
  resyncsByTopic: Record<string, number>
  /** Gaps the buses reported (`onGap`), by topic. */
  gaps: Record<string, number>
  /** Milliseconds from the first rejected publish after the fault until a round of publishes to every topic succeeded again (0: none was rejected). */
  outageMs: number
}

/** Topics named `<label>:<i>`, `perShard` of them served by each primary. */
export async function topicsPerShard(cluster: OwnRedisCluster, prefix: string, label: string, perShard: number): Promise<Map<number, string[]>> {
  const primaries = (await cluster.primaries()).map((p) => p.port)
  const byPrimary = new Map<number, string[]>(primaries.map((p) => [p, []]))
  for (let i = 0; [...byPrimary.values()].some((list) => list.length < perShard); i++) {
    const topic = `${label}:${i}`
    const owner = await cluster.primaryOf(`${prefix}{${topic}}:s`)
    const list = byPrimary.get(owner)
    if (list && list.length < perShard) list.push(topic)
  }
  return byPrimary
}

export async function streamThroughFault(options: {
  cluster: OwnRedisCluster
  /** Runs mid-stream with the port of the primary to hit (it serves `faultTopics`). */
  fault: (primary: number) => Promise<void>
  clientsPerInstance?: number
  /** Publishing goes on this long after the fault returned. */
  afterMs?: number
  /** Publish rounds per second (each round publishes once to every topic). */
  rate?: number
}): Promise<StreamOutcome> {
  const { cluster } = options
  const prefix = uniquePrefix('cstream')
  const perShard = await topicsPerShard(cluster, prefix, 'stream', 2)
  const target = [...perShard.keys()][0]!
  const topics = [...perShard.values()].flat()
  const faultTopics = perShard.get(target)!
  const gaps: Record<string, number> = {}
  const servers: TestServer<Topics>[] = []
  const clients: RealtimeClient<Topics>[] = []
  try {
    for (let i = 0; i < 2; i++) {
      const bus = new RedisBus({ cluster: { nodes: cluster.nodes }, prefix, publishTimeoutMs: 1000 })
      bus.onGap((topic) => (gaps[topic] = (gaps[topic] ?? 0) + 1))
      servers.push(await startServer<Topics>({ bus }))
      await waitFor(() => bus.healthy, 10_000, 'the bus to be up')
    }
    const records = new Map<RealtimeClient<Topics>, { got: Map<string, number[]>; resynced: Map<string, number> }>()
    for (const server of servers) {
      for (let c = 0; c < (options.clientsPerInstance ?? 5); c++) {
        const client = connectClient<Topics>(server.url)
        clients.push(client)
        const record = { got: new Map(topics.map((t) => [t, [] as number[]])), resynced: new Map<string, number>() }
        records.set(client, record)
        client.on('patch', (m) => record.got.get(m.topic)?.push(m.payload.n))
        client.on('resync', (topic) => record.resynced.set(topic, (record.resynced.get(topic) ?? 0) + 1))
        for (const topic of topics) client.subscribe(topic)
      }
    }
    await waitFor(() => clients.every((c) => topics.every((t) => c.subscriptionState(t) === 'subscribed')), 20_000, 'clients subscribed')

    const confirmed = new Map(topics.map((t) => [t, new Set<number>()]))
    let published = 0
    let rejected = 0
    let stop = false
    let faultAt = 0
    let firstRejectedAt = 0
    let recoveredAt = 0
    const interval = 1000 / (options.rate ?? 100)
    const publishing = (async () => {
      for (let n = 1; !stop; n++) {
        const started = Date.now()
        const round = topics.map(async (topic, i) => {
          published++
          try {
            await servers[(n + i) % 2]!.realtime.publishTopic(topic, { n })
            confirmed.get(topic)!.add(n)
            return true
          } catch (error) {
            if (!isRealtimeError(error) || error.code !== 'BUS_UNAVAILABLE') throw error
            rejected++
            if (faultAt && !firstRejectedAt) firstRejectedAt = started
            return false
          }
        })
        const ok = await Promise.all(round)
        if (firstRejectedAt && !recoveredAt && ok.every(Boolean)) recoveredAt = Date.now()
        await sleep(Math.max(0, interval - (Date.now() - started)))
      }
    })()
    await sleep(500)
    faultAt = Date.now()
    await options.fault(target)
    await sleep(options.afterMs ?? 3000)
    stop = true
    await publishing
    // Everything confirmed arrives, or its client was told to resync.
    const settled = () =>
      [...records.values()].every((r) => topics.every((t) => r.resynced.has(t) || [...confirmed.get(t)!].every((n) => r.got.get(t)!.includes(n))))
    await waitFor(settled, 10_000, 'every confirmed message delivered or resynced').catch(() => {})

    let silentGaps = 0
    let duplicates = 0
    let disorder = 0
    let resyncs = 0
    const resyncsByTopic: Record<string, number> = {}
    for (const record of records.values()) {
      for (const topic of topics) {
        const got = record.got.get(topic)!
        const seen = new Set(got)
        duplicates += got.length - seen.size
        const resynced = record.resynced.get(topic) ?? 0
        resyncs += resynced
        if (resynced > 0) resyncsByTopic[topic] = (resyncsByTopic[topic] ?? 0) + resynced
        else {
          for (let i = 1; i < got.length; i++) if (got[i]! <= got[i - 1]!) disorder++
          for (const n of confirmed.get(topic)!) if (!seen.has(n)) silentGaps++
        }
      }
    }
    let confirmedCount = 0
    for (const set of confirmed.values()) confirmedCount += set.size
    return {
      clients: clients.length,
      topics,
      faultTopics,
      published,
      confirmed: confirmedCount,
      rejected,
      silentGaps,
      duplicates,
      disorder,
      resyncs,
      resyncsByTopic,
      gaps,
      outageMs: firstRejectedAt ? (recoveredAt || Date.now()) - firstRejectedAt : 0,
    }
  } finally {
    for (const client of clients) client.close()
    await Promise.all(servers.map((s) => s.close()))
    await cluster.deleteKeys(prefix).catch(() => {})
  }
}
