/**
 * The compact per-connection and per-topic state (one bus listener for every local topic, a single
 * subscriber or listener held without a Set, the frame budget as one number): the same behaviour
 * as the Sets, Maps and objects it replaced, at the transitions between one member and several.
 */
import fc from 'fast-check'
import { describe, expect, it, vi } from 'vitest'
import { InMemoryBus } from '../src/bus/memory.js'
import type { BusListener, BusMessage } from '../src/bus/types.js'
import { TokenBucket, takeToken } from '../src/server/limits.js'
import { textFrame } from '../src/server/socket.js'
import { LocalTopics, type PatchSink, type Subscription } from '../src/server/topics.js'
import * as ws from 'ws'
import { useRawClient, useServer } from './utils/harness.js'
import { waitFor } from './utils/server.js'

/** An InMemoryBus that counts subscribe and unsubscribe calls per (topic, listener). */
class CountingBus extends InMemoryBus {
  readonly calls: string[] = []
  readonly live = new Map<string, number>()
  override async subscribe(topic: string, listener: BusListener): Promise<void> {
    this.calls.push(`+${topic}`)
    this.live.set(topic, (this.live.get(topic) ?? 0) + 1)
    await super.subscribe(topic, listener)
  }
  override async unsubscribe(topic: string, listener: BusListener): Promise<void> {
    this.calls.push(`-${topic}`)
    this.live.set(topic, (this.live.get(topic) ?? 0) - 1)
    await super.unsubscribe(topic, listener)
  }
}

function sink(): PatchSink & { frames: string[] } {
  const frames: string[] = []
  return {
    frames,
    // A live patch comes framed: its text is the last `payloadBytes` bytes.
    sendPatch: (frame, payloadBytes) => frames.push(frame.subarray(frame.length - payloadBytes).toString()),
    slow: vi.fn(),
  }
}

