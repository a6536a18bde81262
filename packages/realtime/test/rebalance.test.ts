import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { RealtimeClient } from '../src/client/index.js'
import type { LoadReport } from '../src/bus/types.js'
import { RedisBus } from '../src/redis/index.js'
import { InMemoryBus } from '../src/server/index.js'
import { OwnRedisServer } from './utils/redis.js'
import { connectClient, sleep, startServer, waitFor, type TestServer } from './utils/server.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const counts = (servers: TestServer[]) => servers.map((s) => s.realtime.stats().connections)

/**
 * Library clients behind a round-robin "load balancer" over `servers`, except that every first
 * connect lands on `servers[0]`: the instance starts overloaded.
 */
function clientsOn(servers: TestServer[], n: number): RealtimeClient[] {
  let next = 0
  const clients: RealtimeClient[] = []
  for (let i = 0; i < n; i++) {
    let first = true
    const client = connectClient('', {
      url: () => {
        if (first) return (first = false), servers[0]!.url
        return servers[next++ % servers.length]!.url
      },
    })
    cleanups.push(() => client.close())
    clients.push(client)
  }
  return clients
}

describe('rebalance on InMemoryBus', () => {
  it('sheds from an overloaded instance until the load is even, then stops, with no resync', async () => {
    const bus = new InMemoryBus()
    cleanups.push(() => bus.close())
    const rebalance = { intervalMs: 200, tolerance: 0.2, maxPerInterval: 8 }
    const servers: TestServer[] = []
    for (let i = 0; i < 3; i++) {
      const s = await startServer({ bus, closeBus: false, rebalance })
      cleanups.push(() => s.close({ drainMs: 0 }))
      servers.push(s)
    }
    const clients = clientsOn(servers, 30)
    const seen = new Map<RealtimeClient, number[]>()
    let resyncs = 0
    for (const client of clients) {
      const got: number[] = []
      seen.set(client, got)
      client.on('patch', (m) => got.push((m.payload as { n: number }).n))
      client.on('resync', () => resyncs++)
      client.subscribe('t')
    }
    await waitFor(() => clients.every((c) => c.subscriptionState('t') === 'subscribed'), 5000, 'every client subscribed')
    // Every client came to the first instance (the others only get the ones it moves).
    expect(servers[0]!.realtime.stats().connectionsOpened).toBeGreaterThanOrEqual(30)

    // Publishing all along, from the instance the clients leave.
    let n = 0
    let stopped = false
    cleanups.unshift(() => void (stopped = true))
    const publishing = (async () => {
      while (n < 400 && !stopped) {
        await servers[0]!.realtime.publishTopic('t', { n: ++n })
        await sleep(10)
      }
    })()
    // Even: every client settled somewhere, none holds more than the share (10) + the tolerance (20 %).
    const even = () => {
      const now = counts(servers)
      return now.reduce((a, b) => a + b) === 30 && now.every((c) => c <= 12)
    }
    await waitFor(even, 8000, 'an even load')
    // A shed is paced over half an interval: let the one in progress finish (no move for an interval).
    const movedNow = () => servers.map((s) => s.realtime.stats().moved.rebalance ?? 0).join()
    let last = movedNow()
    await waitFor(
      async () => {
        await sleep(200)
        const now = movedNow()
        const settled = now === last
        last = now
        return settled
      },
      4000,
      'no move for an interval',
    )
    const movedWhenEven = servers.map((s) => s.realtime.stats().moved.rebalance ?? 0)
    expect(movedWhenEven[0]).toBeGreaterThanOrEqual(18)
    const { instances, share } = servers[0]!.realtime.stats().rebalance!
    expect(instances).toBe(3)
    // 30 ÷ 3, plus the clients moved within the transit window (counted on both sides for a moment).
    expect(share).toBeGreaterThanOrEqual(10)
    expect(share).toBeLessThanOrEqual(14)

    // Stays put: five more intervals, no move anywhere.
    await sleep(1000)
    expect(servers.map((s) => s.realtime.stats().moved.rebalance ?? 0)).toEqual(movedWhenEven)
    await publishing
    await waitFor(() => clients.every((c) => seen.get(c)!.length === 400), 5000, 'every message on every client')
    for (const got of seen.values()) expect(got).toEqual(Array.from({ length: 400 }, (_, i) => i + 1))
    expect(resyncs).toBe(0)
  })

  it('sheds nothing while a peer drains (its clients are landing), and forgets a peer that stopped reporting', async () => {
    const bus = new InMemoryBus()
    cleanups.push(() => bus.close())
    const rebalance = { intervalMs: 100, tolerance: 0.1 }
    const a = await startServer({ bus, closeBus: false, rebalance })
    const b = await startServer({ bus, closeBus: false, rebalance })
    cleanups.push(() => a.close({ drainMs: 0 }), () => b.close({ drainMs: 0 }))
    const reports: LoadReport[] = []
    const stop = bus.onLoad((report) => reports.push(report))
    cleanups.push(stop)
    // A fake peer that reports 20 connections while draining: a's even share is (10 + 20) ÷ 2 = 15.
    const peer = { instance: 'leaving', connections: 20, draining: true }
    void bus.shareLoad(peer)
    const beat = setInterval(() => void bus.shareLoad(peer), 100)
    cleanups.push(() => clearInterval(beat))
    clientsOn([a, b], 10)
    await waitFor(() => a.realtime.stats().connections === 10)
    await sleep(500)
    expect(a.realtime.stats().rebalance).toMatchObject({ instances: 2, share: 15 })
    expect(a.realtime.stats().moved.rebalance ?? 0).toBe(0)
    clearInterval(beat)
    // Three intervals without a report: forgotten, and a (10) and b (0) even out.
    await waitFor(() => a.realtime.stats().rebalance!.instances === 2 && a.realtime.stats().rebalance!.share === 5, 2000, 'the peer forgotten')
    await waitFor(() => b.realtime.stats().connections >= 4, 5000, 'clients moved to b')
    expect(reports.some((r) => r.instance !== 'leaving' && r.connections === 10 && !r.draining)).toBe(true)
  })

  it('refuses a bus that cannot share load', async () => {
    const bus = new InMemoryBus()
    cleanups.push(() => bus.close())
    const plain = { ...bus, publish: bus.publish.bind(bus), subscribe: bus.subscribe.bind(bus), shareLoad: undefined, onLoad: undefined }
    await expect(startServer({ bus: plain as never, rebalance: true })).rejects.toThrow(/rebalance/)
  })
})

