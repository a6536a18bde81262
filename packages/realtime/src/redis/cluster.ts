import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis'
import { ChannelBook, type ChannelEvents, type TopicChannels } from './channels.js'
import { REDIS_BUS_CONNECTION_OPTIONS } from './connection.js'
import { channelOf, topicOfChannel } from './keys.js'
import { SLOTS, keySlot } from './slots.js'

/** How `RedisBus` reaches a Redis Cluster (the `cluster` option). */
export interface RedisBusClusterOptions {
  /** Seed nodes: some (or all) of the cluster's nodes, e.g. `[{ host: 'redis-1', port: 6379 }]`. */
  nodes: ClusterNode[]
  /**
   * ioredis `Cluster` options, merged over the bus's defaults (`enableOfflineQueue: false`, and
   * `REDIS_BUS_CONNECTION_OPTIONS` as `redisOptions`). `redisOptions` (password, TLS…) also apply to
   * the bus's sharded subscriber connections, one per primary.
   */
  options?: ClusterOptions
  /**
   * How often the bus compares the cluster's slot map (`CLUSTER SLOTS`) with where its topics are
   * subscribed, in ms, while it has subscribed topics: the bound on noticing a moved slot that no
   * connection event revealed. Default `1000`.
   */
  checkMs?: number
}

/** The bus's command connection to a Cluster: scripts are routed by their first key's slot. */
export function createClusterConnection(cluster: RedisBusClusterOptions): Cluster {
  const options = cluster.options ?? {}
  return new Cluster(cluster.nodes, {
    enableOfflineQueue: false,
    ...options,
    redisOptions: { ...REDIS_BUS_CONNECTION_OPTIONS, connectionName: 'realtime-bus-pub', ...options.redisOptions },
  })
}

interface Link {
  key: string
  redis: Redis
  /** Topics subscribed on this connection. */
  topics: Set<string>
  /** Topics whose `SSUBSCRIBE` was sent on it and not yet answered: their messages count already. */
  pending: Set<string>
  ready: Promise<void>
  /** Rejects when the connection closes: a command ioredis dropped (MOVED) never settles by itself. */
  closed: Promise<never>
}

/** The longest wait before placing lost topics again: each attempt is one `CLUSTER SLOTS` and a connect. */
const MAX_RETRY_MS = 200

function timeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/**
 * The topic channels of a bus on a Redis Cluster: each topic is `SSUBSCRIBE`d on a connection of
 * its own to the primary that serves its slot (one connection per primary), so a node carries
 * only the messages of its own shard's topics, to the instances that want them.
 *
 * Where each slot lives comes from `CLUSTER SLOTS` (through the command connection), read again
 * whenever a subscriber connection is lost, a `SSUBSCRIBE` is answered `MOVED`, ioredis reports an
 * unexpected reply (Redis pushes a `sunsubscribe` when a slot leaves a node), and every `checkMs`.
 * When a slot that a connection carries has moved (resharding, failover) or the connection is lost,
 * the connection is dropped, its topics are reported lost, subscribed on the slots' current owners,
 * then reported restored: the bus fills what they missed from the streams, or reports the gap.
 */
export class ShardedChannels implements TopicChannels {
  private readonly book = new ChannelBook()
  /** The primary (`host:port`) serving each slot, as last read. */
  private owners: (string | undefined)[] = []
  private stale = true
  private readonly links = new Map<string, Link>()
  private readonly placed = new Map<string, Link>()
  private syncing = false
  private again = false
  private failures = 0
  private retry: ReturnType<typeof setTimeout> | undefined
  private readonly check: ReturnType<typeof setInterval>
  private closed = false

  constructor(
    private readonly pub: Cluster,
    private readonly prefix: string,
    private readonly events: ChannelEvents,
    private readonly redisOptions: RedisOptions = {},
    checkMs = 1000,
  ) {
    this.check = setInterval(() => {
      if (this.book.wanted.size === 0) return
      this.stale = true
      this.sync()
    }, Math.max(50, checkMs))
    this.check.unref?.()
  }

  get status(): 'ready' | 'down' {
    return this.book.lost.size === 0 ? 'ready' : 'down'
  }

  subscribe(topic: string): Promise<void> {
    this.book.wanted.add(topic)
    if (this.placed.has(topic)) return Promise.resolve()
    const wait = this.book.waitFor(topic)
    this.sync()
    return wait
  }

  async unsubscribe(topic: string): Promise<void> {
    this.book.forget(topic)
    const link = this.placed.get(topic)
    if (!link) return
    this.placed.delete(topic)
    link.topics.delete(topic)
    if (link.redis.status === 'ready') await link.redis.sunsubscribe(channelOf(this.prefix, topic)).catch(() => {})
  }

