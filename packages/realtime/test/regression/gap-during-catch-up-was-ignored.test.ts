/**
 * Regression: a bus gap (`onGap`) reported while a subscription was still catching up (between its
 * join and the end of its history replay) was ignored: `resync` returned early for a pending
 * subscription. After a Sentinel failover that is the moment it matters: a client recovering from
 * history read before another instance's failover check replaced the topic's epoch would go live
 * having skipped the messages the new primary lost, and never be told. Now such a subscription
 * resyncs as soon as its replay is done (issue 13, the Sentinel work: `Subscriber.resync`).
 */
import { describe, expect, it } from 'vitest'
import type { Bus, BusListener, HistoryResult } from '../../src/bus/types.js'
import { InMemoryBus } from '../../src/bus/memory.js'
import type { Position } from '../../src/topics.js'
import { useRawClient, useServer } from '../utils/harness.js'
import { waitFor } from '../utils/wait.js'

/** An in-memory bus whose history reads wait for `release()`, and which reports gaps on demand. */
class GatedBus implements Bus {
  private readonly inner = new InMemoryBus()
  private readonly gapListeners = new Set<(topic: string) => void>()
  private gate: Promise<void> | undefined
  private open: (() => void) | undefined
  /** History reads started (held or not). */
  reads = 0

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve))
  }

  release(): void {
    this.gate = undefined
    this.open?.()
  }

  gap(topic: string): void {
    for (const listener of this.gapListeners) listener(topic)
  }

  publish(topic: string, data: string): Promise<Position> {
    return this.inner.publish(topic, data)
  }

  subscribe(topic: string, listener: BusListener): Promise<void> {
    return this.inner.subscribe(topic, listener)
  }

  unsubscribe(topic: string, listener: BusListener): Promise<void> {
    return this.inner.unsubscribe(topic, listener)
  }

  async history(topic: string, since?: Position): Promise<HistoryResult> {
    this.reads++
    if (this.gate) await this.gate
    return this.inner.history(topic, since)
  }

  onGap(listener: (topic: string) => void): () => void {
    this.gapListeners.add(listener)
    return () => this.gapListeners.delete(listener)
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}

describe('a bus gap while a subscription catches up', () => {
  it('makes the subscription resync once its replay is done', async () => {
    const bus = new GatedBus()
    const server = await useServer({ bus })
    const first = await server.realtime.publishTopic('t', { n: 1 })
    await server.realtime.publishTopic('t', { n: 2 })

    const client = await useRawClient(server.url)
    bus.hold()
    client.send({ type: 'subscribe', id: 1, topic: 't', since: first })
    await waitFor(() => bus.reads === 1, 5000, 'the history read to start')
    // The gap comes while the history read is in flight: the subscription is still pending.
    bus.gap('t')
    bus.release()

    expect(await client.nextOf('subscribed', 1)).toMatchObject({ recovered: true })
    expect(await client.nextOf('patch')).toMatchObject({ payload: { n: 2 } })
    // Unasked (no id), not recovered: the client resyncs.
    const resync = await client.next((frame) => frame.type === 'subscribed' && (frame as { id?: unknown }).id === undefined)
    expect(resync).toMatchObject({ type: 'subscribed', topic: 't', recovered: false })
  })
})