describe('RedisBus load sharing', () => {
  let redis: OwnRedisServer | undefined
  afterAll(() => redis?.stop())

  it('hands each report to every instance, also after Redis came back', async () => {
    redis = await OwnRedisServer.start()
    const one = new RedisBus({ url: redis.url, prefix: 'load:' })
    const two = new RedisBus({ url: redis.url, prefix: 'load:' })
    const other = new RedisBus({ url: redis.url, prefix: 'another-app:' })
    cleanups.push(() => one.close(), () => two.close(), () => other.close())
    const heard: LoadReport[] = []
    const heardElsewhere: LoadReport[] = []
    two.onLoad((report) => heard.push(report))
    other.onLoad((report) => heardElsewhere.push(report))
    const report = { instance: 'one', connections: 42, draining: false }
    // Until both connections are up, a report fails (a missed beat): the server's rebalance ignores that.
    await waitFor(async () => (await one.shareLoad(report).catch(() => undefined), heard.length > 0), 5000, 'a report across instances')
    expect(heard[0]).toEqual(report)

    await redis.stop()
    await redis.start()
    heard.length = 0
    const later = { instance: 'one', connections: 7, draining: true }
    await waitFor(async () => (await one.shareLoad(later).catch(() => undefined), heard.length > 0), 10_000, 'a report after the restart')
    expect(heard.at(-1)).toEqual(later)
    expect(heardElsewhere).toEqual([])
  })
})