  async flush(topic: string): Promise<void> {
    const link = this.placed.get(topic)
    if (!link || link.redis.status !== 'ready') return
    await link.redis.ping()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.check)
    clearTimeout(this.retry)
    const links = [...this.links.values()]
    this.links.clear()
    this.placed.clear()
    await Promise.all(links.map((link) => (link.redis.status === 'ready' ? link.redis.quit().catch(() => link.redis.disconnect()) : link.redis.disconnect())))
  }

  /** Runs `place` now, or once more after the run in progress. */
  private sync(): void {
    if (this.closed) return
    if (this.syncing) {
      this.again = true
      return
    }
    this.syncing = true
    this.place().then(
      (complete) => {
        if (complete) this.failures = 0
        else this.retryLater()
      },
      () => this.retryLater(),
    ).finally(() => {
      this.syncing = false
      if (this.again) {
        this.again = false
        this.sync()
      }
    })
  }

  private retryLater(): void {
    if (this.closed || this.retry) return
    const delay = Math.min(MAX_RETRY_MS, 25 * 2 ** Math.min(this.failures++, 4))
    this.retry = setTimeout(() => {
      this.retry = undefined
      this.sync()
    }, delay)
    this.retry.unref?.()
  }

  /**
   * Brings the subscriptions in line with the slot map: drops connections that carry a moved slot,
   * subscribes every wanted topic that is not, on its slot's primary. Resolves `false` when some
   * could not be placed (to try again after a backoff).
   */
  private async place(): Promise<boolean> {
    if (this.stale) await this.readSlots()
    for (const link of new Set(this.placed.values())) {
      for (const topic of link.topics) {
        if (this.ownerOf(topic) !== link.key) {
          // Its queue may hold a reply that ioredis matched to the wrong command: start afresh.
          link.redis.disconnect()
          this.drop(link)
          break
        }
      }
    }
    const groups = new Map<string, Map<number, string[]>>()
    let complete = true
    for (const topic of this.book.wanted) {
      if (this.placed.has(topic)) continue
      const owner = this.ownerOf(topic)
      if (!owner) {
        complete = false
        continue
      }
      const slots = groups.get(owner) ?? new Map<number, string[]>()
      groups.set(owner, slots)
      const slot = keySlot(channelOf(this.prefix, topic))
      const group = slots.get(slot)
      if (group) group.push(topic)
      else slots.set(slot, [topic])
    }
    const restored: string[] = []
    const outcomes = await Promise.allSettled(
      [...groups].map(async ([owner, slots]) => {
        const link = this.link(owner)
        await timeout(link.ready, 2000, `connecting to ${owner}`)
        // A multi-channel SSUBSCRIBE must stay within one slot.
        await Promise.all(
          [...slots.values()].map(async (topics) => {
            for (const topic of topics) link.pending.add(topic)
            try {
              // MOVED leaves ioredis' promise unsettled: 'moved' closes the link, which ends the wait.
              const subscribing = link.redis.ssubscribe(...topics.map((t) => channelOf(this.prefix, t)))
              subscribing.catch(() => {})
              await timeout(Promise.race([subscribing, link.closed]), 2000, `SSUBSCRIBE on ${owner}`)
            } finally {
              for (const topic of topics) link.pending.delete(topic)
            }
            if (this.closed || this.links.get(owner) !== link) throw new Error(`connection to ${owner} lost`)
            for (const topic of topics) {
              if (!this.book.wanted.has(topic)) {
                link.redis.sunsubscribe(channelOf(this.prefix, topic)).catch(() => {})
                continue
              }
              this.placed.set(topic, link)
              link.topics.add(topic)
              if (this.book.subscribed(topic)) restored.push(topic)
            }
          }),
        )
      }),
    )
    if (restored.length > 0) this.events.restored(restored)
    this.events.changed()
    return complete && outcomes.every((o) => o.status === 'fulfilled')
  }

  private ownerOf(topic: string): string | undefined {
    return this.owners[keySlot(channelOf(this.prefix, topic))]
  }

  private async readSlots(): Promise<void> {
    const reply = (await timeout(this.pub.cluster('SLOTS') as Promise<unknown>, 2000, 'CLUSTER SLOTS')) as [number, number, [string, number]][]
    const owners: (string | undefined)[] = new Array(SLOTS)
    for (const [start, end, primary] of reply) {
      const key = `${primary[0] || '127.0.0.1'}:${primary[1]}`
      for (let slot = start; slot <= end; slot++) owners[slot] = key
    }
    this.owners = owners
    this.stale = false
  }

  /** The subscriber connection to the primary `key`, opened on first use. */
  private link(key: string): Link {
    const existing = this.links.get(key)
    if (existing) return existing
    const colon = key.lastIndexOf(':')
    const redis = new Redis({
      ...REDIS_BUS_CONNECTION_OPTIONS,
      ...this.redisOptions,
      host: key.slice(0, colon),
      port: Number(key.slice(colon + 1)),
      connectionName: 'realtime-bus-ssub',
      lazyConnect: true,
      autoResubscribe: false,
      // This class reconnects (to whichever node then serves the slots), not ioredis.
      retryStrategy: () => null,
    })
    let closed: (error: Error) => void = () => {}
    const link: Link = {
      key,
      redis,
      topics: new Set(),
      pending: new Set(),
      ready: redis.connect(),
      closed: new Promise<never>((_, reject) => (closed = reject)),
    }
    link.ready.catch(() => this.drop(link))
    link.closed.catch(() => {})
    this.links.set(key, link)
    redis.on('smessage', (channel: string, text: string) => {
      const topic = topicOfChannel(this.prefix, channel)
      if (topic !== undefined && (link.topics.has(topic) || link.pending.has(topic))) this.events.message(topic, text)
    })
    redis.on('close', () => {
      closed(new Error(`connection to ${key} closed`))
      this.drop(link)
    })
    redis.on('error', (error: Error) => {
      // A `sunsubscribe` pushed by Redis (its slot left the node) that ioredis did not expect.
      if (error.message.includes('Command queue state error')) redis.disconnect()
    })
    redis.on('moved', () => redis.disconnect())
    return link
  }

  /** Forgets a connection that was lost or dropped: its topics are lost until placed again. */
  private drop(link: Link): void {
    if (this.links.get(link.key) !== link) return
    this.links.delete(link.key)
    this.stale = true
    const lost = [...link.topics]
    link.topics.clear()
    for (const topic of lost) {
      this.placed.delete(topic)
      if (this.book.wanted.has(topic)) this.book.lost.add(topic)
    }
    if (this.closed) return
    if (lost.length > 0) this.events.lost(lost)
    this.events.changed()
    this.sync()
  }
}
