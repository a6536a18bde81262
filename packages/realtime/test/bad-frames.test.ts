import { describe, expect, it } from 'vitest'
import { useRawClient, useServer } from './utils/harness.js'
import { waitFor } from './utils/server.js'

const BAD_FRAMES: (string | Buffer)[] = [
  'not json',
  '{',
  '[]',
  '[{"type":"subscribe","topic":"a"}]',
  '42',
  '-1e999',
  'null',
  'true',
  '"subscribe"',
  '{}',
  '{"type":null}',
  '{"type":["subscribe"]}',
  '{"type":"subscribe"}',
  '{"type":"subscribe","topic":null}',
  '{"type":"subscribe","topic":{"a":1}}',
  '{"type":"subscribe","topic":"has space"}',
  '{"type":"subscribe","topic":"../../etc/passwd"}',
  `{"type":"subscribe","topic":"${'x'.repeat(201)}"}`,
  '{"type":"subscribe","topic":"ok","since":[1]}',
  '{"type":"subscribe","topic":"ok","since":{"epoch":"e"}}',
  '{"type":"subscribe","id":{},"topic":"ok"}',
  '{"type":"unsubscribe","topic":7}',
  '{"type":"hello","v":"1"}',
  '{"type":"hello","v":99}',
  '{"type":"publish","topic":"profile","payload":{"admin":true}}',
  '{"type":"__proto__"}',
  '{"__proto__":{"type":"subscribe"},"topic":"profile"}',
  '{"type":"subscribe","topic":"profile","__proto__":{"isAdmin":true}}',
  '{"type":"constructor","prototype":{}}',
  Buffer.from([0xff, 0xfe, 0x00, 0x01]),
]

describe('a barrage of bad frames', () => {
  it('gets error frames, never crashes the server, and a good client receives every patch', async () => {
    // Generous abuse budget so that the barrage is answered frame by frame before the 4000 close.
    const server = await useServer({ limits: { maxBadFrames: 1000, framesPerSecond: 10_000, frameBurst: 10_000 } })
    const good = await useRawClient(server.url)
    await good.request({ type: 'subscribe', id: 1, topic: 'profile' })
    const received: number[] = []
    good.socket.on('message', (data) => {
      const frame = JSON.parse(data.toString())
      if (frame.type === 'patch') received.push(frame.payload.n)
    })

    const attackers = await Promise.all(Array.from({ length: 5 }, () => useRawClient(server.url)))
    let n = 0
    for (let round = 0; round < 10; round++) {
      for (const attacker of attackers) {
        for (const frame of BAD_FRAMES) attacker.socket.send(frame, { binary: Buffer.isBuffer(frame) })
      }
      for (let i = 0; i < 20; i++) await server.realtime.publishTopic('profile', { n: n++ })
    }
    await waitFor(() => received.length === n, 10_000, 'every patch at the good client')
    expect(received).toEqual(Array.from({ length: n }, (_, i) => i))

    // Every bad frame got an error frame, in order, and the attackers are still connected.
    const expected = BAD_FRAMES.length * 10 - 10 * 1 /* the one valid subscribe with a __proto__ key */
    for (const attacker of attackers) {
      await waitFor(() => attacker.frames.filter((f) => f.type === 'error').length >= expected, 10_000, 'error frames')
      expect(attacker.closeCode).toBeUndefined()
      const codes = new Set(attacker.frames.filter((f) => f.type === 'error').map((f) => (f as { code: string }).code))
      expect([...codes].sort()).toEqual(['BAD_REQUEST', 'INVALID_TOPIC', 'UNKNOWN_TYPE', 'UNSUPPORTED_VERSION'])
    }
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
    for (const attacker of attackers) attacker.close()
    good.close()
  })

  it('closes 4000 a connection that keeps sending bad frames, with default limits', async () => {
    const server = await useServer()
    const attacker = await useRawClient(server.url)
    const good = await useRawClient(server.url)
    await good.request({ type: 'subscribe', id: 1, topic: 't' })
    for (let i = 0; i < 100; i++) attacker.send('garbage')
    expect(await attacker.closed()).toBe(4000)
    await server.realtime.publishTopic('t', 'still here')
    expect((await good.nextOf('patch')).payload).toBe('still here')
    expect(server.realtime.stats().errors.BAD_REQUEST).toBeGreaterThanOrEqual(20)
    good.close()
  })

  it('closes 1009 a frame over the size limit and keeps serving others', async () => {
    const server = await useServer()
    const attacker = await useRawClient(server.url)
    const good = await useRawClient(server.url)
    await good.request({ type: 'subscribe', id: 1, topic: 't' })
    attacker.send('{"type":"ping","pad":"' + 'x'.repeat(70 * 1024) + '"}')
    expect(await attacker.closed()).toBe(1009)
    await server.realtime.publishTopic('t', 1)
    expect((await good.nextOf('patch')).payload).toBe(1)
    good.close()
  })
})
