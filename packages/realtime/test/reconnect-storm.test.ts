import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { InMemoryBus } from '../src/bus/memory.js'
import type { BusListener } from '../src/bus/types.js'
import { MiB, activeResources, collectGarbage, mib } from './utils/memory.js'
import { useServer } from './utils/harness.js'
import { sleep, waitFor } from './utils/server.js'

/**
 * A reconnect storm: 2,000 clients connect, authenticate, subscribe and disconnect (cleanly,
 * abruptly, mid-subscribe, before saying anything) in a loop for a bounded time while the server
 * publishes. Afterwards nothing of them may remain: no connection, subscription, topic, bus
 * listener, per-address count, timer or socket, and the heap is back within a stated margin.
 */

const CLIENTS = 2_000
/** Each client loops until this deadline or this many connections, whichever comes first. */
const STORM_MS = 6_000
const MAX_CYCLES_PER_CLIENT = 5
const TOPICS = 200
/**
 * All 2,000 clients come from 127.0.0.1, over the default `maxConnectionsPerAddress` (1000): the
 * test raises it to 2,100. After the storm it opens 2,100 connections at once, which succeeds only
 * if the per-address count went back to zero.
 */
const PER_ADDRESS = 2_100
/**
 * Heap margin. A leak of anything per connection (a Connection, its socket, a map entry, a
 * listener closure: each well over 1 KiB) across the storm's ~10,000 connections would exceed it;
 * what remains is V8's own noise (compiled code, inline caches).
 */
const HEAP_MARGIN = 8 * MiB

/** The default bus, counting its live listeners: a leaked topic would leave one behind. */
class CountingBus extends InMemoryBus {
  listeners = 0
  override async subscribe(topic: string, listener: BusListener): Promise<void> {
    await super.subscribe(topic, listener)
    this.listeners++
  }
  override async unsubscribe(topic: string, listener: BusListener): Promise<void> {
    await super.unsubscribe(topic, listener)
    this.listeners--
  }
}

/**
 * The storm's sockets still open (each leaves the set as it closes, so the heap check sees no
 * closed one held); the harness closes the server after these are cut.
 */
const open = new Set<WebSocket>()
afterEach(() => {
  for (const socket of open) socket.terminate()
  open.clear()
})

/**
 * Connection attempts in flight at once. The server listens with Node's default backlog (511);
 * past it the kernel drops SYNs and the client retries a second later, which would measure TCP's
 * retry timer rather than the server.
 */
const CONNECTING_AT_ONCE = 256
let connecting = 0
const connectQueue: (() => void)[] = []

async function connect(url: string): Promise<WebSocket | undefined> {
  if (connecting >= CONNECTING_AT_ONCE) await new Promise<void>((resolve) => connectQueue.push(resolve))
  connecting++
  try {
    return await connectNow(url)
  } finally {
    connecting--
    connectQueue.shift()?.()
  }
}

function connectNow(url: string): Promise<WebSocket | undefined> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url)
    open.add(socket)
    socket.on('close', () => open.delete(socket))
    socket.on('error', () => resolve(undefined))
    socket.once('open', () => resolve(socket))
  })
}

function nextFrame(socket: WebSocket, type: string, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(false), timeoutMs)
    const onMessage = (data: WebSocket.RawData) => {
      if ((JSON.parse(data.toString()) as { type: string }).type === type) done(true)
    }
    const onClose = () => done(false)
    function done(result: boolean) {
      clearTimeout(timer)
      socket.off('message', onMessage)
      socket.off('close', onClose)
      resolve(result)
    }
    socket.on('message', onMessage)
    socket.once('close', onClose)
  })
}

function closed(socket: WebSocket): Promise<void> {
  return socket.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()))
}

interface StormCounts {
  connections: number
  subscribed: number
  refused: number
}

/** One client's loop: connect, hello + subscribe (pipelined), then leave in one of five ways. */
async function client(url: string, i: number, until: number, counts: StormCounts): Promise<void> {
  for (let cycle = 0; cycle < MAX_CYCLES_PER_CLIENT && Date.now() < until; cycle++) {
    const socket = await connect(url)
    if (!socket) {
      counts.refused++
      await sleep(10)
      continue
    }
    counts.connections++
    const topic = `storm:${(i + cycle) % TOPICS}`
    const way = (i + cycle) % 5
    if (way === 0) {
      // Leaves before saying anything.
      socket.terminate()
      await closed(socket)
      continue
    }
    socket.send(JSON.stringify({ type: 'hello', v: 1, auth: `user-${i}` }))
    socket.send(JSON.stringify({ type: 'subscribe', id: 1, topic, since: way === 4 ? { epoch: 'old', offset: '1' } : undefined }))
    if (way === 1) {
      // Leaves mid-subscribe.
      socket.terminate()
      await closed(socket)
      continue
    }
    if (await nextFrame(socket, 'subscribed')) counts.subscribed++
    if (way === 2) socket.terminate()
    else socket.close(1000)
    await closed(socket)
  }
}

