/**
 * The rolling-deploy scenario, shared by `test/rolling-deploy.test.ts` (bounded) and the chaos
 * runner (`bench/src/chaos/rolling-deploy.ts`, full size): N instances in separate processes on
 * one Redis of its own, library clients behind a round-robin "load balancer" over the instances in
 * rotation, numbered messages published at a steady rate on a few topics, and every
 * `restartEveryMs` one instance (in turn) taken out of rotation, drained (`close()` over
 * `drainMs`), and replaced by a fresh process that rejoins the rotation once its `/healthz` says
 * ready. Measures what the clients got (gaps, duplicates, resyncs), the reconnects each instance
 * took per second, and how the connections are spread at the end.
 */
import WebSocket from 'ws'
import { createRealtimeClient, type RealtimeClient } from '../../src/client/index.js'
import { isRealtimeError } from '../../src/errors.js'
import { RedisBus } from '../../src/redis/index.js'
import { createRealtimeServer } from '../../src/server/index.js'
import { startInstance, type Instance } from './instances.js'
import { OwnRedisServer } from './redis.js'
import { sleep, waitFor } from './wait.js'

export interface RollingDeployOptions {
  clients: number
  instances?: number
  topics?: number
  /** Messages per second, over all topics. */
  rate: number
  /** How long the deploy runs (publishing all along). */
  seconds: number
  restartEveryMs: number
  drainMs: number
  rebalance: { intervalMs?: number; tolerance?: number; maxPerInterval?: number } | false
  /** After publishing stops: how long to wait for the load to even out. */
  settleMs?: number
  /** The publisher's RedisBus flow control (default on, as in production). */
  publisherFlowControl?: boolean
  /** Progress lines (the chaos runner prints them). */
  log?: (line: string) => void
}

export interface RollingDeployResult {
  clients: number
  published: number
  confirmed: number
  rejected: number
  /** Confirmed messages some subscribed client never got (and was not told to resync for). */
  silentGaps: number
  duplicates: number
  /** Messages out of order, on any client. */
  outOfOrder: number
  /** Publishes that neither resolved nor rejected within 15 s of the end (should be 0). */
  unsettled: number
  resyncs: number
  restarts: number
  /** Messages per second actually published. */
  achievedRate: number
  /** The most connections any instance accepted within one second while the deploy ran. */
  peakReconnectsPerSecond: number
  /** `clients per instance ÷ drainMs` (per second): the pace a drain moves clients at. */
  drainRate: number
  /** Connections per instance at the end, and the even share. */
  finalCounts: number[]
  evenShare: number
  /** How long the load took to even out after publishing stopped (ms), or undefined if it did not. */
  settledAfterMs: number | undefined
  moved: { drain: number; rebalance: number }
}

interface Tracked {
  client: RealtimeClient
  topic: string
  got: number[]
}

