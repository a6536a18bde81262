import { beforeEach, describe, expect, it } from 'vitest'
import { compareOffsets, type Bus, type BusMessage, type HistoryOptions } from '../src/bus/types.js'
import { isRealtimeError } from '../src/errors.js'
import type { Position } from '../src/topics.js'
import { closeAfterTest } from './utils/harness.js'
import { sleep, waitFor } from './utils/wait.js'

/** How the contract suite makes and breaks buses of one kind. */
export interface BusFixture {
  /** A new bus; buses from one fixture share their store where the kind of bus allows it. */
  create(options?: { history?: HistoryOptions }): Bus | Promise<Bus>
  /**
   * The store loses its history, as after a restart of the process (in-memory) or of a Redis without
   * persistence. Returns the bus to go on with (a new one where the old one cannot survive this).
   */
  loseHistory(bus: Bus, options?: { history?: HistoryOptions }): Promise<Bus>
  /**
   * Another publisher on the same store as `bus` (another instance, for a shared bus; the same bus
   * where there is only one process). The caller closes what it gets unless it is `bus` itself.
   */
  peer(bus: Bus): Bus | Promise<Bus>
  /** Releases what the fixture holds beyond the buses (keys, connections). */
  cleanup?(): Promise<void>
  /**
   * Whether one `publishMany` reaches all its topics in one step (default true). A Redis Cluster
   * runs one script per slot: each topic keeps its order, but two topics of different slots may see
   * concurrent calls in different orders.
   */
  atomicAcrossTopics?: boolean
}

function collect(): { messages: BusMessage[]; listener: (m: BusMessage) => void } {
  const messages: BusMessage[] = []
  return { messages, listener: (m) => messages.push(m) }
}

/**
 * The behaviour every `Bus` must have, run against each bus (`bus.memory.test.ts`,
 * `bus.redis.test.ts`): what the server relies on for delivery and recovery.
 */
