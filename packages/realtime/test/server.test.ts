import { describe, expect, it, vi } from 'vitest'
import WebSocket from 'ws'
import { InMemoryBus } from '../src/bus/memory.js'
import type { Position } from '../src/topics.js'
import { RealtimeError } from '../src/errors.js'
import { createRealtimeServer } from '../src/server/index.js'
import { useRawClient, useServer } from './utils/harness.js'
import { RawClient, sleep, waitFor, type TestServer, type TestServerOptions } from './utils/server.js'

/** The running test's server (the harness closes it, and its clients, when the test ends). */
let server: TestServer | undefined
const start = async (options: TestServerOptions = {}) => (server = await useServer(options))
const connect = (options?: WebSocket.ClientOptions) => useRawClient(server!.url, options)

describe('createRealtimeServer', () => {
  it('needs a server or noServer', () => {
    expect(() => createRealtimeServer({})).toThrow(/server/)
  })
})

describe('handshake', () => {
  it('answers hello with welcome', async () => {
    await start({ heartbeatMs: 30_000 })
    const client = await connect()
    client.send({ type: 'hello', v: 1 })
    const welcome = await client.nextOf('welcome')
    expect(welcome).toMatchObject({ type: 'welcome', v: 1, heartbeatMs: 30_000 })
    expect(typeof welcome.connectionId).toBe('string')
  })

  it('rejects another protocol version with UNSUPPORTED_VERSION and stays open', async () => {
    await start()
    const client = await connect()
    client.send({ type: 'hello', v: 2 })
    expect(await client.nextOf('error')).toMatchObject({ code: 'UNSUPPORTED_VERSION' })
    expect(await client.request({ type: 'ping', id: 1 })).toEqual({ type: 'pong', id: 1 })
  })

  it('lets a client subscribe without hello when there is no authenticate hook', async () => {
    await start()
    const client = await connect()
    expect(await client.request({ type: 'subscribe', id: 1, topic: 'profile' })).toMatchObject({
      type: 'subscribed',
      id: 1,
      topic: 'profile',
      recovered: false,
    })
  })

  it('hands hello.auth to authenticate and the principal to authorize', async () => {
    const authorize = vi.fn((principal: unknown, topic: string) => topic === `user:${(principal as { id: string }).id}`)
    await start({
      authenticate: (_req, auth) => {
        if (auth !== 'token-7') throw new Error('bad token')
        return { id: '7' }
      },
      authorize,
    })
    const client = await connect()
    client.send({ type: 'hello', v: 1, auth: 'token-7' })
    await client.nextOf('welcome')
    expect(await client.request({ type: 'subscribe', id: 1, topic: 'user:7' })).toMatchObject({ type: 'subscribed' })
    expect(await client.request({ type: 'subscribe', id: 2, topic: 'user:8' })).toMatchObject({
      type: 'error',
      code: 'FORBIDDEN',
      topic: 'user:8',
    })
    expect(authorize).toHaveBeenCalledWith({ id: '7' }, 'user:8')
    expect(server!.realtime.stats().refused.forbidden).toBe(1)
  })

  it('closes 4001 when authenticate throws', async () => {
    await start({ authenticate: () => Promise.reject(new Error('nope')) })
    const client = await connect()
    client.send({ type: 'hello', v: 1, auth: 'x' })
    expect(await client.closed()).toBe(4001)
    expect(server!.realtime.stats().refused.unauthorized).toBe(1)
  })

  it('answers UNAUTHORIZED to a subscribe before hello when authentication is required', async () => {
    await start({ authenticate: () => ({ id: 1 }) })
    const client = await connect()
    expect(await client.request({ type: 'subscribe', id: 1, topic: 'profile' })).toMatchObject({ code: 'UNAUTHORIZED' })
  })

  it('processes frames pipelined after hello once authentication is done', async () => {
    await start({ authenticate: async () => (await sleep(50), { id: 1 }) })
    const client = await connect()
    client.send({ type: 'hello', v: 1, auth: 'x' })
    client.send({ type: 'subscribe', id: 1, topic: 'profile' })
    await client.nextOf('welcome')
    expect(await client.nextOf('subscribed', 1)).toMatchObject({ topic: 'profile' })
  })

  it('closes 4002 when hello never comes and authentication is required', async () => {
    await start({ authenticate: () => ({ id: 1 }), limits: { handshakeTimeoutMs: 100 } })
    const client = await connect()
    expect(await client.closed()).toBe(4002)
  })
})

