// @vitest-environment jsdom
// The page-lifecycle handling needs `window` and `document`: jsdom gives them, the sockets are
// still real (`ws` to a real server), and the events are the ones a browser fires.
import { createServer } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import type { ConnectionState, RealtimeClient } from '../src/client/index.js'
import { createRealtimeServer } from '../src/server/index.js'
import { startCuttableProxy, type CuttableProxy } from './utils/cuttable-proxy.js'
import { connectClient, sleep, startServer, waitFor, type TestServer } from './utils/server.js'

let server: TestServer | undefined
let proxy: CuttableProxy | undefined
const clients: RealtimeClient[] = []
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const client of clients.splice(0)) client.close()
  await proxy?.close()
  proxy = undefined
  for (const cleanup of cleanups.splice(0)) await cleanup()
  await server?.close()
  server = undefined
})

function client(url: string, options: Parameters<typeof connectClient>[1] = {}): RealtimeClient {
  const c = connectClient(url, options)
  clients.push(c)
  return c
}

async function liveOn(topic: string, c: RealtimeClient): Promise<unknown[]> {
  const seen: unknown[] = []
  c.on('patch', (msg) => msg.topic === topic && seen.push(msg.payload))
  c.subscribe(topic)
  await waitFor(() => c.subscriptionState(topic) === 'subscribed')
  return seen
}

describe('the page lifecycle', () => {
  describe('a wake (pageshow, visible, online, resume) with a socket that died asleep', () => {
    for (const [name, fire] of [
      ['pageshow', () => window.dispatchEvent(new Event('pageshow'))],
      ['resume', () => document.dispatchEvent(new Event('resume'))],
      ['visibilitychange to visible', () => document.dispatchEvent(new Event('visibilitychange'))],
    ] as const) {
      it(`reconnects and recovers within the wake check on ${name}`, async () => {
        server = await startServer()
        proxy = await startCuttableProxy(server.port)
        const c = client(proxy.url(), { wakeCheckTimeoutMs: 300 })
        const seen = await liveOn('t', c)
        proxy.cut()
        await server.realtime.publishTopic('t', 1)
        await server.realtime.publishTopic('t', 2)
        await sleep(50)
        expect(seen).toEqual([])
        expect(c.state).toBe('connected') // nothing noticed: the idle timeout is 50 s away
        const woke = performance.now()
        fire()
        await waitFor(() => seen.length === 2, 3000, 'the missed patches')
        expect(performance.now() - woke).toBeLessThan(1000)
        expect(seen).toEqual([1, 2])
        expect(proxy.accepted).toBe(2)
        expect(c.state).toBe('connected')
      })
    }

    it('keeps a live socket: the ping is answered and nothing reconnects', async () => {
      server = await startServer()
      proxy = await startCuttableProxy(server.port)
      const c = client(proxy.url(), { wakeCheckTimeoutMs: 200 })
      await liveOn('t', c)
      const states: ConnectionState[] = []
      c.on('state', (s) => states.push(s))
      const before = server.realtime.stats().messagesIn
      window.dispatchEvent(new Event('pageshow'))
      await waitFor(() => server!.realtime.stats().messagesIn === before + 1)
      await sleep(300)
      expect(proxy.accepted).toBe(1)
      expect(states).toEqual([])
    })
  })

  describe("the 'offline' and 'online' events", () => {
    it("reports disconnected at once on 'offline', and connected again after the check on 'online'", async () => {
      server = await startServer()
      const c = client(server.url, { wakeCheckTimeoutMs: 500 })
      await liveOn('t', c)
      const states: ConnectionState[] = []
      c.on('state', (s) => states.push(s))
      window.dispatchEvent(new Event('offline'))
      expect(c.state).toBe('disconnected')
      window.dispatchEvent(new Event('online'))
      await waitFor(() => c.state === 'connected')
      expect(states).toEqual(['disconnected', 'connecting', 'connected'])
      expect(server.realtime.stats().connections).toBe(1)
    })

    it("puts a lazy client not connected yet back to connecting on 'online'", async () => {
      server = await startServer()
      const c = client(server.url, { lazy: true })
      window.dispatchEvent(new Event('offline'))
      expect(c.state).toBe('disconnected')
      window.dispatchEvent(new Event('online'))
      expect(c.state).toBe('connecting')
      await liveOn('t', c)
      expect(c.state).toBe('connected')
    })

    it("connects at once on 'online' while waiting out a long backoff", async () => {
      const first = await startServer()
      const c = client(first.url, { reconnect: { minDelayMs: 5000, maxDelayMs: 10_000 } })
      await liveOn('t', c)
      await first.close()
      await waitFor(() => c.state === 'connecting')
      const http = createServer()
      const realtime = createRealtimeServer({ server: http })
      cleanups.push(async () => {
        await realtime.close()
        http.closeAllConnections()
        await new Promise<void>((resolve) => http.close(() => resolve()))
      })
      await new Promise<void>((resolve) => http.listen(first.port, '127.0.0.1', resolve))
      const woke = performance.now()
      window.dispatchEvent(new Event('online'))
      await waitFor(() => c.state === 'connected', 2000)
      expect(performance.now() - woke).toBeLessThan(200)
    })
  })

  it('sends nothing while the page is hidden', async () => {
    server = await startServer()
    const c = client(server.url, { wakeCheckTimeoutMs: 200 })
    await liveOn('t', c)
    const before = server.realtime.stats().messagesIn
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' })
    try {
      document.dispatchEvent(new Event('visibilitychange'))
      await sleep(100)
      expect(server.realtime.stats().messagesIn).toBe(before)
    } finally {
      delete (document as { visibilityState?: unknown }).visibilityState
    }
  })

  it('is off with wakeCheckTimeoutMs: 0', async () => {
    server = await startServer()
    const c = client(server.url, { wakeCheckTimeoutMs: 0 })
    await liveOn('t', c)
    window.dispatchEvent(new Event('offline'))
    expect(c.state).toBe('connected')
  })
})
