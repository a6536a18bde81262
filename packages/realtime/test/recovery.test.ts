import type { Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import type { RealtimeClient } from '../src/client/index.js'
import { useClient, useServer } from './utils/harness.js'
import { waitFor } from './utils/server.js'

const MESSAGES = 5000
const CLIENTS = 20

async function stormRecovery(options: { historySize?: number; publishesPerTurn: number }): Promise<void> {
  const server = await useServer(options.historySize ? { history: { size: options.historySize } } : {})
  // Track the TCP sockets so the test can cut them like a network failure would.
  const sockets = new Set<Socket>()
  server.http.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  const clients: RealtimeClient[] = []
  const received: number[][] = []
  let resyncs = 0
  for (let i = 0; i < CLIENTS; i++) {
    const client = useClient(server.url, { reconnect: { minDelayMs: 5, maxDelayMs: 20 } })
    const seen: number[] = []
    received.push(seen)
    client.on('patch', (msg) => {
      if (msg.type === 'patch' && msg.topic === 'numbers') seen.push((msg.payload as { n: number }).n)
    })
    client.on('resync', () => resyncs++)
    client.subscribe('numbers')
    clients.push(client)
  }
  await waitFor(() => clients.every((c) => c.subscriptionState('numbers') === 'subscribed'), 5000, 'all subscribed')

  let drops = 0
  let cuts = 0
  // With the default history (100 messages) a client may be away for 100 publishes and still
  // recover. Away is at most a reconnect delay (≤ 20 ms) plus a handshake, so the publisher is held
  // to at most one publish per 0.5 ms on average: about 60 publishes in the longest absence here.
  // Faster, a client would rightly be told to resync, and this test would measure the machine.
  const started = performance.now()
  const minMsPerPublish = options.historySize ? 0 : 0.5
  for (let n = 0; n < MESSAGES; n++) {
    await server.realtime.publishTopic('numbers', { n })
    // One publish per event-loop turn, as a server publishing for its requests does; it never
    // waits for any one client. (In one process, a tighter loop would starve the reconnects.)
    if (n % options.publishesPerTurn === 0) await new Promise((resolve) => setImmediate(resolve))
    if (n % 10 === 9) {
      const ahead = started + n * minMsPerPublish - performance.now()
      if (ahead > 1) await new Promise((resolve) => setTimeout(resolve, ahead))
      if (Math.random() < 0.15) {
        const victim = clients[Math.floor(Math.random() * clients.length)]!
        victim.reconnect()
        drops++
      }
      if (Math.random() < 0.05 && sockets.size > 0) {
        const all = [...sockets]
        all[Math.floor(Math.random() * all.length)]!.destroy()
        cuts++
      }
    }
  }
  try {
    await waitFor(() => received.every((seen) => seen.length >= MESSAGES), 20_000, 'every client to catch up')
  } catch (error) {
    // What each client has, to tell a resync (history ran out) from a gap.
    console.log('resyncs', resyncs, JSON.stringify(server.realtime.stats()))
    for (const [i, seen] of received.entries()) {
      const gaps: number[] = []
      for (let k = 1; k < seen.length; k++) if (seen[k] !== seen[k - 1]! + 1) gaps.push(seen[k - 1]!, seen[k]!)
      if (gaps.length > 0) console.log('gaps', i, gaps.slice(0, 10))
      if (seen.length < MESSAGES) console.log(i, seen.length, clients[i]!.state, clients[i]!.subscriptionState('numbers'), clients[i]!.position('numbers'), seen.slice(-3))
    }
    throw error
  }
  const expected = Array.from({ length: MESSAGES }, (_, i) => i)
  for (const seen of received) expect(seen).toEqual(expected)
  expect(resyncs).toBe(0)
  expect(drops + cuts).toBeGreaterThan(20)
  console.log(`recovery (${options.publishesPerTurn} publishes per turn): ${CLIENTS} clients, ${MESSAGES} messages, ${drops} reconnects, ${cuts} cut sockets, ${resyncs} resyncs`)
}

describe('recovery under load', () => {
  it('gives every client the full sequence while they drop and reconnect at random (default history)', async () => {
    await stormRecovery({ publishesPerTurn: 1 })
  })

  it('has no gap and no duplicate with publishing at full speed (50 publishes per turn, larger history)', async () => {
    await stormRecovery({ publishesPerTurn: 50, historySize: 10_000 })
  })

  it('emits resync when the history ran out, and then continues live', async () => {
    const server = await useServer({ history: { size: 5 } })
    const client = useClient(server.url)
    const seen: number[] = []
    const resynced: string[] = []
    client.on('patch', (msg) => seen.push(msg.payload as number))
    client.on('resync', (topic) => resynced.push(topic))
    client.subscribe('t')
    await waitFor(() => client.subscriptionState('t') === 'subscribed')
    client.close()
    for (let n = 0; n < 20; n++) await server.realtime.publishTopic('t', n)
    const again = useClient(server.url)
    // A new client knows no position: it starts live and is not told to resync.
    again.subscribe('t')
    await waitFor(() => again.subscriptionState('t') === 'subscribed')
    expect(resynced).toEqual([])
  })
})