describe('subscribe and publish', () => {
  it('delivers patches in the seed shape plus a position, in order', async () => {
    await start()
    const client = await connect()
    await client.request({ type: 'subscribe', id: 1, topic: 'user:1' })
    const positions: Position[] = []
    for (let i = 0; i < 5; i++) positions.push(await server!.realtime.publishTopic('user:1', { n: i }))
    for (let i = 0; i < 5; i++) {
      const patch = await client.nextOf('patch')
      expect(patch).toEqual({ type: 'patch', topic: 'user:1', payload: { n: i }, offset: positions[i]!.offset, epoch: positions[i]!.epoch })
    }
  })

  it('sends nothing after unsubscribe', async () => {
    await start()
    const client = await connect()
    await client.request({ type: 'subscribe', id: 1, topic: 'a' })
    expect(await client.request({ type: 'unsubscribe', id: 2, topic: 'a' })).toEqual({ type: 'unsubscribed', id: 2, topic: 'a' })
    await server!.realtime.publishTopic('a', { n: 1 })
    expect(await client.request({ type: 'ping', id: 3 })).toEqual({ type: 'pong', id: 3 })
    expect(client.frames.filter((f) => f.type === 'patch')).toHaveLength(0)
    expect(server!.realtime.stats()).toMatchObject({ subscriptions: 0, topics: 0 })
  })

  it('recovers missed patches after `since`, then goes live', async () => {
    await start()
    const first = await connect()
    const subscribed = await first.request({ type: 'subscribe', id: 1, topic: 't' })
    const since = { epoch: (subscribed as Position).epoch, offset: (subscribed as Position).offset }
    first.close()
    for (let i = 0; i < 3; i++) await server!.realtime.publishTopic('t', i)
    const second = await connect()
    expect(await second.request({ type: 'subscribe', id: 1, topic: 't', since })).toMatchObject({ recovered: true })
    await server!.realtime.publishTopic('t', 3)
    const payloads = []
    for (let i = 0; i < 4; i++) payloads.push((await second.nextOf('patch')).payload)
    expect(payloads).toEqual([0, 1, 2, 3])
  })

  it('answers recovered:false for an unknown epoch', async () => {
    await start()
    const client = await connect()
    expect(await client.request({ type: 'subscribe', id: 1, topic: 't', since: { epoch: 'other', offset: '3' } })).toMatchObject({ recovered: false })
  })

  it('answers recovered:false when history no longer reaches back to `since`', async () => {
    await start({ history: { size: 2 } })
    const client = await connect()
    const subscribed = (await client.request({ type: 'subscribe', id: 1, topic: 't' })) as unknown as Position
    await client.request({ type: 'unsubscribe', id: 2, topic: 't' })
    for (let i = 0; i < 5; i++) await server!.realtime.publishTopic('t', i)
    expect(await client.request({ type: 'subscribe', id: 3, topic: 't', since: { epoch: subscribed.epoch, offset: subscribed.offset } })).toMatchObject({ recovered: false })
  })

  it('answers ping with pong, with and without id', async () => {
    await start()
    const client = await connect()
    expect(await client.request({ type: 'ping', id: 'abc' })).toEqual({ type: 'pong', id: 'abc' })
    client.send({ type: 'ping' })
    expect(await client.nextOf('pong')).toEqual({ type: 'pong' })
  })

  it('serializes a payload once per publish, not once per subscriber', async () => {
    await start()
    const subscribers = await Promise.all(Array.from({ length: 50 }, () => connect()))
    await Promise.all(subscribers.map((c, i) => c.request({ type: 'subscribe', id: i, topic: 'fan' })))
    const payload = { marker: 'once', nested: { a: 1 } }
    const stringify = vi.spyOn(JSON, 'stringify')
    await server!.realtime.publishTopic('fan', payload)
    const payloadCalls = stringify.mock.calls.filter(([value]) => value === payload).length
    stringify.mockRestore()
    expect(payloadCalls).toBe(1)
    await Promise.all(subscribers.map((c) => c.nextOf('patch')))
  })

  it('rejects publishTopic with an invalid topic or a non-JSON payload', async () => {
    await start()
    await expect(server!.realtime.publishTopic('bad topic', 1)).rejects.toMatchObject({ code: 'INVALID_TOPIC' })
    const circular: Record<string, unknown> = {}
    circular.self = circular
    await expect(server!.realtime.publishTopic('t', circular)).rejects.toMatchObject({ code: 'INVALID_PAYLOAD' })
    await expect(server!.realtime.publishTopic('t', undefined)).rejects.toBeInstanceOf(RealtimeError)
  })

  it('runs server-side onTopic listeners with the payload and position', async () => {
    await start()
    const seen: [unknown, Position][] = []
    const remove = server!.realtime.onTopic('cache', (payload, position) => seen.push([payload, position]))
    await remove.ready
    const position = await server!.realtime.publishTopic('cache', { key: 'u1' })
    expect(seen).toEqual([[{ key: 'u1' }, position]])
    await remove()
    await server!.realtime.publishTopic('cache', { key: 'u2' })
    expect(seen).toHaveLength(1)
  })

  it('revokes subscriptions server-side with a reason', async () => {
    await start({ authenticate: (_r, auth) => ({ id: auth }) })
    const a = await connect()
    const b = await connect()
    for (const [c, id] of [[a, 'a'], [b, 'b']] as const) {
      c.send({ type: 'hello', v: 1, auth: id })
      await c.nextOf('welcome')
      await c.request({ type: 'subscribe', id: 1, topic: 'room' })
    }
    expect(server!.realtime.revoke('room', (p) => (p as { id: string }).id === 'a', 'kicked')).toBe(1)
    expect(await a.nextOf('unsubscribed')).toEqual({ type: 'unsubscribed', topic: 'room', reason: 'kicked' })
    await server!.realtime.publishTopic('room', 'hi')
    expect((await b.nextOf('patch')).payload).toBe('hi')
    expect(await a.request({ type: 'ping', id: 9 })).toMatchObject({ type: 'pong' })
    expect(a.frames.some((f) => f.type === 'patch')).toBe(false)
  })

  it('answers INTERNAL when the bus cannot serve a subscribe, and lives on', async () => {
    class FailingHistoryBus extends InMemoryBus {
      override history(): never {
        throw new Error('history store down')
      }
    }
    await start({ bus: new FailingHistoryBus() })
    const client = await connect()
    expect(await client.request({ type: 'subscribe', id: 1, topic: 't' })).toMatchObject({ type: 'error', code: 'INTERNAL', topic: 't' })
    expect(server!.realtime.stats().subscriptions).toBe(0)
    expect(await client.request({ type: 'ping', id: 2 })).toMatchObject({ type: 'pong' })
  })
})

