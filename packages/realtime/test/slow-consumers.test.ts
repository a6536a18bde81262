import type { Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { DEFAULT_LIMITS } from '../src/server/index.js'
import type { Position } from '../src/topics.js'
import { MiB, PeakSampler, collectGarbage, mib } from './utils/memory.js'
import { useRawClient, useServer } from './utils/harness.js'
import { waitFor, type RawClient } from './utils/server.js'

/**
 * Slow consumers: clients that stop reading while the server publishes a burst. The server must
 * close them (4008) instead of queueing for them without bound, release what it had queued, keep
 * serving everyone else, and let them recover from history when they come back.
 */

const SLOW_CLIENTS = 200
const PATCHES = 10_000
const PAYLOAD_BYTES = 1024
/** History must reach back over the whole burst for a slow client to recover all of it. */
const HISTORY_SIZE = 12_000
/** Slow clients that come back and recover the whole burst (each replays 10,000 patches, ~10 MiB). */
const RECOVERING_CLIENTS = 20

/**
 * The RSS bound. Unbounded queueing would hold every patch for every slow client:
 * 200 × 10,000 × ~1.1 KiB ≈ 2.2 GB. With `maxBufferedBytes` (1 MiB) each slow client holds at most
 * 1 MiB of queued frames (less in practice: one patch is one Buffer shared by every subscriber), so
 * the server's share is at most 200 × 1 MiB = 200 MiB, plus the history (10,000 × 1 KiB ≈ 10 MiB
 * of strings). The test process also holds the 201 test clients and the good client's garbage:
 * 56 MiB of slack for those. RSS is measured against a baseline taken after every client connected.
 */
const RSS_BOUND = SLOW_CLIENTS * DEFAULT_LIMITS.maxBufferedBytes + 56 * MiB

function payload(n: number): { n: number; pad: string } {
  const empty = JSON.stringify({ n, pad: '' }).length
  return { n, pad: 'x'.repeat(PAYLOAD_BYTES - empty) }
}

/** Collects the `n` of every patch of `topic` a raw client receives, straight off the socket. */
function collectPatches(client: RawClient): number[] {
  const seen: number[] = []
  client.socket.on('message', (data) => {
    const frame = JSON.parse(data.toString())
    if (frame.type === 'patch') seen.push(frame.payload.n)
  })
  return seen
}

describe('slow consumers', () => {
  it(`closes ${SLOW_CLIENTS} clients that stop reading with 4008, bounds memory, serves the good client, and lets them recover`, async () => {
    const server = await useServer({ history: { size: HISTORY_SIZE } })
    const serverSockets = new Set<Socket>()
    server.http.on('connection', (socket: Socket) => {
      serverSockets.add(socket)
      socket.once('close', () => serverSockets.delete(socket))
    })
    expect(JSON.stringify(payload(PATCHES - 1)).length).toBe(PAYLOAD_BYTES)

    const good = await useRawClient(server.url)
    await good.request({ type: 'subscribe', id: 1, topic: 'burst' })
    const goodSeen = collectPatches(good)

    const slow: { client: RawClient; since: Position }[] = []
    for (let i = 0; i < SLOW_CLIENTS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, SLOW_CLIENTS - i) }, async () => {
          const client = await useRawClient(server.url)
          const subscribed = (await client.request({ type: 'subscribe', id: 1, topic: 'burst' })) as unknown as Position
          return { client, since: { epoch: subscribed.epoch, offset: subscribed.offset } }
        }),
      )
      slow.push(...batch)
    }
    expect(server.realtime.stats()).toMatchObject({ connections: SLOW_CLIENTS + 1, subscriptions: SLOW_CLIENTS + 1 })
    // Stop reading: the client's TCP socket is paused, so the kernel buffers fill and then the
    // server's send buffer (`bufferedAmount`) grows.
    for (const { client } of slow) client.pauseReading()

    collectGarbage()
    const before = process.memoryUsage()
    const sampler = new PeakSampler().start()
    const started = Date.now()
    for (let n = 0; n < PATCHES; n++) {
      await server.realtime.publishTopic('burst', payload(n))
      // Publish as a busy server would (many publishes per event-loop turn) without starving the
      // good client, which runs in this same process.
      if (n % 20 === 19) await new Promise((resolve) => setImmediate(resolve))
    }
    await waitFor(() => (server!.realtime.stats().closes['4008'] ?? 0) === SLOW_CLIENTS, 20_000, 'every slow client closed 4008')
    await waitFor(() => goodSeen.length === PATCHES, 20_000, 'the good client to receive every patch')
    sampler.stop()
    const burstMs = Date.now() - started

    expect(goodSeen).toEqual(Array.from({ length: PATCHES }, (_, i) => i))
    const stats = server.realtime.stats()
    expect(stats.drops.slow_consumer).toBe(SLOW_CLIENTS)
    expect(stats.closes['4008']).toBe(SLOW_CLIENTS)
    expect(good.closeCode).toBeUndefined()
    const rssGrowth = sampler.peakRss - before.rss
    console.log(
      `slow consumers: ${SLOW_CLIENTS} closed 4008 during ${PATCHES} × ${PAYLOAD_BYTES} B patches in ${burstMs} ms; ` +
        `RSS baseline ${mib(before.rss)}, peak ${mib(sampler.peakRss)} (+${mib(rssGrowth)}, bound +${mib(RSS_BOUND)})`,
    )
    expect(rssGrowth).toBeLessThan(RSS_BOUND)

    // Memory is released: the server destroys the slow sockets (1 s after the 4008 close at most)
    // and, with them, every frame queued for them.
    // Generous: on a loaded CI machine the 1 s close timers may run late.
    await waitFor(() => serverSockets.size === 1, 15_000, `the slow sockets to be destroyed server-side (${serverSockets.size} open when the wait began)`)
    expect(server.realtime.stats()).toMatchObject({ connections: 1, subscriptions: 1 })
    // The paused test clients live in this process too and hold what they had read before the
    // pause (up to 64 KiB each): drop them so that what is measured is the server's.
    for (const { client } of slow) client.close()
    await Promise.all(slow.map(({ client }) => client.closed()))
    const positions = slow.map(({ since }) => since)
    // (The harness forgets a raw client once it closed: nothing else holds them.)
    slow.length = 0
    collectGarbage()
    const after = process.memoryUsage()
    console.log(
      `slow consumers: after release, heap ${mib(before.heapUsed)} → ${mib(after.heapUsed)}, ` +
        `buffers ${mib(before.arrayBuffers)} → ${mib(after.arrayBuffers)}`,
    )
    // Queued frames are Buffers (outside the JS heap): they must all be gone. The heap keeps the
    // history (10,000 × 1 KiB strings) and the good client's array of 10,000 numbers.
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(8 * MiB)
    expect(after.heapUsed - before.heapUsed).toBeLessThan(PATCHES * PAYLOAD_BYTES + 24 * MiB)

    // Some of them come back with the position they had and recover the whole burst, in order,
    // although it is ten times `maxBufferedBytes`: history is replayed at the pace they read.
    const back = await Promise.all(
      positions.slice(0, RECOVERING_CLIENTS).map(async (since) => {
        const again = await useRawClient(server.url)
        const seen = collectPatches(again)
        const subscribed = await again.request({ type: 'subscribe', id: 1, topic: 'burst', since })
        expect(subscribed).toMatchObject({ type: 'subscribed', recovered: true })
        return { again, seen }
      }),
    )
    await waitFor(() => back.every(({ seen }) => seen.length >= PATCHES), 30_000, 'the returning clients to recover')
    for (const { again, seen } of back) {
      expect(seen).toEqual(goodSeen)
      expect(again.closeCode).toBeUndefined()
    }
    expect(server.realtime.stats().closes['4008']).toBe(SLOW_CLIENTS)
  }, 90_000)
})