async function storm(url: string, durationMs: number): Promise<StormCounts> {
  const counts: StormCounts = { connections: 0, subscribed: 0, refused: 0 }
  const until = Date.now() + durationMs
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(url, i, until, counts)))
  return counts
}

describe('reconnect storm', () => {
  it(`leaves nothing behind after ${CLIENTS} clients connect, subscribe and disconnect in a loop`, async () => {
    const bus = new CountingBus({ history: { size: 10 } })
    const server = await useServer({
      bus,
      // Credentials with an expiry: every connection gets a handshake timer and an expiry timer.
      authenticate: (_request, auth) => ({ principal: { id: auth }, expiresAt: Date.now() + 60_000 }),
      limits: { maxConnectionsPerAddress: PER_ADDRESS },
    })
    const { realtime, http } = server
    const upgradeListeners = http.listenerCount('upgrade')
    let published = 0
    const publishing = setInterval(() => {
      for (let t = 0; t < 10; t++) void realtime.publishTopic(`storm:${(published + t) % TOPICS}`, { n: published })
      published++
    }, 5)
    try {
      // Warm-up: one short round, so that code is compiled, pools are sized and every topic's
      // history ring is full before the baseline is taken.
      for (let t = 0; t < TOPICS; t++) for (let k = 0; k < 10; k++) await realtime.publishTopic(`storm:${t}`, { warm: k })
      await storm(server.url, 500)
      await waitFor(() => realtime.stats().connections === 0, 10_000, 'warm-up connections to close')
      await sleep(1100) // close timers of the warm-up (1 s) run out
      collectGarbage()
      const baseline = { heap: process.memoryUsage().heapUsed, resources: activeResources() }

      const started = Date.now()
      const counts = await storm(server.url, STORM_MS)
      const stormMs = Date.now() - started
      clearInterval(publishing)

      await waitFor(() => realtime.stats().connections === 0, 10_000, 'every connection to close')
      const stats = realtime.stats()
      console.log(
        `reconnect storm: ${CLIENTS} clients, ${counts.connections} connections (${counts.subscribed} subscribed, ` +
          `${counts.refused} refused) in ${stormMs} ms, ${published} publish rounds; closes ${JSON.stringify(stats.closes)}`,
      )
      expect(counts.connections).toBeGreaterThan(CLIENTS)
      expect(counts.refused).toBe(0)
      expect(stats).toMatchObject({ connections: 0, subscriptions: 0, topics: 0 })
      expect(bus.listeners).toBe(0)
      expect(http.listenerCount('upgrade')).toBe(upgradeListeners)
      const httpSockets = await new Promise<number>((resolve, reject) => http.getConnections((e, n) => (e ? reject(e) : resolve(n))))
      expect(httpSockets).toBe(0)

      // Timers: handshake, expiry and close timers are all gone (close timers after at most 1 s).
      await sleep(1100)
      const resources = activeResources()
      expect(resources.Timeout ?? 0).toBeLessThanOrEqual(baseline.resources.Timeout ?? 0)
      expect(resources.TCPSocketWrap ?? 0).toBeLessThanOrEqual(baseline.resources.TCPSocketWrap ?? 0)

      collectGarbage()
      const heap = process.memoryUsage().heapUsed
      console.log(`reconnect storm: heap ${mib(baseline.heap)} before, ${mib(heap)} after (margin ${mib(HEAP_MARGIN)})`)
      expect(heap - baseline.heap).toBeLessThan(HEAP_MARGIN)

      // The per-address count is back to zero: the full allowance can connect at once.
      const all = await Promise.all(Array.from({ length: PER_ADDRESS }, () => connect(server!.url)))
      expect(all.filter((s) => s === undefined)).toHaveLength(0)
      expect(realtime.stats().refused.max_connections_per_address ?? 0).toBe(0)
      for (const socket of all) socket!.terminate()
      await waitFor(() => realtime.stats().connections === 0, 10_000, 'the allowance check to close')
    } finally {
      clearInterval(publishing)
    }
  }, 60_000)
})