describe('limits', () => {
  it('answers TOO_MANY_SUBSCRIPTIONS past maxSubscriptions', async () => {
    await start({ limits: { maxSubscriptions: 2 } })
    const client = await connect()
    await client.request({ type: 'subscribe', id: 1, topic: 'a' })
    await client.request({ type: 'subscribe', id: 2, topic: 'b' })
    expect(await client.request({ type: 'subscribe', id: 3, topic: 'c' })).toMatchObject({ code: 'TOO_MANY_SUBSCRIPTIONS' })
    expect(server!.realtime.stats().drops.too_many_subscriptions).toBe(1)
  })

  it('answers RATE_LIMITED past the frame rate, then closes 4000 if it goes on', async () => {
    await start({ limits: { framesPerSecond: 5, frameBurst: 5, maxBadFrames: 3 } })
    const client = await connect()
    for (let i = 0; i < 12; i++) client.send({ type: 'ping', id: i })
    expect(await client.nextOf('error')).toMatchObject({ code: 'RATE_LIMITED' })
    expect(await client.closed()).toBe(4000)
    expect(server!.realtime.stats().drops.rate_limited).toBeGreaterThanOrEqual(1)
    expect(server!.realtime.stats().closes['4000']).toBe(1)
  })

  it('closes 1009 on a frame over maxPayloadBytes', async () => {
    await start({ limits: { maxPayloadBytes: 1024 } })
    const client = await connect()
    client.send({ type: 'ping', id: 1, pad: 'x'.repeat(2000) })
    expect(await client.closed()).toBe(1009)
  })

  it('closes 4008 a client that stops reading, and keeps serving the others', async () => {
    await start({ limits: { maxBufferedBytes: 64 * 1024 } })
    const slow = await connect()
    const good = await connect()
    await slow.request({ type: 'subscribe', id: 1, topic: 'burst' })
    await good.request({ type: 'subscribe', id: 1, topic: 'burst' })
    // Stop reading: the kernel buffers fill, then the server's send buffer grows.
    slow.pauseReading()
    const big = 'x'.repeat(16 * 1024)
    const received: number[] = []
    good.socket.on('message', (d) => {
      const f = JSON.parse(d.toString())
      if (f.type === 'patch') received.push(f.payload.n)
    })
    // Publish until the server gives up on the slow one: how much the kernel's socket buffers
    // absorb first varies (loopback buffers grow to several MiB), so the count is bounded, not fixed.
    let n = 0
    while (server!.realtime.stats().closes['4008'] !== 1 && n < 4000) {
      await server!.realtime.publishTopic('burst', { n: n++, big })
      if (n % 50 === 0) await sleep(1)
    }
    await waitFor(() => server!.realtime.stats().closes['4008'] === 1, 10_000, 'slow consumer close')
    await waitFor(() => received.length === n, 10_000, 'good client to receive all')
    expect(received).toEqual(Array.from({ length: n }, (_, i) => i))
    expect(server!.realtime.stats().drops.slow_consumer).toBe(1)
  })

  it('closes 4009 a peer that stops answering pings', async () => {
    await start({ heartbeatMs: 100 })
    const client = await connect({ autoPong: false })
    expect(await client.closed(3000)).toBe(4009)
  })

  it('keeps a peer that answers pings', async () => {
    await start({ heartbeatMs: 50 })
    const client = await connect()
    await sleep(300)
    expect(client.closeCode).toBeUndefined()
  })

  it('refuses an upgrade from an origin not allowed, and counts it', async () => {
    await start({ allowedOrigins: ['https://app.example'] })
    await expect(RawClient.connect(server!.url, { origin: 'https://evil.example' })).rejects.toThrow(/403/)
    const ok = await connect({ origin: 'https://app.example' })
    expect(await ok.request({ type: 'ping', id: 1 })).toMatchObject({ type: 'pong' })
    expect(server!.realtime.stats().refused.origin).toBe(1)
  })

  it('refuses connections past maxConnectionsPerAddress with 503', async () => {
    await start({ limits: { maxConnectionsPerAddress: 2 } })
    await connect()
    await connect()
    await expect(RawClient.connect(server!.url)).rejects.toThrow(/503/)
    expect(server!.realtime.stats().refused.max_connections_per_address).toBe(1)
  })
})

