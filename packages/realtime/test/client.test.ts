import { describe, expect, it } from 'vitest'
import type { ConnectionState } from '../src/client/index.js'
import { createRealtimeServer } from '../src/server/index.js'
import { useClient as client, useServer } from './utils/harness.js'
import { sleep, waitFor } from './utils/server.js'

describe('createRealtimeClient', () => {
  describe('the seed usage', () => {
    it('works as written: subscribe, on("patch") with a type check, unsubscribe', async () => {
      const server = await useServer()
      const wsClient = client(server.url)
      const seen: unknown[] = []
      wsClient.subscribe('user:515650034')
      wsClient.on('patch', (msg) => msg.type === 'patch' && msg.topic === 'user:515650034' && seen.push(msg.payload))
      await waitFor(() => wsClient.subscriptionState('user:515650034') === 'subscribed')
      await server.realtime.publishTopic('user:515650034', { type: 'profile_updated', tgUsername: 'new' })
      await waitFor(() => seen.length === 1)
      expect(seen[0]).toEqual({ type: 'profile_updated', tgUsername: 'new' })
      wsClient.unsubscribe('user:515650034')
      await waitFor(() => server!.realtime.stats().subscriptions === 0)
    })
  })

  describe('#subscribe / #unsubscribe', () => {
    it('makes one wire subscription for two callers, and keeps it until the last leaves', async () => {
      const server = await useServer()
      const c = client(server.url)
      const seen: unknown[] = []
      c.on('patch', (msg) => seen.push(msg.payload))
      c.subscribe('profile')
      c.subscribe('profile')
      await waitFor(() => c.subscriptionState('profile') === 'subscribed')
      expect(server.realtime.stats().subscriptions).toBe(1)
      c.unsubscribe('profile')
      await sleep(30)
      expect(server.realtime.stats().subscriptions).toBe(1)
      await server.realtime.publishTopic('profile', 1)
      await waitFor(() => seen.length === 1)
      c.unsubscribe('profile')
      await waitFor(() => server!.realtime.stats().subscriptions === 0)
      await server.realtime.publishTopic('profile', 2)
      await sleep(30)
      expect(seen).toEqual([1])
    })

    it('keeps the wire subscription through an unsubscribe and resubscribe in the same tick', async () => {
      const server = await useServer()
      const c = client(server.url)
      c.subscribe('t')
      await waitFor(() => c.subscriptionState('t') === 'subscribed')
      const before = server.realtime.stats().messagesIn
      c.unsubscribe('t')
      c.subscribe('t')
      await sleep(50)
      expect(server.realtime.stats().messagesIn).toBe(before)
      expect(server.realtime.stats().subscriptions).toBe(1)
    })

    it('throws INVALID_TOPIC for a bad topic name', async () => {
      const server = await useServer()
      const c = client(server.url)
      expect(() => c.subscribe('bad topic')).toThrow(expect.objectContaining({ code: 'INVALID_TOPIC' }))
    })
  })

  describe('reconnect', () => {
    it('re-subscribes with its position and gets what it missed, in order', async () => {
      const server = await useServer()
      const c = client(server.url)
      const seen: number[] = []
      c.on('patch', (msg) => seen.push(msg.payload as number))
      c.subscribe('t')
      await waitFor(() => c.subscriptionState('t') === 'subscribed')
      await server.realtime.publishTopic('t', 0)
      await waitFor(() => seen.length === 1)
      const states: ConnectionState[] = []
      c.on('state', (s) => states.push(s))
      c.reconnect()
      for (let n = 1; n < 5; n++) await server.realtime.publishTopic('t', n)
      await waitFor(() => seen.length === 5)
      expect(seen).toEqual([0, 1, 2, 3, 4])
      await waitFor(() => states.at(-1) === 'connected')
      expect(states).toEqual(['connecting', 'connected'])
    })

    it('emits resync when the server lost its history (a restarted process)', async () => {
      const server = await useServer()
      const { http, url } = server
      let realtime = server.realtime
      const c = client(url)
      const resynced: string[] = []
      c.on('resync', (topic) => resynced.push(topic))
      c.subscribe('user:1')
      await waitFor(() => c.subscriptionState('user:1') === 'subscribed')
      await realtime.publishTopic('user:1', { a: 1 })
      await waitFor(() => c.position('user:1')?.offset !== '0')
      // A new realtime server (and in-memory bus) on the same port: the old history is gone.
      await realtime.close()
      realtime = server.realtime = createRealtimeServer({ server: http })
      await waitFor(() => resynced.length === 1, 5000, 'resync')
      expect(resynced).toEqual(['user:1'])
      expect(c.subscriptionState('user:1')).toBe('subscribed')
    })

    it('stops reconnecting after 4001 with fixed credentials', async () => {
      const server = await useServer({ authenticate: () => { throw new Error('no') } })
      const c = client(server.url, { auth: 'wrong' })
      const errors: string[] = []
      c.on('error', (e) => errors.push(e.code))
      await waitFor(() => c.state === 'disconnected')
      expect(errors).toContain('UNAUTHORIZED')
      await sleep(100)
      expect(server.realtime.stats().closes['4001']).toBe(1)
    })

    it('calls an auth function on every connect', async () => {
      const seen: unknown[] = []
      const server = await useServer({ authenticate: (_req, auth) => (seen.push(auth), { id: 1 }) })
      let n = 0
      const c = client(server.url, { auth: async () => `token-${++n}` })
      await waitFor(() => c.state === 'connected')
      c.reconnect()
      await waitFor(() => seen.length === 2)
      expect(seen).toEqual(['token-1', 'token-2'])
    })
  })

  describe('errors', () => {
    it('emits FORBIDDEN with the topic', async () => {
      const server = await useServer({ authorize: () => false })
      const c = client(server.url)
      const errors: { code: string; topic?: string }[] = []
      c.on('error', (e) => errors.push({ code: e.code, topic: e.topic }))
      c.subscribe('secret')
      await waitFor(() => errors.length === 1)
      expect(errors).toEqual([{ code: 'FORBIDDEN', topic: 'secret' }])
      expect(c.subscriptionState('secret')).toBe('unsubscribed')
    })

    it('emits unsubscribed with the reason when the server revokes', async () => {
      const server = await useServer()
      const c = client(server.url)
      const revoked: [string, string][] = []
      c.on('unsubscribed', (topic, reason) => revoked.push([topic, reason]))
      c.subscribe('room')
      await waitFor(() => c.subscriptionState('room') === 'subscribed')
      server.realtime.revoke('room', undefined, 'kicked')
      await waitFor(() => revoked.length === 1)
      expect(revoked).toEqual([['room', 'kicked']])
    })
  })

  describe('#close', () => {
    it('goes disconnected and never reconnects', async () => {
      const server = await useServer()
      const c = client(server.url)
      await waitFor(() => c.state === 'connected')
      c.close()
      expect(c.state).toBe('disconnected')
      await waitFor(() => server!.realtime.stats().connections === 0)
      await sleep(100)
      expect(server.realtime.stats().connections).toBe(0)
    })
  })
})

describe('a closed client', () => {
  it('ignores subscribe with a CLOSED error event instead of throwing', async () => {
    const server = await useServer()
    const c = client(server.url)
    const errors: string[] = []
    c.on('error', (e) => errors.push(e.code))
    c.close()
    expect(() => c.subscribe('t')).not.toThrow()
    expect(errors).toEqual(['CLOSED'])
    expect(c.topics()).toEqual([])
  })
})
