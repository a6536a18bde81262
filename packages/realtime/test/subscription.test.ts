import { afterEach, describe, expect, it } from 'vitest'
import type { RealtimeClient, SubscriptionState } from '../src/client/index.js'
import { connectClient, sleep, startServer, waitFor, type TestServer } from './utils/server.js'

type Topics = { a: number; b: number; room: string; secret: string }

let server: TestServer<Topics> | undefined
const clients: RealtimeClient<Topics>[] = []
afterEach(async () => {
  for (const client of clients.splice(0)) client.close()
  await server?.close()
  server = undefined
})

function client(url: string, options: Parameters<typeof connectClient>[1] = {}): RealtimeClient<Topics> {
  const c = connectClient<Topics>(url, options)
  clients.push(c)
  return c
}

describe('Subscription', () => {
  describe('client.subscription(topic)', () => {
    it('returns the same object for the same topic while it is held', async () => {
      server = await startServer<Topics>()
      const c = client(server.url)
      const sub = c.subscription('a')
      expect(c.subscription('a')).toBe(sub)
      expect(c.subscription('b')).not.toBe(sub)
      sub.subscribe()
      c.subscribe('a')
      expect(c.subscription('a')).toBe(sub)
      expect(sub.state).toBe('subscribing')
      await sub.ready(5000)
      expect(server.realtime.stats().subscriptions).toBe(1)
      expect(c.subscriptionState('a')).toBe('subscribed')
    })

    it('throws INVALID_TOPIC for a bad name', async () => {
      server = await startServer<Topics>()
      const c = client(server.url)
      expect(() => c.subscription('bad topic' as 'a')).toThrow(expect.objectContaining({ code: 'INVALID_TOPIC' }))
    })
  })

  describe('Event: state', () => {
    it('goes subscribing, subscribed, then back through a reconnect, once per real change', async () => {
      server = await startServer<Topics>()
      const c = client(server.url)
      const sub = c.subscription('a')
      const states: SubscriptionState[] = []
      sub.on('state', (s) => states.push(s))
      sub.subscribe()
      sub.subscribe()
      await sub.ready(5000)
      expect(states).toEqual(['subscribing', 'subscribed'])
      c.reconnect()
      await waitFor(() => states.length === 4)
      expect(states).toEqual(['subscribing', 'subscribed', 'subscribing', 'subscribed'])
      sub.unsubscribe()
      sub.unsubscribe()
      await waitFor(() => states.length === 5)
      expect(states.at(-1)).toBe('unsubscribed')
      await waitFor(() => server!.realtime.stats().subscriptions === 0)
    })
  })

  describe('Event: patch', () => {
    it('is dispatched to its own topic only, and advances the position', async () => {
      server = await startServer<Topics>()
      const c = client(server.url)
      const a = c.subscription('a')
      const b = c.subscription('b')
      const seenA: number[] = []
      const seenB: number[] = []
      a.on('patch', (msg) => seenA.push(msg.payload))
      b.on('patch', (msg) => seenB.push(msg.payload))
      a.subscribe()
      b.subscribe()
      await Promise.all([a.ready(5000), b.ready(5000)])
      const position = await server.realtime.publishTopic('b', 1)
      await server.realtime.publishTopic('b', 2)
      await waitFor(() => seenB.length === 2)
      await sleep(30)
      expect(seenA).toEqual([])
      expect(seenB).toEqual([1, 2])
      expect(b.position?.epoch).toBe(position.epoch)
      expect(b.position).toEqual(c.position('b'))
      expect(a.position).not.toEqual(b.position)
    })
  })

  describe('Event: unsubscribed', () => {
    it('carries the reason of a revoke, and the subscription ends unsubscribed', async () => {
      server = await startServer<Topics>()
      const c = client(server.url)
      const sub = c.subscription('room')
      const reasons: string[] = []
      sub.on('unsubscribed', (reason) => reasons.push(reason))
      sub.subscribe()
      await sub.ready(5000)
      server.realtime.revoke('room', undefined, 'kicked')
      await waitFor(() => reasons.length === 1)
      expect(reasons).toEqual(['kicked'])
      expect(sub.state).toBe('unsubscribed')
      expect(sub.position).toBeUndefined()
      expect(c.topics()).toEqual([])
    })
  })

  describe('#ready(timeoutMs)', () => {
    it('rejects with TIMEOUT when the subscription is not live in time', async () => {
      server = await startServer<Topics>()
      const c = client(server.url)
      const sub = c.subscription('a')
      await expect(sub.ready(30)).rejects.toMatchObject({ code: 'TIMEOUT' })
    })

    it('rejects with the error when the server refuses the subscription', async () => {
      server = await startServer<Topics>({ authorize: (_p, topic) => topic !== 'secret' })
      const c = client(server.url)
      const sub = c.subscription('secret')
      const errors: string[] = []
      sub.on('error', (error) => errors.push(error.code))
      sub.subscribe()
      await expect(sub.ready(5000)).rejects.toThrow(/forbidden|not allowed|FORBIDDEN/i)
      expect(errors).toEqual(['FORBIDDEN'])
      expect(sub.state).toBe('unsubscribed')
    })
  })
})