function member(topic: string, to: PatchSink): Subscription {
  return { sink: to, topic, pending: null }
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('LocalTopics with one bus listener for every topic', () => {
  it('keeps the bus subscription of a topic left and joined again before its unsubscribe ran', async () => {
    const bus = new CountingBus()
    const topics = new LocalTopics(bus, { info() {}, warn() {}, error() {} }, () => {})
    const a = sink()
    const first = member('user:1', a)
    await topics.join(first)
    // Left and joined again in one turn: the unsubscribe waits for a microtask.
    topics.leave(first)
    const again = member('user:1', a)
    await topics.join(again)
    await flush()
    expect(bus.live.get('user:1')).toBe(1)
    await bus.publish('user:1', '{"n":1}')
    expect(a.frames).toHaveLength(1)
    expect(JSON.parse(a.frames[0] as string)).toMatchObject({ type: 'patch', topic: 'user:1', payload: { n: 1 } })
    topics.leave(again)
    await flush()
    expect(bus.live.get('user:1')).toBe(0)
    expect(bus.calls).toEqual(['+user:1', '-user:1'])
    expect(topics.size).toBe(0)
    await bus.close()
  })

  it('subscribes a topic that comes back after its unsubscribe ran', async () => {
    const bus = new CountingBus()
    const topics = new LocalTopics(bus, { info() {}, warn() {}, error() {} }, () => {})
    const a = sink()
    const first = member('t', a)
    await topics.join(first)
    topics.leave(first)
    await flush()
    await topics.join(member('t', a))
    expect(bus.calls).toEqual(['+t', '-t', '+t'])
    await bus.publish('t', '1')
    expect(a.frames).toHaveLength(1)
    await bus.close()
  })

  it('delivers to one subscriber, then several in join order, then the one left', async () => {
    const bus = new InMemoryBus()
    const delivered: number[] = []
    const topics = new LocalTopics(bus, { info() {}, warn() {}, error() {} }, (n) => delivered.push(n))
    const [a, b, c] = [sink(), sink(), sink()]
    const sa = member('p', a)
    const sb = member('p', b)
    const sc = member('p', c)
    await topics.join(sa)
    await bus.publish('p', '1')
    await topics.join(sb)
    await topics.join(sc)
    const order: string[] = []
    for (const [name, s] of [['a', a], ['b', b], ['c', c]] as const) {
      const send = s.sendPatch
      s.sendPatch = (frame, payloadBytes) => {
        order.push(name)
        send(frame, payloadBytes)
      }
    }
    await bus.publish('p', '2')
    expect(order).toEqual(['a', 'b', 'c'])
    expect([...topics.subscriptionsOf('p')]).toEqual([sa, sb, sc])
    topics.leave(sa)
    topics.leave(sc)
    await bus.publish('p', '3')
    expect([a.frames.length, b.frames.length, c.frames.length]).toEqual([2, 2, 1])
    expect([...topics.subscriptionsOf('p')]).toEqual([sb])
    expect(delivered).toEqual([1, 3, 1])
    expect(topics.busiest(5)).toEqual([{ topic: 'p', subscribers: 1, delivered: 5 }])
    await bus.close()
  })

  it('holds live messages for a subscription whose history is being read', async () => {
    const bus = new InMemoryBus()
    const topics = new LocalTopics(bus, { info() {}, warn() {}, error() {} }, () => {})
    const a = sink()
    const s: Subscription = { sink: a, topic: 'q', pending: [] }
    await topics.join(s)
    await bus.publish('q', '1')
    expect(a.frames).toHaveLength(0)
    expect((s.pending as BusMessage[]).map((m) => m.data)).toEqual(['1'])
    await bus.close()
  })
})

describe('textFrame', () => {
  it("is the frame ws writes for send(text), at every length encoding", () => {
    type Frame = (data: Buffer, options: Record<string, unknown>) => Buffer[]
    // The Sender is a named export of ws' ESM entry that @types/ws does not declare.
    const wsFrame = (ws as unknown as { Sender: { frame: Frame } }).Sender.frame
    for (const n of [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]) {
      for (const text of ['x'.repeat(n), 'é'.repeat(Math.ceil(n / 2)), '€'.repeat(Math.ceil(n / 3))]) {
        const bytes = Buffer.byteLength(text)
        const expected = Buffer.concat(wsFrame(Buffer.from(text), { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false }))
        expect(textFrame(text, bytes).equals(expected)).toBe(true)
      }
    }
  })
})

describe('InMemoryBus listeners', () => {
  it('calls one listener, then several in subscription order, then the one left', async () => {
    const bus = new InMemoryBus()
    const calls: string[] = []
    const l1 = (m: BusMessage) => calls.push(`1:${m.data}`)
    const l2 = (m: BusMessage) => calls.push(`2:${m.data}`)
    await bus.subscribe('t', l1)
    await bus.subscribe('t', l1)
    await bus.publish('t', 'a')
    await bus.subscribe('t', l2)
    await bus.publish('t', 'b')
    await bus.unsubscribe('t', l1)
    await bus.publish('t', 'c')
    await bus.unsubscribe('t', l2)
    await bus.publish('t', 'd')
    await bus.subscribe('t', l2)
    await bus.publish('t', 'e')
    expect(calls).toEqual(['1:a', '1:b', '2:b', '2:c', '2:e'])
    await bus.close()
  })
})

describe('takeToken', () => {
  it('takes the same tokens as TokenBucket', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 400 }),
        fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 600 }),
        (capacity, perSecond, gaps) => {
          vi.useFakeTimers({ now: 1_000_000 })
          try {
            const bucket = new TokenBucket(capacity, perSecond)
            let fullAt = 1_000_000
            let now = 1_000_000
            for (const gap of gaps) {
              now += gap
              const taken = bucket.take(now)
              const next = takeToken(fullAt, now, capacity, perSecond)
              expect(next !== -Infinity).toBe(taken)
              if (next !== -Infinity) fullAt = next
            }
          } finally {
            vi.useRealTimers()
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('a connection with one subscription and with several', () => {
  it('subscribes, re-subscribes and unsubscribes across the one-to-many change', async () => {
    const server = await useServer()
    const client = await useRawClient(server.url)
    const patches = () => client.frames.filter((f) => f.type === 'patch').map((f) => `${(f as { topic: string }).topic}=${JSON.stringify((f as { payload: unknown }).payload)}`)
    await client.request({ type: 'subscribe', id: 1, topic: 'a' })
    // Again to the same topic: still one subscription.
    await client.request({ type: 'subscribe', id: 2, topic: 'a' })
    expect(server.realtime.stats().subscriptions).toBe(1)
    await client.request({ type: 'subscribe', id: 3, topic: 'b' })
    await client.request({ type: 'subscribe', id: 4, topic: 'c' })
    expect(server.realtime.stats().subscriptions).toBe(3)
    await client.request({ type: 'unsubscribe', id: 5, topic: 'b' })
    for (const topic of ['a', 'b', 'c']) await server.realtime.publishTopic(topic, topic)
    await waitFor(() => patches().length === 2, 5000, 'patches of a and c')
    expect(patches()).toEqual(['a="a"', 'c="c"'])
    await client.request({ type: 'unsubscribe', id: 6, topic: 'a' })
    await client.request({ type: 'unsubscribe', id: 7, topic: 'c' })
    expect(server.realtime.stats()).toMatchObject({ subscriptions: 0, topics: 0 })
    await client.request({ type: 'subscribe', id: 8, topic: 'b' })
    await server.realtime.publishTopic('b', 2)
    await waitFor(() => patches().length === 3, 5000, 'the patch of b')
    expect(patches()[2]).toBe('b=2')
  })
})
