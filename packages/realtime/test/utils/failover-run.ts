/**
 * One Sentinel failover under load, measured from the clients' side: two server instances with a
 * `RedisBus` on Sentinel each, library clients spread over both and over a few topics, numbered
 * publishes (each topic's in sequence, alternating between the instances) while `fault` runs.
 * Used by `redis-sentinel.test.ts` (small) and `bench/src/chaos/sentinel.ts` (long). No vitest.
 */
import { Redis } from 'ioredis'
import { isRealtimeError } from '../../src/errors.js'
import type { RealtimeClient } from '../../src/client/index.js'
import { RedisBus, type GapReason } from '../../src/redis/index.js'
import type { SentinelSet } from './sentinel.js'
import { connectClient, startServer, type TestServer } from './server.js'
import { uniquePrefix } from './redis.js'
import { sleep, waitFor } from './wait.js'

type Topics = Record<string, { n: number }>

export interface FailoverRunOptions {
  set: SentinelSet
  /** The fault, started after `beforeMs` of publishing; publishing goes on meanwhile. */
  fault: (set: SentinelSet) => Promise<unknown>
  topics?: number
  /** Clients per topic, half on each instance. */
  clientsPerTopic?: number
  /** Publishes per second, over all topics. */
  ratePerSecond?: number
  beforeMs?: number
  /** Publishing goes on this long after the fault returned. */
  afterMs?: number
  publishTimeoutMs?: number
  /** `RedisBus`'s `replicaAck` option. */
  replicaAck?: boolean
  label?: string
}

export interface FailoverRunResult {
  clients: number
  published: number
  confirmed: number
  rejected: number
  /** Rejected publishes that reached clients all the same (a reply lost with the connection: "unknown"). */
  rejectedDelivered: number
  /** Confirmed messages a client never received, with no resync of that topic after the publish. */
  silentGaps: number
  duplicates: number
  outOfOrder: number
  /** Client `resync` events, and the topics they were for. */
  resyncs: number
  clientsResynced: number
  /** Gap reports of the two buses, by reason (each becomes a resync of that topic's clients on that instance). */
  gaps: Record<GapReason, number>
  /** Failovers the buses' checks followed, and topics they fenced. */
  failovers: number
  fenced: number
  /** Rejections by error code. */
  rejections: Record<string, number>
  /** The longest time without a confirmed publish (the failover as publishers see it), in ms. */
  stallMs: number
  /**
   * Confirmed messages the final primary's streams do not hold (lost with the old primary in the
   * replication window; the streams keep the whole run here).
   */
  lostFromHistory: number
  /**
   * Of those, the ones whose topic still has the epoch they were confirmed under: a client away
   * since before them would "recover" across them (the silent gap in history). Must be 0.
   */
  lostUnfenced: number
  /** Lines for a failure message: the first few silent gaps, duplicates, reorders. */
  problems: string[]
}

interface Received {
  n: number
  at: number
}

