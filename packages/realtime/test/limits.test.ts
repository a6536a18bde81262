import { describe, expect, it } from 'vitest'
import type WebSocket from 'ws'
import { DEFAULT_LIMITS } from '../src/server/index.js'
import { MAX_PENDING_MESSAGES } from '../src/server/topics.js'
import type { Position } from '../src/topics.js'
import { useRawClient, useServer } from './utils/harness.js'
import { RawClient, sleep, waitFor, type TestServer, type TestServerOptions } from './utils/server.js'

/**
 * Each limit trips with its error or close code and its counter in `stats()`. Limits already
 * tripped in server.test.ts (subscriptions, frame rate, per-address connections, slow consumer,
 * origin) and bad-frames.test.ts (bad-frame budget) are not repeated here.
 */

/** The running test's server (the harness closes it, and its clients, when the test ends). */
let server: TestServer | undefined
const start = async (options: TestServerOptions = {}) => (server = await useServer(options))
const connect = (options?: WebSocket.ClientOptions) => useRawClient(server!.url, options)

describe('DEFAULT_LIMITS', () => {
  it('has a safe default for every limit', () => {
    expect(DEFAULT_LIMITS).toEqual({
      maxPayloadBytes: 65_536,
      maxSubscriptions: 100,
      framesPerSecond: 100,
      frameBurst: 200,
      maxBufferedBytes: 1_048_576,
      maxBadFrames: 20,
      maxConnectionsPerAddress: 1000,
      maxConnections: 100_000,
      handshakeTimeoutMs: 10_000,
    })
  })

  it('refuses a limit that is not a positive number', async () => {
    await expect(start({ limits: { maxConnections: 0 } })).rejects.toThrow(/maxConnections/)
  })
})

describe('connections', () => {
  it('refuses upgrades past maxConnections with 503, counts them, and accepts again once one leaves', async () => {
    await start({ limits: { maxConnections: 2 } })
    const first = await connect()
    await connect()
    await expect(RawClient.connect(server!.url)).rejects.toThrow(/503/)
    expect(server!.realtime.stats().refused.max_connections).toBe(1)
    first.close()
    await waitFor(() => server!.realtime.stats().connections === 1)
    const again = await connect()
    expect(await again.request({ type: 'ping', id: 1 })).toMatchObject({ type: 'pong' })
  })

  it('refuses an upgrade without an Origin header when allowedOrigins is set, and counts it', async () => {
    await start({ allowedOrigins: ['https://app.example'] })
    await expect(RawClient.connect(server!.url)).rejects.toThrow(/403/)
    await expect(RawClient.connect(server!.url, { origin: 'https://app.example.evil' })).rejects.toThrow(/403/)
    expect(server!.realtime.stats().refused.origin).toBe(2)
    expect(server!.realtime.stats().connections).toBe(0)
  })
})

describe('handshake', () => {
  it('closes 4002 a client that never says hello when hello is required, and counts it', async () => {
    await start({ authenticate: () => ({ id: 1 }), limits: { handshakeTimeoutMs: 150 } })
    const silent = await connect()
    const started = Date.now()
    expect(await silent.closed(3000)).toBe(4002)
    expect(Date.now() - started).toBeGreaterThanOrEqual(100)
    expect(server!.realtime.stats().closes['4002']).toBe(1)
  })

  it('does not time out a client that said hello in time', async () => {
    await start({ authenticate: () => ({ id: 1 }), limits: { handshakeTimeoutMs: 150 } })
    const client = await connect()
    client.send({ type: 'hello', v: 1, auth: 't' })
    await client.nextOf('welcome')
    await sleep(300)
    expect(client.closeCode).toBeUndefined()
  })

  it('has no handshake timeout when hello is optional (no authenticate hook)', async () => {
    await start({ limits: { handshakeTimeoutMs: 100 } })
    const client = await connect()
    await sleep(250)
    expect(client.closeCode).toBeUndefined()
    expect(await client.request({ type: 'ping', id: 1 })).toMatchObject({ type: 'pong' })
  })

  it('answers RATE_LIMITED to frames past 1 MiB queued behind a pending hello, and counts them', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    await start({ authenticate: async () => (await gate, { id: 1 }) })
    const client = await connect()
    client.send({ type: 'hello', v: 1, auth: 't' })
    const pad = 'x'.repeat(60 * 1024)
    for (let i = 0; i < 20; i++) client.send({ type: 'ping', id: i, pad })
    expect(await client.nextOf('error')).toMatchObject({ code: 'RATE_LIMITED' })
    expect(server!.realtime.stats().drops.queue_full).toBeGreaterThanOrEqual(1)
    release()
    await client.nextOf('welcome')
    // The frames that fitted were kept and are answered in order.
    expect(await client.nextOf('pong', 0)).toMatchObject({ id: 0 })
  })
})

