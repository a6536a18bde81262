import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InMemoryBus } from '../src/bus/memory.js'
import { catchUp } from '../src/bus/catchup.js'
import type { Bus, BusMessage } from '../src/bus/types.js'
import { RedisBus } from '../src/redis/index.js'
import type { PatchFrame, SubscribedFrame } from '../src/protocol.js'
import type { Position } from '../src/topics.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'
import { closeAfterTest, useRawClient, useServer } from './utils/harness.js'
import { waitFor, type RawClient } from './utils/server.js'

const message = (offset: number, epoch = 'e'): BusMessage => ({ topic: 't', data: String(offset), epoch, offset: String(offset) })
const offsets = (messages: Iterable<BusMessage>) => [...messages].map((m) => Number(m.offset))

describe('catchUp', () => {
  it('passes on the history, then the held messages after it, each once', () => {
    const history = [3, 4, 5].map((n) => message(n))
    const held = [4, 5, 6, 7].map((n) => message(n))
    expect(offsets(catchUp(history, held, { epoch: 'e', offset: '2' }))).toEqual([3, 4, 5, 6, 7])
  })

  it('drops held messages at or before the starting position', () => {
    const held = [1, 2, 3].map((n) => message(n))
    expect(offsets(catchUp([], held, { epoch: 'e', offset: '2' }))).toEqual([3])
  })

  it('passes on a message of a new epoch, and compares the later ones with it', () => {
    const held = [message(9), message(1, 'f'), message(1, 'f'), message(2, 'f')]
    expect([...catchUp([], held, { epoch: 'e', offset: '8' })].map((m) => `${m.epoch}${m.offset}`)).toEqual(['e9', 'f1', 'f2'])
  })

  it('reads held messages that come while the caller handles earlier ones', () => {
    const held: BusMessage[] = [message(2)]
    const seen: number[] = []
    for (const m of catchUp([message(1)], held, undefined)) {
      seen.push(Number(m.offset))
      if (held.length < 5) held.push(message(held.length + 2))
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6])
  })

  it('returns the last position passed on', () => {
    const merge = catchUp([message(1)], [message(2)], undefined)
    let step = merge.next()
    while (!step.done) step = merge.next()
    expect(step.value).toEqual({ epoch: 'e', offset: '2' })
  })

  it('never gaps or repeats, wherever the history read falls in the live stream (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 50 }), // messages before the join (the client had seen `seen` of them)
        fc.integer({ min: 0, max: 50 }), // messages between the join and the history read
        fc.integer({ min: 0, max: 50 }), // messages after the read, before going live
        fc.integer({ min: 0, max: 50 }),
        (before, between, after, seenPart) => {
          const seen = Math.min(seenPart, before)
          const published = before + between
          // History: everything after `seen` up to the read. Held: everything from the join on.
          const history = Array.from({ length: published - seen }, (_, i) => message(seen + i + 1))
          const held = Array.from({ length: between + after }, (_, i) => message(before + i + 1))
          const expected = Array.from({ length: published + after - seen }, (_, i) => seen + i + 1)
          expect(offsets(catchUp(history, held, { epoch: 'e', offset: String(seen) }))).toEqual(expected)
        },
      ),
    )
  })
})

/**
 * The race end to end: a publisher at full speed on one topic while clients subscribe (fresh, and
 * back with `since` after a drop). Every client must end with exactly the messages after its
 * `subscribed` position (or its `since`), in order: no gap, no duplicate.
 */