export async function runFailover(options: FailoverRunOptions): Promise<FailoverRunResult> {
  const topicCount = options.topics ?? 3
  const perTopic = options.clientsPerTopic ?? 4
  const rate = options.ratePerSecond ?? 200
  const prefix = uniquePrefix(options.label ?? 'sentinel')
  const servers: TestServer<Topics>[] = []
  const buses: RedisBus[] = []
  const clients: RealtimeClient<Topics>[] = []
  const gaps: Record<GapReason, number> = { history: 0, epoch: 0, failover: 0 }
  try {
    for (let i = 0; i < 2; i++) {
      const bus = new RedisBus({
        sentinel: { sentinels: options.set.addresses, name: options.set.name },
        prefix,
        publishTimeoutMs: options.publishTimeoutMs ?? 1000,
        // The whole run stays in the streams, to count what the failover lost from them.
        history: { size: 1_000_000 },
        replicaAck: options.replicaAck ?? false,
      })
      bus.onGap((_topic, reason) => gaps[reason]++)
      buses.push(bus)
      servers.push(await startServer<Topics>({ bus }))
    }
    await waitFor(() => buses.every((b) => b.healthy), 10_000, 'the buses to be up')

    const topics = Array.from({ length: topicCount }, (_, i) => `t${i}`)
    const received = new Map<RealtimeClient<Topics>, Map<string, Received[]>>()
    const resyncs = new Map<RealtimeClient<Topics>, Map<string, number[]>>()
    const clientTopic = new Map<RealtimeClient<Topics>, string>()
    for (const topic of topics) {
      for (let c = 0; c < perTopic; c++) {
        const client = connectClient<Topics>((servers[c % 2] as TestServer<Topics>).url)
        const mine = new Map<string, Received[]>([[topic, []]])
        const resynced = new Map<string, number[]>([[topic, []]])
        client.on('patch', (message) => mine.get(message.topic)?.push({ n: message.payload.n, at: Date.now() }))
        client.on('resync', (t) => resynced.get(t)?.push(Date.now()))
        client.subscribe(topic)
        clients.push(client)
        received.set(client, mine)
        resyncs.set(client, resynced)
        clientTopic.set(client, topic)
      }
    }
    await waitFor(() => clients.every((c) => c.subscriptionState(clientTopic.get(c) as string) === 'subscribed'), 20_000, 'every client subscribed')

    // Each topic's publishes in sequence (so their order in Redis is their numbering), from the
    // two instances in turn; all topics together at `rate` per second.
    const confirmed = new Map<string, Map<number, number>>(topics.map((t) => [t, new Map()]))
    const offsets = new Map<string, { epoch: string; offset: string }[]>(topics.map((t) => [t, []]))
    const rejected = new Map<string, Set<number>>(topics.map((t) => [t, new Set()]))
    const rejections: Record<string, number> = {}
    let published = 0
    let lastConfirmedAt = Date.now()
    let stallMs = 0
    let publishing = true
    const intervalMs = (1000 * topicCount) / rate
    const loops = topics.map(async (topic, index) => {
      let n = 0
      let next = Date.now() + (index * intervalMs) / topicCount
      while (publishing) {
        const wait = next - Date.now()
        if (wait > 0) await sleep(wait)
        next += intervalMs
        n++
        published++
        const startedAt = Date.now()
        const server = servers[n % 2] as TestServer<Topics>
        try {
          const position = await server.realtime.publishTopic(topic, { n })
          offsets.get(topic)?.push(position)
          ;(confirmed.get(topic) as Map<number, number>).set(n, startedAt)
          const now = Date.now()
          stallMs = Math.max(stallMs, now - lastConfirmedAt)
          lastConfirmedAt = now
        } catch (error) {
          ;(rejected.get(topic) as Set<number>).add(n)
          const code = isRealtimeError(error) ? error.code : 'OTHER'
          rejections[code] = (rejections[code] ?? 0) + 1
          // Behind schedule after a wait: do not burst to catch up.
          next = Math.max(next, Date.now())
        }
      }
    })
    await sleep(options.beforeMs ?? 1500)
    await options.fault(options.set)
    await sleep(options.afterMs ?? 2000)
    publishing = false
    await Promise.all(loops)

    // Every client has the last confirmed message of its topic (or the wait ends and the count says).
    const lastOf = (topic: string) => Math.max(0, ...(confirmed.get(topic) as Map<number, number>).keys())
    await waitFor(
      () => clients.every((c) => {
        const topic = clientTopic.get(c) as string
        const list = received.get(c)?.get(topic) ?? []
        return list.some((r) => r.n === lastOf(topic))
      }),
      10_000,
      'every client to get the last confirmed message of its topic',
    ).catch(() => {})

    const problems: string[] = []
    let silentGaps = 0
    let duplicates = 0
    let outOfOrder = 0
    let rejectedDelivered = 0
    let resyncCount = 0
    let clientsResynced = 0
    for (const client of clients) {
      const topic = clientTopic.get(client) as string
      const list = received.get(client)?.get(topic) ?? []
      const times = resyncs.get(client)?.get(topic) ?? []
      resyncCount += times.length
      if (times.length > 0) clientsResynced++
      const seen = new Set<number>()
      let previous = 0
      for (const { n } of list) {
        if (seen.has(n)) {
          duplicates++
          if (problems.length < 10) problems.push(`${topic}: duplicate ${n}`)
        }
        if (n < previous) {
          outOfOrder++
          if (problems.length < 10) problems.push(`${topic}: ${n} after ${previous}`)
        }
        seen.add(n)
        previous = Math.max(previous, n)
        if ((rejected.get(topic) as Set<number>).has(n)) rejectedDelivered++
      }
      for (const [n, startedAt] of confirmed.get(topic) as Map<number, number>) {
        if (seen.has(n)) continue
        // A resync after the publish started covers it: the client refetches the state.
        if (times.some((t) => t >= startedAt)) continue
        silentGaps++
        if (problems.length < 10) problems.push(`${topic}: confirmed ${n} never reached a client, no resync after it`)
      }
    }
    let lostFromHistory = 0
    let lostUnfenced = 0
    const reader = new Redis({ sentinels: options.set.addresses, name: options.set.name, maxRetriesPerRequest: 1 })
    reader.on('error', () => {})
    try {
      for (const topic of topics) {
        const entries = await reader.xrange(`${prefix}{${topic}}:s`, '-', '+')
        const held = new Set(entries.map(([id]) => id))
        const epoch = await reader.hget(`${prefix}{${topic}}:e`, 'e')
        for (const position of offsets.get(topic) ?? []) {
          if (held.has(position.offset)) continue
          lostFromHistory++
          if (position.epoch === epoch) {
            lostUnfenced++
            if (problems.length < 10) problems.push(`${topic}: confirmed ${position.offset} lost from the stream, epoch unchanged`)
          }
        }
      }
    } finally {
      reader.disconnect()
    }
    let confirmedCount = 0
    let rejectedCount = 0
    for (const topic of topics) {
      confirmedCount += (confirmed.get(topic) as Map<number, number>).size
      rejectedCount += (rejected.get(topic) as Set<number>).size
    }
    return {
      clients: clients.length,
      published,
      confirmed: confirmedCount,
      rejected: rejectedCount,
      rejectedDelivered,
      silentGaps,
      duplicates,
      outOfOrder,
      resyncs: resyncCount,
      clientsResynced,
      gaps,
      failovers: buses.reduce((sum, b) => sum + (b.failoverChecks?.failovers ?? 0), 0),
      fenced: buses.reduce((sum, b) => sum + (b.failoverChecks?.fenced ?? 0), 0),
      rejections,
      stallMs,
      lostFromHistory,
      lostUnfenced,
      problems,
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()))
    await Promise.all(servers.map((s) => s.close()))
  }
}