export function busContractSuite(name: string, fixture: BusFixture): void {
  describe(`Bus contract: ${name}`, () => {
    let topicCounter = 0
    const topic = () => `contract:${++topicCounter}`

    async function bus(options?: { history?: HistoryOptions }): Promise<Bus> {
      const created = await fixture.create(options)
      closeAfterTest(() => created.close())
      return created
    }

    // First in, so last out: after the test's buses closed.
    beforeEach(() => {
      if (fixture.cleanup) closeAfterTest(() => fixture.cleanup!())
    })

    describe('#publish and #subscribe', () => {
      it('delivers each message to every listener, with the position publish resolved', async () => {
        const b = await bus()
        const t = topic()
        const one = collect()
        const two = collect()
        await b.subscribe(t, one.listener)
        await b.subscribe(t, two.listener)
        const positions: Position[] = []
        for (const data of ['{"n":1}', '{"n":2}', '{"n":3}']) positions.push(await b.publish(t, data))
        await waitFor(() => one.messages.length === 3 && two.messages.length === 3, 5000, '3 messages')
        expect(one.messages.map((m) => m.data)).toEqual(['{"n":1}', '{"n":2}', '{"n":3}'])
        expect(one.messages.map((m) => ({ epoch: m.epoch, offset: m.offset }))).toEqual(positions)
        expect(two.messages).toEqual(one.messages)
        expect(one.messages.every((m) => m.topic === t)).toBe(true)
        await sleep(30)
        expect(one.messages).toHaveLength(3)
      })

      it('keeps topics apart', async () => {
        const b = await bus()
        const [a, c] = [topic(), topic()]
        const onA = collect()
        await b.subscribe(a, onA.listener)
        await b.publish(c, '"other"')
        await b.publish(a, '"mine"')
        await waitFor(() => onA.messages.length === 1, 5000, '1 message')
        await sleep(30)
        expect(onA.messages.map((m) => m.data)).toEqual(['"mine"'])
      })

      it('delivers concurrent publishes of one topic once each, in offset order', async () => {
        const b = await bus({ history: { size: 500 } })
        const t = topic()
        const got = collect()
        await b.subscribe(t, got.listener)
        const positions = await Promise.all(Array.from({ length: 300 }, (_, i) => b.publish(t, String(i))))
        await waitFor(() => got.messages.length >= 300, 5000, '300 messages')
        await sleep(30)
        expect(got.messages).toHaveLength(300)
        for (let i = 1; i < got.messages.length; i++) {
          expect(compareOffsets(got.messages[i - 1]!.offset, got.messages[i]!.offset)).toBeLessThan(0)
        }
        expect(new Set(got.messages.map((m) => m.data)).size).toBe(300)
        const sorted = [...positions].sort((x, y) => compareOffsets(x.offset, y.offset))
        expect(got.messages.map((m) => m.offset)).toEqual(sorted.map((p) => p.offset))
      })
    })

    describe('#publishMany', () => {
      it('publishes one payload to each topic, with each topic\'s own position, in the order given', async () => {
        const b = await bus()
        if (!b.publishMany) return expect.unreachable('every bus of the library has publishMany')
        const [t1, t2] = [topic(), topic()]
        const one = collect()
        const two = collect()
        await b.subscribe(t1, one.listener)
        await b.subscribe(t2, two.listener)
        const before = await b.publish(t2, '"first"')
        const positions = await b.publishMany([t1, t2], '{"n":1}')
        expect(positions).toHaveLength(2)
        await waitFor(() => one.messages.length === 1 && two.messages.length === 2, 5000, 'both topics')
        expect(one.messages[0]).toMatchObject({ topic: t1, data: '{"n":1}', offset: positions[0]!.offset, epoch: positions[0]!.epoch })
        expect(two.messages[1]).toMatchObject({ topic: t2, data: '{"n":1}', offset: positions[1]!.offset, epoch: positions[1]!.epoch })
        expect(compareOffsets(before.offset, positions[1]!.offset)).toBeLessThan(0)
        const history = await b.history(t2, before)
        expect(history.recovered).toBe(true)
        expect(history.messages.map((m) => m.data)).toEqual(['{"n":1}'])
      })

      it('publishes a message with an idempotency key once, and answers a repeat with its positions', async () => {
        const b = await bus()
        const peer = await fixture.peer(b)
        if (peer !== b) closeAfterTest(() => peer.close())
        const [t1, t2] = [topic(), topic()]
        const one = collect()
        await b.subscribe(t1, one.listener)
        const start = (await b.history(t2)).position
        const id = `row-${t1}`
        const first = await b.publishMany!([t1, t2], '"once"', { id })
        // A retry after a crash: from this bus or another instance, concurrently or later.
        const again = await Promise.all([b.publishMany!([t1, t2], '"once"', { id }), peer.publishMany!([t1, t2], '"once"', { id })])
        expect(again).toEqual([first, first])
        await b.publishMany!([t1, t2], '"next"', { id: `${id}-2` })
        await waitFor(() => one.messages.length >= 2, 5000, 'two messages')
        await sleep(30)
        expect(one.messages.map((m) => m.data)).toEqual(['"once"', '"next"'])
        const history = await b.history(t2, start)
        expect(history.messages.map((m) => m.data)).toEqual(['"once"', '"next"'])
      })

      it('keeps each topic in order under concurrent publishers of several topics', async () => {
        const b = await bus({ history: { size: 500 } })
        const peer = await fixture.peer(b)
        if (peer !== b) closeAfterTest(() => peer.close())
        const [t1, t2] = [topic(), topic()]
        const one = collect()
        const two = collect()
        await b.subscribe(t1, one.listener)
        await b.subscribe(t2, two.listener)
        const calls = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? b : peer).publishMany!([t1, t2], String(i)))
        const positions = await Promise.all(calls)
        await waitFor(() => one.messages.length >= 200 && two.messages.length >= 200, 5000, '400 messages')
        await sleep(30)
        for (const [index, got] of [one, two].entries()) {
          expect(got.messages).toHaveLength(200)
          for (let i = 1; i < got.messages.length; i++) {
            expect(compareOffsets(got.messages[i - 1]!.offset, got.messages[i]!.offset)).toBeLessThan(0)
          }
          const sorted = positions.map((p) => p[index]!.offset).sort(compareOffsets)
          expect(got.messages.map((m) => m.offset)).toEqual(sorted)
        }
        // One call appends to both topics in the same step: the two topics saw the calls in one order.
        if (fixture.atomicAcrossTopics !== false) expect(one.messages.map((m) => m.data)).toEqual(two.messages.map((m) => m.data))
      })
    })

    describe('#unsubscribe', () => {
      it('stops delivery to that listener only, and to none once all left', async () => {
        const b = await bus()
        const t = topic()
        const stays = collect()
        const leaves = collect()
        await b.subscribe(t, stays.listener)
        await b.subscribe(t, leaves.listener)
        await b.unsubscribe(t, leaves.listener)
        await b.publish(t, '1')
        await waitFor(() => stays.messages.length === 1, 5000, '1 message')
        await b.unsubscribe(t, stays.listener)
        await b.publish(t, '2')
        await sleep(50)
        expect(stays.messages.map((m) => m.data)).toEqual(['1'])
        expect(leaves.messages).toEqual([])
        // Subscribing again after the last listener left works as the first time.
        await b.subscribe(t, leaves.listener)
        await b.publish(t, '3')
        await waitFor(() => leaves.messages.length === 1, 5000, 'message 3')
        expect(leaves.messages[0]!.data).toBe('3')
      })

      it('ignores a listener that was never subscribed', async () => {
        const b = await bus()
        await expect(b.unsubscribe(topic(), () => {})).resolves.toBeUndefined()
      })
    })

    describe('#history', () => {
      it('answers only the current position when no `since` is given', async () => {
        const b = await bus()
        const t = topic()
        const empty = await b.history(t)
        expect(empty.messages).toEqual([])
        expect(empty.recovered).toBe(false)
        await b.publish(t, '1')
        const last = await b.publish(t, '2')
        const result = await b.history(t)
        expect(result).toEqual({ messages: [], recovered: false, position: last })
      })

      it('recovers every message after `since`, in order', async () => {
        const b = await bus()
        const t = topic()
        const positions: Position[] = []
        for (let i = 1; i <= 5; i++) positions.push(await b.publish(t, String(i)))
        const result = await b.history(t, positions[1])
        expect(result.recovered).toBe(true)
        expect(result.messages.map((m) => m.data)).toEqual(['3', '4', '5'])
        expect(result.messages.map((m) => m.offset)).toEqual(positions.slice(2).map((p) => p.offset))
        expect(result.position).toEqual(positions[4])
      })

      it('recovers nothing, successfully, from the latest position', async () => {
        const b = await bus()
        const t = topic()
        const start = await b.history(t)
        expect(await b.history(t, start.position)).toEqual({ messages: [], recovered: true, position: start.position })
        const last = await b.publish(t, '1')
        expect(await b.history(t, last)).toEqual({ messages: [], recovered: true, position: last })
        const fromStart = await b.history(t, start.position)
        expect(fromStart.recovered).toBe(true)
        expect(fromStart.messages.map((m) => m.data)).toEqual(['1'])
      })

      it('recovers up to `history.size` missed messages, and refuses when more were trimmed', async () => {
        const size = 5
        const b = await bus({ history: { size } })
        const t = topic()
        const positions: Position[] = []
        // Well past Redis' approximate trimming granularity (100 entries per stream node).
        for (let i = 1; i <= 400; i++) positions.push(await b.publish(t, String(i)))
        const fromOld = await b.history(t, positions[0])
        expect(fromOld).toEqual({ messages: [], recovered: false, position: positions[399] })
        const fromRecent = await b.history(t, positions[399 - size])
        expect(fromRecent.recovered).toBe(true)
        expect(fromRecent.messages.map((m) => m.data)).toEqual(['396', '397', '398', '399', '400'])
      })

      it('refuses a `since` of another epoch, an unknown offset or one past the end', async () => {
        const b = await bus()
        const t = topic()
        const last = await b.publish(t, '1')
        for (const since of [
          { epoch: 'not-this-epoch', offset: last.offset },
          { epoch: last.epoch, offset: 'garbage' },
          { epoch: last.epoch, offset: '99999999999999-0' },
        ]) {
          expect(await b.history(t, since)).toEqual({ messages: [], recovered: false, position: last })
        }
      })

      it('refuses messages older than `history.ttlMs`', async () => {
        const b = await bus({ history: { ttlMs: 150 } })
        const t = topic()
        const first = await b.publish(t, '1')
        await b.publish(t, '2')
        await sleep(300)
        const result = await b.history(t, first)
        expect(result.recovered).toBe(false)
        expect(result.messages).toEqual([])
      })
    })

    describe('epoch', () => {
      it('changes when the history is lost, and recovery from before is refused', async () => {
        let b = await bus()
        const t = topic()
        const before = await b.publish(t, '1')
        b = await fixture.loseHistory(b)
        // (A bus closes once, however often it is asked to.)
        closeAfterTest(() => b.close())
        const result = await b.history(t, before)
        expect(result.recovered).toBe(false)
        expect(result.messages).toEqual([])
        expect(result.position.epoch).not.toBe(before.epoch)
        const after = await b.publish(t, '2')
        expect(after.epoch).toBe(result.position.epoch)
        expect((await b.history(t, result.position)).messages.map((m) => m.data)).toEqual(['2'])
      })

      it('is the same for every message of an unbroken history', async () => {
        const b = await bus()
        const t = topic()
        const epochs = new Set<string>()
        for (let i = 0; i < 10; i++) epochs.add((await b.publish(t, String(i))).epoch)
        epochs.add((await b.history(t)).position.epoch)
        expect(epochs.size).toBe(1)
      })
    })

    describe('#close', () => {
      it('rejects publish, subscribe and history with CLOSED afterwards', async () => {
        const b = await bus()
        const t = topic()
        const got = collect()
        await b.subscribe(t, got.listener)
        await b.close()
        for (const call of [() => b.publish(t, '1'), () => b.subscribe(t, () => {}), () => b.history(t)]) {
          const error = await call().then(
            () => undefined,
            (e: unknown) => e,
          )
          expect(isRealtimeError(error) && error.code).toBe('CLOSED')
        }
        await expect(b.close()).resolves.toBeUndefined()
        expect(got.messages).toEqual([])
      })
    })

    describe('subscribe, buffer, read history, merge', () => {
      it('has handed every message up to the position history reports to earlier listeners', async () => {
        const b = await bus({ history: { size: 1000 } })
        const publisher = await fixture.peer(b)
        if (publisher !== b) closeAfterTest(() => publisher.close())
        const t = topic()
        const start = (await b.history(t)).position
        const got = collect()
        await b.subscribe(t, got.listener)
        let stop = false
        const publishing = (async () => {
          for (let n = 1; !stop && n <= 800; n++) await publisher.publish(t, String(n))
        })()
        for (let round = 0; round < 20; round++) {
          const history = await b.history(t, start)
          const delivered = new Set(got.messages.map((m) => m.offset))
          // Everything history holds was published after the listener joined: it was delivered.
          expect(history.messages.filter((m) => !delivered.has(m.offset))).toEqual([])
          await sleep(2)
        }
        stop = true
        await publishing
      })

      it('gives every joiner the full sequence, gap-free and duplicate-free, while publishing at full speed', async () => {
        const total = 1500
        const publisherBus = await bus({ history: { size: total + 10 } })
        const joinerBus = publisherBus
        const t = topic()
        const start = (await joinerBus.history(t)).position
        const sequences: number[][] = []
        const joins: Promise<void>[] = []

        // Each joiner subscribes first and buffers, then reads history from the start position,
        // then flushes history followed by the buffered messages it did not already get.
        const join = async () => {
          const seen: number[] = []
          let last: Position | undefined
          let buffer: BusMessage[] | undefined = []
          const accept = (m: BusMessage) => {
            if (last && m.epoch === last.epoch && compareOffsets(m.offset, last.offset) <= 0) return
            last = { epoch: m.epoch, offset: m.offset }
            seen.push(Number(m.data))
          }
          await joinerBus.subscribe(t, (m) => (buffer ? buffer.push(m) : accept(m)))
          const history = await joinerBus.history(t, start)
          expect(history.recovered).toBe(true)
          for (const m of history.messages) accept(m)
          const buffered = buffer
          buffer = undefined
          for (const m of buffered) accept(m)
          sequences.push(seen)
        }

        let published = 0
        const publishing = (async () => {
          while (published < total) {
            const batch = Array.from({ length: Math.min(20, total - published) }, (_, i) => published + i + 1)
            published += batch.length
            await Promise.all(batch.map((n) => publisherBus.publish(t, String(n))))
            if (published % 300 === 0) joins.push(join())
          }
        })()
        joins.push(join())
        await publishing
        await Promise.all(joins)
        await waitFor(() => sequences.every((s) => s.length >= total), 10_000, 'every joiner to see the last message')
        expect(sequences.length).toBeGreaterThanOrEqual(5)
        // Concurrent publishes may be ordered either way within a batch; what counts is that every
        // joiner sees exactly the bus's order: the same one each, every number once.
        const order = sequences[0]!
        expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1))
        for (const seen of sequences) expect(seen).toEqual(order)
      })
    })
  })
}