export async function rollingDeploy(options: RollingDeployOptions): Promise<RollingDeployResult> {
  const log = options.log ?? (() => undefined)
  const instanceCount = options.instances ?? 3
  const topicCount = options.topics ?? 5
  const redis = await OwnRedisServer.start()
  const prefix = 'deploy:'
  const instanceOptions = {
    redisUrl: redis.url,
    prefix,
    // Enough for the longest time a client spends between two instances, at the topic's rate.
    historySize: 2000,
    drainMs: options.drainMs,
    ...(options.rebalance ? { rebalance: options.rebalance } : {}),
  }
  const slots: Instance[] = await Promise.all(Array.from({ length: instanceCount }, () => startInstance(instanceOptions)))
  const inRotation = new Set<Instance>(slots)
  /** Every instance process that ran, for the reconnect rates (read when it drains, or at the end). */
  const opensByInstance = new Map<Instance, number[]>()
  const tracked: Tracked[] = []
  const publisherBus = new RedisBus({
    url: redis.url,
    prefix,
    history: { size: 2000 },
    ...(options.publisherFlowControl === false ? { flowControl: false as const } : {}),
  })
  const publisher = createRealtimeServer({ noServer: true, bus: publisherBus })
  let resyncs = 0
  let publishing = true
  try {
    let next = 0
    const balancer = (): string => {
      const live = slots.filter((instance) => inRotation.has(instance))
      const pool = live.length > 0 ? live : slots
      return pool[next++ % pool.length]!.url
    }
    for (let i = 0; i < options.clients; i++) {
      const topic = `t${i % topicCount}`
      const client = createRealtimeClient({ url: balancer, WebSocket: WebSocket as never })
      const entry: Tracked = { client, topic, got: [] }
      client.on('patch', (message) => entry.got.push((message.payload as { n: number }).n))
      client.on('resync', () => resyncs++)
      client.subscribe(topic)
      tracked.push(entry)
    }
    await waitFor(() => tracked.every((t) => t.client.subscriptionState(t.topic) === 'subscribed'), 30_000, 'every client subscribed')
    log(`${options.clients} clients subscribed on ${instanceCount} instances`)

    // Publishing: `rate` per second in 10-ms ticks, topics in turn, numbered per topic.
    const counters = Array.from({ length: topicCount }, () => 0)
    const confirmed = Array.from({ length: topicCount }, () => new Set<number>())
    let published = 0
    let rejected = 0
    let checking = true
    const rejections = new Map<string, number>()
    const pending = new Set<Promise<unknown>>()
    const started = performance.now()
    const publishLoop = (async () => {
      let turn = 0
      while (publishing) {
        const due = Math.floor(((performance.now() - started) / 1000) * options.rate)
        while (published < due) {
          const t = turn++ % topicCount
          const n = ++counters[t]!
          published++
          const p = publisher.publishTopic(`t${t}`, { n }).then(
            // What counts is what was confirmed by the end: a publish settling later is not checked.
            () => void (checking && confirmed[t]!.add(n)),
            (error: unknown) => {
              rejected++
              const code = isRealtimeError(error) ? error.code : String(error)
              rejections.set(code, (rejections.get(code) ?? 0) + 1)
            },
          )
          pending.add(p)
          void p.finally(() => pending.delete(p))
        }
        await sleep(10)
      }
    })()

    // The deploy: every restartEveryMs, the next instance in turn.
    const deployStart = Date.now()
    let restarts = 0
    let movedDrain = 0
    let movedRebalance = 0
    const endAt = started + options.seconds * 1000
    // At every multiple of restartEveryMs within the run (at once, if the previous one ran over).
    for (let k = 1; k * options.restartEveryMs < options.seconds * 1000; k++) {
      await sleep(Math.max(0, started + k * options.restartEveryMs - performance.now()))
      const slot = restarts % instanceCount
      const leaving = slots[slot]!
      inRotation.delete(leaving)
      const drainedAt = performance.now()
      // The successor's process starts meanwhile (as an orchestrator schedules the new pod while
      // the old one terminates); it joins the rotation once ready and the old one is gone.
      const starting = startInstance(instanceOptions)
      // Not awaited until the drain is over: a failure to start must not go unhandled meanwhile.
      starting.catch(() => undefined)
      const { opens, stats } = await leaving.drain()
      opensByInstance.set(leaving, opens)
      const moved = (stats.moved ?? {}) as Record<string, number>
      movedDrain += moved.drain ?? 0
      movedRebalance += moved.rebalance ?? 0
      await leaving.stop()
      const drainTook = performance.now() - drainedAt
      const fresh = await starting
      slots[slot] = fresh
      await waitFor(() => fresh.ready(), 10_000, 'the new instance ready')
      inRotation.add(fresh)
      restarts++
      log(
        `restart ${restarts} at ${((drainedAt - started) / 1000).toFixed(1)} s: instance ${slot} drained and exited in ${Math.round(drainTook)} ms, ` +
          `its successor ready ${Math.round(performance.now() - drainedAt - drainTook)} ms later`,
      )
    }
    await sleep(Math.max(0, endAt - performance.now()))
    publishing = false
    const elapsed = (performance.now() - started) / 1000
    await publishLoop
    // Every publish settles (resolves or rejects) within the bus's bounds; one that does not is
    // counted and reported, not waited for forever.
    await Promise.race([Promise.all([...pending]), sleep(15_000)])
    const unsettled = pending.size
    if (unsettled > 0) log(`${unsettled} publishes had not settled 15 s after the last one; publisher stats: ${JSON.stringify(publisher.stats().busFlowControl)}`)
    checking = false
    const confirmedCount = confirmed.reduce((sum, set) => sum + set.size, 0)
    log(`published ${published - unsettled} settled in ${elapsed.toFixed(1)} s (${confirmedCount} confirmed, ${rejected} rejected${rejected > 0 ? `: ${JSON.stringify(Object.fromEntries(rejections))}` : ''})`)

    // Every client gets the last confirmed message of its topic (or the wait times out: a gap).
    const lastOf = confirmed.map((set) => Math.max(0, ...set))
    await waitFor(
      () => tracked.every((t) => (t.got.at(-1) ?? 0) >= lastOf[Number(t.topic.slice(1))]!),
      20_000,
      'every client at the last message of its topic',
    ).catch(() => log('some clients did not get the last message of their topic'))

    // The load evens out (rebalance), within settleMs.
    const settleStart = performance.now()
    const evenShare = options.clients / instanceCount
    const countsNow = async () => Promise.all(slots.map(async (s) => (await s.stats()).stats.connections as number))
    let finalCounts = await countsNow()
    let settledAfterMs: number | undefined
    const within = (counts: number[]) => counts.every((c) => c <= 1.5 * evenShare && c >= 0.5 * evenShare)
    for (;;) {
      finalCounts = await countsNow()
      if (within(finalCounts)) {
        settledAfterMs = Math.round(performance.now() - settleStart)
        break
      }
      if (performance.now() - settleStart > (options.settleMs ?? 15_000)) break
      await sleep(250)
    }
    // Then two more rebalance intervals: the counts at the end are those that stayed.
    if (settledAfterMs !== undefined && options.rebalance) {
      await sleep(2 * (options.rebalance.intervalMs ?? 5000))
      finalCounts = await countsNow()
      if (!within(finalCounts)) settledAfterMs = undefined
    }
    log(`connections at the end: ${finalCounts.join(' / ')} (even share ${evenShare.toFixed(0)})`)

    // Gaps, duplicates and order, per client against the confirmed messages of its topic.
    let silentGaps = 0
    let duplicates = 0
    let outOfOrder = 0
    for (const t of tracked) {
      const expected = confirmed[Number(t.topic.slice(1))]!
      const seen = new Set<number>()
      let previous = 0
      for (const n of t.got) {
        if (seen.has(n)) duplicates++
        else if (n < previous) outOfOrder++
        seen.add(n)
        previous = Math.max(previous, n)
      }
      // Every client subscribed before the first publish: it must have every confirmed message.
      for (const n of expected) if (!seen.has(n)) silentGaps++
    }

    // Reconnect rates: connections accepted per instance per second, while the deploy ran.
    for (const instance of slots) opensByInstance.set(instance, await instance.opens())
    let peak = 0
    for (const opens of opensByInstance.values()) {
      const buckets = new Map<number, number>()
      for (const at of opens) {
        if (at < deployStart) continue
        const second = Math.floor(at / 1000)
        buckets.set(second, (buckets.get(second) ?? 0) + 1)
      }
      for (const count of buckets.values()) peak = Math.max(peak, count)
    }
    for (const instance of slots) {
      const moved = ((await instance.stats()).stats.moved ?? {}) as Record<string, number>
      movedRebalance += moved.rebalance ?? 0
    }
    return {
      clients: options.clients,
      published,
      confirmed: confirmedCount,
      rejected,
      silentGaps,
      duplicates,
      outOfOrder,
      unsettled,
      resyncs,
      restarts,
      achievedRate: Math.round(published / elapsed),
      peakReconnectsPerSecond: peak,
      drainRate: evenShare / (options.drainMs / 1000),
      finalCounts,
      evenShare,
      settledAfterMs,
      moved: { drain: movedDrain, rebalance: movedRebalance },
    }
  } finally {
    publishing = false
    for (const t of tracked) t.client.close()
    await publisher.close({ drainMs: 0 })
    await Promise.all(slots.map((instance) => instance.stop()))
    await redis.stop()
  }
}
