import { createServer } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import type { RealtimeClient } from '../../src/client/index.js'
import { createRealtimeServer, type RealtimeServer } from '../../src/server/index.js'
import { connectClient, sleep, startServer, waitFor } from '../utils/server.js'

// Issue 16, item 6: reconnecting-websocket holds its connect lock during a backoff wait, so a
// `reconnect()` made then used to wait the delay out instead of reconnecting now.
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('client.reconnect() during a backoff wait', () => {
  it('connects within 200 ms once the server is up, instead of waiting out a 2 s delay', async () => {
    const first = await startServer()
    const c: RealtimeClient = connectClient(first.url, { reconnect: { minDelayMs: 2000, maxDelayMs: 10_000 } })
    cleanups.push(() => c.close())
    const seen: number[] = []
    c.on('patch', (msg) => seen.push(msg.payload as number))
    c.subscribe('t')
    await waitFor(() => c.subscriptionState('t') === 'subscribed')

    await first.close()
    await waitFor(() => c.state === 'connecting')
    const waitStarted = performance.now()
    // Now in its first backoff wait (2 to 3 s, by the jitter).
    await sleep(100)
    const http = createServer()
    const realtime: RealtimeServer = createRealtimeServer({ server: http })
    cleanups.push(async () => {
      await realtime.close()
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    })
    await new Promise<void>((resolve) => http.listen(first.port, '127.0.0.1', resolve))

    const started = performance.now()
    c.reconnect()
    await waitFor(() => c.state === 'connected', 2000, 'connected after reconnect()')
    const elapsed = performance.now() - started
    expect(elapsed).toBeLessThan(200)
    await waitFor(() => c.subscriptionState('t') === 'subscribed')
    await realtime.publishTopic('t', 1)
    await waitFor(() => seen.length === 1)
    // The replaced socket's pending wait must not open a second connection when it ends.
    await sleep(3200 - (performance.now() - waitStarted))
    expect(realtime.stats().connections).toBe(1)
    await realtime.publishTopic('t', 2)
    await waitFor(() => seen.length === 2)
    await sleep(30)
    expect(seen).toEqual([1, 2])
  })
})
