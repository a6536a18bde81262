import type { Redis } from 'ioredis'
import { channelOf, topicOfChannel } from './keys.js'

/** What a `TopicChannels` tells the bus. */
export interface ChannelEvents {
  /** A message on a topic's channel. */
  message(topic: string, text: string): void
  /**
   * These topics' subscriptions were dropped (the connection carrying them was lost, or their slot
   * moved to another shard): messages published from now until `restored` do not arrive live.
   */
  lost(topics: readonly string[]): void
  /** These lost topics are subscribed again: what was published meanwhile must come from the streams. */
  restored(topics: readonly string[]): void
  /** Whether every wanted topic is subscribed may have changed (see `up`). */
  changed(): void
}

/**
 * The sharded pub/sub subscriptions of a bus (`SSUBSCRIBE` per topic): which topics it wants, and
 * keeping them subscribed through reconnects (and, on a Cluster, slot moves and failovers).
 */
export interface TopicChannels {
  /**
   * Wants the topic's channel; resolves once it is subscribed (waiting for a connection if needed:
   * the caller bounds the wait, and calls `unsubscribe` if it gives up).
   */
  subscribe(topic: string): Promise<void>
  /** No longer wants the topic's channel. */
  unsubscribe(topic: string): Promise<void>
  /** Resolves once every message already sent on the topic's channel has been handed to `message`. */
  flush(topic: string): Promise<void>
  /** `'ready'` while every wanted topic is subscribed and the connections are up, else `'down'`. */
  readonly status: 'ready' | 'down'
  /** Stops following topics; closes the connections it opened (unsubscribes on supplied ones). */
  close(): Promise<void>
}

/**
 * The wanted, subscribed and lost topics of a `TopicChannels`, and the callers waiting for a
 * subscription: what the single-Redis and the Cluster implementations share.
 */
export class ChannelBook {
  readonly wanted = new Set<string>()
  /** Lost topics waiting to be subscribed again (they then need a gap fill). */
  readonly lost = new Set<string>()
  private readonly waiters = new Map<string, (() => void)[]>()

  /** A promise settled when `topic` is next marked subscribed. */
  waitFor(topic: string): Promise<void> {
    return new Promise((resolve) => {
      const list = this.waiters.get(topic)
      if (list) list.push(resolve)
      else this.waiters.set(topic, [resolve])
    })
  }

  /** Settles the waiters of `topic`; returns whether it had been lost (and so needs a gap fill). */
  subscribed(topic: string): boolean {
    const list = this.waiters.get(topic)
    if (list) {
      this.waiters.delete(topic)
      for (const resolve of list) resolve()
    }
    return this.lost.delete(topic)
  }

  forget(topic: string): void {
    this.wanted.delete(topic)
    this.lost.delete(topic)
    this.waiters.delete(topic)
  }
}

/**
 * The topic channels of a bus on one Redis (or a Sentinel-managed primary): every topic on one
 * subscriber connection, which also carries the bus's classic channels (flow-control probes and
 * answers), so that a probe reaches an instance after every message published before it. When the
 * connection is lost, every topic it carried is lost; on the next `'ready'` they are subscribed
 * again and reported restored.
 */
export class SingleChannels implements TopicChannels {
  private readonly book = new ChannelBook()
  private readonly current = new Set<string>()
  private closed = false
  private readonly detach: () => void

  constructor(
    private readonly sub: Redis,
    private readonly prefix: string,
    private readonly events: ChannelEvents,
  ) {
    const onMessage = (channel: string, text: string) => {
      const topic = topicOfChannel(prefix, channel)
      if (topic !== undefined) events.message(topic, text)
    }
    const onClose = () => {
      const lost = [...this.current]
      this.current.clear()
      for (const topic of lost) this.book.lost.add(topic)
      if (lost.length > 0) events.lost(lost)
      events.changed()
    }
    const onReady = () => {
      const pending = [...this.book.wanted].filter((topic) => !this.current.has(topic))
      if (pending.length > 0) void this.place(pending)
      events.changed()
    }
    sub.on('smessage', onMessage)
    sub.on('close', onClose)
    sub.on('ready', onReady)
    this.detach = () => {
      sub.off('smessage', onMessage)
      sub.off('close', onClose)
      sub.off('ready', onReady)
    }
  }

  get status(): 'ready' | 'down' {
    return this.sub.status === 'ready' ? 'ready' : 'down'
  }

  subscribe(topic: string): Promise<void> {
    this.book.wanted.add(topic)
    if (this.current.has(topic)) return Promise.resolve()
    const wait = this.book.waitFor(topic)
    if (this.sub.status === 'ready') void this.place([topic])
    return wait
  }

  async unsubscribe(topic: string): Promise<void> {
    this.book.forget(topic)
    if (!this.current.delete(topic)) return
    // A lost connection has dropped its channels already.
    if (this.sub.status === 'ready') await this.sub.sunsubscribe(channelOf(this.prefix, topic)).catch(() => {})
  }

  async flush(topic: string): Promise<void> {
    if (!this.current.has(topic) || this.sub.status !== 'ready') return
    await this.sub.ping()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.detach()
    const channels = [...this.current].map((topic) => channelOf(this.prefix, topic))
    this.current.clear()
    // One channel per call: a multi-channel SSUBSCRIBE/SUNSUBSCRIBE must stay in one slot.
    if (this.sub.status === 'ready') await Promise.all(channels.map((channel) => this.sub.sunsubscribe(channel).catch(() => {})))
  }

  /** Subscribes `topics` (one `SSUBSCRIBE` each, pipelined); reports the lost ones restored. */
  private async place(topics: readonly string[]): Promise<void> {
    const restored: string[] = []
    await Promise.all(
      topics.map(async (topic) => {
        try {
          await this.sub.ssubscribe(channelOf(this.prefix, topic))
        } catch {
          // The connection went down again: its next 'ready' places the topic.
          return
        }
        if (this.closed) return
        if (!this.book.wanted.has(topic)) {
          // Given up while it was being subscribed.
          await this.sub.sunsubscribe(channelOf(this.prefix, topic)).catch(() => {})
          return
        }
        this.current.add(topic)
        if (this.book.subscribed(topic)) restored.push(topic)
      }),
    )
    if (restored.length > 0) this.events.restored(restored)
  }
}