describe('close()', () => {
  it('closes every client with 4010 (reconnect elsewhere) and refuses new ones', async () => {
    await start()
    const a = await connect()
    const b = await connect()
    await a.request({ type: 'subscribe', id: 1, topic: 't' })
    const closing = server!.realtime.close()
    expect(await a.closed()).toBe(4010)
    expect(await b.closed()).toBe(4010)
    await closing
    await expect(server!.realtime.publishTopic('t', 1)).rejects.toMatchObject({ code: 'CLOSED' })
  })
})

describe('stats()', () => {
  it('counts connections, subscriptions, topics and messages', async () => {
    await start()
    const a = await connect()
    const b = await connect()
    await a.request({ type: 'subscribe', id: 1, topic: 'x' })
    await b.request({ type: 'subscribe', id: 1, topic: 'x' })
    await b.request({ type: 'subscribe', id: 2, topic: 'y' })
    await server!.realtime.publishTopic('x', 1)
    await a.nextOf('patch')
    await b.nextOf('patch')
    expect(server!.realtime.stats()).toMatchObject({ connections: 2, subscriptions: 3, topics: 2, published: 1, delivered: 2, messagesIn: 3 })
    a.close()
    b.close()
    await waitFor(() => server!.realtime.stats().connections === 0)
    expect(server!.realtime.stats()).toMatchObject({ subscriptions: 0, topics: 0 })
  })
})