describe('frames', () => {
  it('closes 1009 on a frame over maxPayloadBytes and counts it under 1009', async () => {
    await start({ limits: { maxPayloadBytes: 1024 } })
    const client = await connect()
    client.send({ type: 'ping', pad: 'x'.repeat(1024) })
    expect(await client.closed()).toBe(1009)
    await waitFor(() => server!.realtime.stats().connections === 0)
    expect(server!.realtime.stats().closes['1009']).toBe(1)
  })

  it('accepts a frame of exactly maxPayloadBytes', async () => {
    await start({ limits: { maxPayloadBytes: 1024 } })
    const client = await connect()
    const frame = `{"type":"ping","id":1,"pad":"${'x'.repeat(1024 - 31)}"}`
    expect(Buffer.byteLength(frame)).toBe(1024)
    client.send(frame)
    expect(await client.nextOf('pong', 1)).toMatchObject({ type: 'pong' })
  })

  it('closes 1007 on a text frame that is not UTF-8 and counts it', async () => {
    await start()
    const client = await connect()
    client.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false })
    expect(await client.closed()).toBe(1007)
    await waitFor(() => server!.realtime.stats().connections === 0)
    expect(server!.realtime.stats().closes['1007']).toBe(1)
  })

  it('closes 1002 on broken WebSocket framing and counts it', async () => {
    await start()
    const client = await connect()
    const good = await connect()
    await good.request({ type: 'subscribe', id: 1, topic: 't' })
    // A masked frame with reserved opcode 0x3, written under the WebSocket layer.
    client.tcp.write(Buffer.from([0x83, 0x80, 1, 2, 3, 4]))
    expect(await client.closed()).toBe(1002)
    await waitFor(() => server!.realtime.stats().connections === 1)
    expect(server!.realtime.stats().closes['1002']).toBe(1)
    await server!.realtime.publishTopic('t', 'unaffected')
    expect((await good.nextOf('patch')).payload).toBe('unaffected')
  })

  it('answers binary frames with BAD_REQUEST and counts them', async () => {
    await start()
    const client = await connect()
    client.socket.send(Buffer.from('{"type":"ping"}'), { binary: true })
    expect(await client.nextOf('error')).toMatchObject({ code: 'BAD_REQUEST' })
    expect(server!.realtime.stats().errors.BAD_REQUEST).toBe(1)
  })
})

describe('slow consumers and recovery', () => {
  it('replays a history larger than maxBufferedBytes at the pace the client reads, without closing it', async () => {
    await start({ history: { size: 2000 }, limits: { maxBufferedBytes: 64 * 1024 } })
    const client = await connect()
    const subscribed = (await client.request({ type: 'subscribe', id: 1, topic: 't' })) as unknown as Position
    await client.request({ type: 'unsubscribe', id: 2, topic: 't' })
    const pad = 'x'.repeat(1000)
    for (let n = 0; n < 2000; n++) await server!.realtime.publishTopic('t', { n, pad })
    // About 2 MB of history: 30 times the send buffer limit.
    client.send({ type: 'subscribe', id: 3, topic: 't', since: { epoch: subscribed.epoch, offset: subscribed.offset } })
    expect(await client.nextOf('subscribed', 3)).toMatchObject({ recovered: true })
    await waitFor(() => client.frames.filter((f) => f.type === 'patch').length === 2000, 10_000, 'the whole history')
    const ns = client.frames.filter((f) => f.type === 'patch').map((f) => (f.payload as { n: number }).n)
    expect(ns).toEqual(Array.from({ length: 2000 }, (_, i) => i))
    expect(client.closeCode).toBeUndefined()
    expect(server!.realtime.stats().drops.slow_consumer).toBeUndefined()
  })

  it(`closes 4008 a client whose replay falls more than ${MAX_PENDING_MESSAGES} live messages behind`, async () => {
    await start({ history: { size: 3000 }, limits: { maxBufferedBytes: 64 * 1024 } })
    const client = await connect()
    const subscribed = (await client.request({ type: 'subscribe', id: 1, topic: 't' })) as unknown as Position
    await client.request({ type: 'unsubscribe', id: 2, topic: 't' })
    const pad = 'x'.repeat(4000)
    for (let n = 0; n < 3000; n++) await server!.realtime.publishTopic('t', { n, pad })
    // It asks for 12 MB of history, then stops reading: the replay stalls and live messages pile up.
    client.send({ type: 'subscribe', id: 3, topic: 't', since: { epoch: subscribed.epoch, offset: subscribed.offset } })
    await client.nextOf('subscribed', 3)
    client.pauseReading()
    await waitFor(() => server!.realtime.stats().subscriptions === 1, 2000)
    for (let n = 0; n <= MAX_PENDING_MESSAGES; n++) await server!.realtime.publishTopic('t', { live: n })
    await waitFor(() => server!.realtime.stats().closes['4008'] === 1, 5000, 'the 4008 close')
    expect(server!.realtime.stats().drops.slow_consumer).toBe(1)
    await waitFor(() => server!.realtime.stats().connections === 0, 3000, 'the slow socket to be destroyed')
    expect(server!.realtime.stats()).toMatchObject({ subscriptions: 0, topics: 0 })
  })
})

describe('heartbeat', () => {
  it('counts the 4009 close of a peer that stopped answering pings', async () => {
    await start({ heartbeatMs: 80 })
    const client = await connect({ autoPong: false })
    expect(await client.closed(3000)).toBe(4009)
    expect(server!.realtime.stats().closes['4009']).toBe(1)
  })

  it('keeps a peer that answers pings, over many heartbeats, and it still gets patches', async () => {
    await start({ heartbeatMs: 50 })
    const client = await connect()
    client.send({ type: 'subscribe', id: 1, topic: 't' })
    await client.nextOf('subscribed', 1)
    let pings = 0
    client.socket.on('ping', () => pings++)
    await new Promise((resolve) => setTimeout(resolve, 600))
    expect(pings).toBeGreaterThanOrEqual(4)
    expect(server!.realtime.stats()).toMatchObject({ connections: 1, closes: {} })
    await server!.realtime.publishTopic('t', { still: 'here' })
    expect(await client.nextOf('patch')).toMatchObject({ payload: { still: 'here' } })
  })
})