function fullSpeedSuite(name: string, makeBus: () => Bus, cleanup: () => Promise<void> = async () => {}): void {
  describe(`catch-up under a full-speed publisher (${name})`, () => {
    it('gives every subscriber joining mid-stream every message after its position, once, in order', async () => {
      // Registered first, so it runs last: after the server and its clients are closed.
      closeAfterTest(cleanup)
      const server = await useServer({ bus: makeBus(), limits: { maxConnectionsPerAddress: 1000, framesPerSecond: 10_000 } })
      const topic = 'race'
      const TOTAL = 3000
      const byOffset = new Map<string, number>()
      let publishing = true
      const publisher = (async () => {
        // Bursts of 20 publishes in flight, then a turn for the event loop: as fast as the bus takes them.
        for (let n = 1; n <= TOTAL; n += 20) {
          const burst = Array.from({ length: Math.min(20, TOTAL - n + 1) }, (_, i) =>
            server.realtime.publishTopic(topic, n + i).then((p) => byOffset.set(p.offset, n + i)),
          )
          await Promise.all(burst)
          await new Promise((resolve) => setImmediate(resolve))
        }
        publishing = false
      })()

      type Received = { client: RawClient; from: Position; numbers: number[] }
      const received: Received[] = []
      const patchesOf = (client: RawClient) => client.frames.filter((f): f is PatchFrame => f.type === 'patch')

      // Fresh subscribers, joining while the publisher runs.
      const joins: Promise<void>[] = []
      for (let i = 0; i < 12; i++) {
        joins.push(
          (async () => {
            await new Promise((resolve) => setTimeout(resolve, i * 15))
            const client = await useRawClient(server.url)
            client.send({ type: 'subscribe', topic, id: 1 })
            const subscribed = await client.nextOf('subscribed', 1, 10_000)
            received.push({ client, from: { epoch: subscribed.epoch, offset: subscribed.offset }, numbers: [] })
          })(),
        )
      }
      // Subscribers that drop mid-stream and come back with `since`: history + held messages merge.
      for (let i = 0; i < 6; i++) {
        joins.push(
          (async () => {
            await new Promise((resolve) => setTimeout(resolve, 10 + i * 20))
            const first = await useRawClient(server.url)
            first.send({ type: 'subscribe', topic, id: 1 })
            const subscribed = await first.nextOf('subscribed', 1, 10_000)
            await waitFor(() => patchesOf(first).length >= 5 || !publishing, 10_000, 'a few patches')
            first.close()
            const seen = patchesOf(first)
            const last = seen.at(-1)
            const since = last ? { epoch: last.epoch, offset: last.offset } : { epoch: subscribed.epoch, offset: subscribed.offset }
            const again = await useRawClient(server.url)
            again.send({ type: 'subscribe', topic, id: 2, since })
            const back = (await again.nextOf('subscribed', 2, 10_000)) as SubscribedFrame
            expect(back.recovered).toBe(true)
            received.push({ client: again, from: since, numbers: [] })
          })(),
        )
      }
      await Promise.all(joins)
      await publisher
      const lastOffset = [...byOffset.keys()].sort((a, b) => byOffset.get(a)! - byOffset.get(b)!).at(-1)!
      for (const r of received) {
        await waitFor(() => patchesOf(r.client).at(-1)?.offset === lastOffset, 15_000, 'the last message')
        const numbers = patchesOf(r.client).map((f) => f.payload as number)
        const start = r.from.offset === '0' ? 0 : byOffset.get(r.from.offset)!
        expect(start).toBeTypeOf('number')
        const expected = Array.from({ length: TOTAL - start }, (_, i) => start + i + 1)
        expect(numbers).toEqual(expected)
      }
      expect(received).toHaveLength(18)
    }, 60_000)
  })
}

fullSpeedSuite('InMemoryBus', () => new InMemoryBus({ history: { size: 10_000 } }))

describe('with Redis', () => {
  beforeAll(requireSharedRedis)
  let prefix = uniquePrefix('catchup')
  afterAll(() => deleteKeys(REDIS_URL, prefix))
  fullSpeedSuite(
    'RedisBus',
    () => new RedisBus({ url: REDIS_URL, prefix, history: { size: 10_000 } }),
    async () => {
      await deleteKeys(REDIS_URL, prefix)
      prefix = uniquePrefix('catchup')
    },
  )
})
