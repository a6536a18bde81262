import { afterEach, describe, expect, it } from 'vitest'
import type { RealtimeClient } from '../src/client/index.js'
import { CloseCode } from '../src/protocol.js'
import { InMemoryBus } from '../src/server/index.js'
import { PACE_STEP_MS } from '../src/server/drain.js'
import { connectClient, RawClient, sleep, startServer, waitFor, type TestServer } from './utils/server.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function server(options: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const started = await startServer(options)
  cleanups.push(() => started.close())
  return started
}

async function rawClients(url: string, n: number): Promise<RawClient[]> {
  const clients = await Promise.all(Array.from({ length: n }, () => RawClient.connect(url)))
  cleanups.push(() => clients.forEach((c) => c.close()))
  return clients
}

describe('close({ drainMs })', () => {
  it('closes the connections with 4010 spread over the window, not in one tick', async () => {
    const s = await server()
    const clients = await rawClients(s.url, 40)
    await waitFor(() => s.realtime.stats().connections === 40)
    const closedAt: number[] = []
    const codes: number[] = []
    const started = performance.now()
    for (const c of clients) void c.closed(10_000).then((code) => (codes.push(code), closedAt.push(performance.now() - started)))
    const closing = s.realtime.close({ drainMs: 1000 })

    // Half-way through: some moved, some still here, and the drain shows it.
    await sleep(500)
    const mid = s.realtime.stats().draining!
    expect(mid).toMatchObject({ drainMs: 1000, total: 40 })
    expect(mid.moved).toBeGreaterThan(10)
    expect(mid.moved).toBeLessThan(32)
    expect(mid.remaining).toBeGreaterThan(8)
    // Meanwhile upgrades are refused with 503 shutting_down.
    await expect(RawClient.connect(s.url)).rejects.toThrow(/503/)

    await closing
    expect(codes).toHaveLength(40)
    expect(new Set(codes)).toEqual(new Set([CloseCode.Reconnect]))
    closedAt.sort((a, b) => a - b)
    // Spread over the window: the last close comes about a second after the first ...
    expect(closedAt[39]! - closedAt[0]!).toBeGreaterThan(800)
    // ... and no 200-ms stretch holds much more than its share (40 per second: 8; room for late timers).
    for (let i = 0; i < closedAt.length; i++) {
      const inWindow = closedAt.filter((t) => t >= closedAt[i]! && t < closedAt[i]! + 200).length
      expect(inWindow).toBeLessThanOrEqual(14)
    }
    expect(s.realtime.stats()).toMatchObject({ moved: { drain: 40 }, closes: { '4010': 40 }, refused: { shutting_down: 1 } })
  })

  it('takes a step per few connections: three connections are gone in a few steps, not a whole window', async () => {
    const s = await server()
    const clients = await rawClients(s.url, 3)
    await waitFor(() => s.realtime.stats().connections === 3)
    const started = performance.now()
    await s.realtime.close({ drainMs: 10_000 })
    expect(performance.now() - started).toBeLessThan(3 * PACE_STEP_MS + 500)
    for (const c of clients) expect(await c.closed()).toBe(CloseCode.Reconnect)
  })

  it('publishes during the drain (they reach the other instances) and refuses them once it is over', async () => {
    const bus = new InMemoryBus()
    cleanups.push(() => bus.close())
    const leaving = await server({ bus, closeBus: false })
    const staying = await server({ bus, closeBus: false })
    await rawClients(leaving.url, 20)
    const [watcher] = await rawClients(staying.url, 1)
    await watcher!.subscribe(1, 't')
    const closing = leaving.realtime.close({ drainMs: 500 })
    await sleep(100)
    expect(leaving.realtime.stats().draining!.remaining).toBeGreaterThan(0)
    await expect(leaving.realtime.publishTopic('t', { n: 1 })).resolves.toMatchObject({ offset: expect.any(String) })
    expect(await watcher!.nextOf('patch')).toMatchObject({ topic: 't', payload: { n: 1 } })
    await closing
    await expect(leaving.realtime.publishTopic('t', { n: 2 })).rejects.toMatchObject({ code: 'CLOSED' })
  })

  it('keeps a readiness signal: stats().draining stays set (remaining 0) once the drain is over', async () => {
    const s = await server()
    expect(s.realtime.stats().draining).toBeUndefined()
    await s.realtime.close({ drainMs: 0 })
    expect(s.realtime.stats().draining).toMatchObject({ total: 0, moved: 0, remaining: 0 })
  })
})

describe('the client on 4010', () => {
  it('reconnects within a few hundred ms to another instance and recovers with no resync', async () => {
    const bus = new InMemoryBus()
    cleanups.push(() => bus.close())
    const a = await server({ bus, closeBus: false })
    const b = await server({ bus, closeBus: false })
    // A "load balancer": the first connect goes to A, every later one to B.
    let connects = 0
    const client: RealtimeClient = connectClient('', {
      url: () => (connects++ === 0 ? a.url : b.url),
      // A long backoff: the reconnect must not wait for it.
      reconnect: { minDelayMs: 3000, maxDelayMs: 10_000 },
    })
    cleanups.push(() => client.close())
    const seen: number[] = []
    let resyncs = 0
    client.on('patch', (m) => seen.push((m.payload as { n: number }).n))
    client.on('resync', () => resyncs++)
    client.subscribe('t')
    await waitFor(() => client.subscriptionState('t') === 'subscribed')
    await b.realtime.publishTopic('t', { n: 1 })
    await waitFor(() => seen.length === 1)

    const closing = a.realtime.close({ drainMs: 100 })
    await waitFor(() => client.state === 'connecting')
    const movedAt = performance.now()
    // Published while the client is between instances: it recovers them from the history.
    for (let n = 2; n <= 20; n++) await b.realtime.publishTopic('t', { n })
    await waitFor(() => client.state === 'connected', 2000, 'reconnected')
    expect(performance.now() - movedAt).toBeLessThan(1000)
    await closing
    for (let n = 21; n <= 30; n++) await b.realtime.publishTopic('t', { n })
    await waitFor(() => seen.length === 30, 2000, 'every message')
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    expect(resyncs).toBe(0)
    expect(a.realtime.stats().closes['4010']).toBe(1)
    expect(b.realtime.stats().connections).toBe(1)
  })
})

describe('the client backoff', () => {
  it('draws its jitter for every attempt, not once per client', async () => {
    // A port nobody listens on: every attempt fails at once, so the gaps are the backoff delays.
    const s = await startServer()
    const deadUrl = s.url
    await s.close()
    const attempts: number[] = []
    const client = connectClient('', {
      url: () => {
        attempts.push(performance.now())
        return deadUrl
      },
      reconnect: { minDelayMs: 100, maxDelayMs: 10_000, growFactor: 1 },
    })
    cleanups.push(() => client.close())
    await waitFor(() => attempts.length >= 12, 5000, '12 attempts')
    client.close()
    const gaps = attempts.slice(2).map((t, i) => t - attempts[i + 1]!)
    // Each between 100 and 150 ms (plus the failed attempt's own few ms) ...
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(95)
      expect(gap).toBeLessThan(220)
    }
    // ... and not all alike: drawn once per client, they would differ by timer noise only.
    expect(Math.max(...gaps) - Math.min(...gaps)).toBeGreaterThan(15)
  })
})
