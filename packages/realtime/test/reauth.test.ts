import { describe, expect, it } from 'vitest'
import { useRawClient, useServer } from './utils/harness.js'
import { sleep, waitFor, type TestServer, type TestServerOptions } from './utils/server.js'

/**
 * Credentials that expire mid-connection: an `auth` frame renews them and the subscriptions live
 * on; without one the connection is closed 4001 at expiry. And server-side revocation.
 */

/** The running test's server (the harness closes it, and its clients, when the test ends). */
let server: TestServer | undefined

/** Tokens look like `<user>:<lifetime ms>`; 'bad' is refused. */
function authenticate(_request: unknown, auth: unknown) {
  if (typeof auth !== 'string' || auth === 'bad') throw new Error('bad token')
  const [user, lifetime] = auth.split(':')
  return { principal: { user }, expiresAt: Date.now() + Number(lifetime) }
}

const start = async (options: TestServerOptions = {}) => (server = await useServer({ authenticate, ...options }))

async function hello(auth: string) {
  const client = await useRawClient(server!.url)
  const welcome = await client.hello(auth)
  expect(welcome.expiresAt).toBeGreaterThan(Date.now())
  return client
}

describe('re-authentication', () => {
  it('closes 4001 at expiry when no fresh credentials come, and counts it', async () => {
    await start()
    const started = Date.now()
    const client = await hello('u1:300')
    await client.request({ type: 'subscribe', id: 1, topic: 'user:1' })
    expect(await client.closed(3000)).toBe(4001)
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    expect(client.closeReason).toBe('credentials expired')
    const stats = server!.realtime.stats()
    expect(stats.refused.expired).toBe(1)
    expect(stats.closes['4001']).toBe(1)
    await waitFor(() => server!.realtime.stats().connections === 0)
    expect(server!.realtime.stats()).toMatchObject({ subscriptions: 0, topics: 0 })
  })

  it('keeps the connection and its subscriptions live across an `auth` renewal', async () => {
    await start()
    const client = await hello('u1:300')
    await client.request({ type: 'subscribe', id: 1, topic: 'user:1' })
    await sleep(150)
    const renewed = await client.request({ type: 'auth', id: 2, auth: 'u1:5000' })
    expect(renewed).toMatchObject({ type: 'authenticated', id: 2 })
    expect((renewed as { expiresAt: number }).expiresAt).toBeGreaterThan(Date.now() + 4000)
    // Past the first expiry: still open, still subscribed, still receiving.
    await sleep(300)
    expect(client.closeCode).toBeUndefined()
    await server!.realtime.publishTopic('user:1', { after: 'renewal' })
    expect((await client.nextOf('patch')).payload).toEqual({ after: 'renewal' })
    expect(server!.realtime.stats()).toMatchObject({ connections: 1, subscriptions: 1 })
    expect(server!.realtime.stats().refused.expired).toBeUndefined()
  })

  it('answers refused credentials in `auth` with UNAUTHORIZED and keeps the old expiry', async () => {
    await start()
    const client = await hello('u1:400')
    expect(await client.request({ type: 'auth', id: 2, auth: 'bad' })).toMatchObject({ type: 'error', id: 2, code: 'UNAUTHORIZED' })
    expect(server!.realtime.stats().refused.unauthorized).toBe(1)
    expect(await client.closed(3000)).toBe(4001)
    expect(server!.realtime.stats().refused.expired).toBe(1)
  })

  it('revokes, on renewal as another principal, the subscriptions it may not have', async () => {
    await start({ authorize: (principal, topic) => topic === 'public' || topic === `user:${(principal as { user: string }).user}` })
    const client = await hello('1:5000')
    await client.request({ type: 'subscribe', id: 1, topic: 'user:1' })
    await client.request({ type: 'subscribe', id: 2, topic: 'public' })
    expect(await client.request({ type: 'auth', id: 3, auth: '2:5000' })).toMatchObject({ type: 'authenticated' })
    expect(await client.nextOf('unsubscribed')).toEqual({ type: 'unsubscribed', topic: 'user:1', reason: 'forbidden' })
    await server!.realtime.publishTopic('user:1', 'private')
    await server!.realtime.publishTopic('public', 'hello')
    expect((await client.nextOf('patch')).payload).toBe('hello')
    expect(client.frames.some((f) => f.type === 'patch' && f.payload === 'private')).toBe(false)
    expect(server!.realtime.stats().drops.revoked).toBe(1)
  })

  it('answers `auth` before `hello` with UNAUTHORIZED', async () => {
    await start()
    const client = await useRawClient(server!.url)
    expect(await client.request({ type: 'auth', id: 1, auth: 'u1:5000' })).toMatchObject({ type: 'error', code: 'UNAUTHORIZED' })
  })
})

describe('revoke()', () => {
  it('removes every subscription of a topic without a predicate, with a reason, and counts them', async () => {
    await start()
    const a = await hello('a:5000')
    const b = await hello('b:5000')
    await a.request({ type: 'subscribe', id: 1, topic: 'room' })
    await b.request({ type: 'subscribe', id: 1, topic: 'room' })
    await b.request({ type: 'subscribe', id: 2, topic: 'other' })
    expect(server!.realtime.revoke('room', undefined, 'room closed')).toBe(2)
    for (const client of [a, b]) expect(await client.nextOf('unsubscribed')).toEqual({ type: 'unsubscribed', topic: 'room', reason: 'room closed' })
    await server!.realtime.publishTopic('room', 'gone')
    await server!.realtime.publishTopic('other', 'kept')
    expect((await b.nextOf('patch')).payload).toBe('kept')
    expect(a.frames.concat(b.frames).some((f) => f.type === 'patch' && f.payload === 'gone')).toBe(false)
    expect(server!.realtime.stats()).toMatchObject({ subscriptions: 1, topics: 1 })
    expect(server!.realtime.stats().drops.revoked).toBe(2)
    expect(server!.realtime.revoke('room')).toBe(0)
  })

  it('lets a revoked client subscribe again when `authorize` still allows it', async () => {
    await start()
    const client = await hello('a:5000')
    await client.request({ type: 'subscribe', id: 1, topic: 'room' })
    server!.realtime.revoke('room')
    await client.nextOf('unsubscribed')
    expect(await client.request({ type: 'subscribe', id: 2, topic: 'room' })).toMatchObject({ type: 'subscribed' })
    await waitFor(() => server!.realtime.stats().subscriptions === 1)
  })
})
