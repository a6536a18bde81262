import { randomBytes } from 'node:crypto'
import { Redis, type Cluster } from 'ioredis'
import { catchUp, isRepeat } from '../bus/catchup.js'
import {
  DEFAULT_HISTORY_SIZE,
  DEFAULT_HISTORY_TTL_MS,
  type Bus,
  type BusListener,
  type BusMessage,
  type BusPresence,
  type BusStatus,
  type HistoryResult,
  type LoadReport,
  type PublishOptions,
} from '../bus/types.js'
import { RealtimeError } from '../errors.js'
import type { Position } from '../topics.js'
import { SingleChannels, type ChannelEvents, type TopicChannels } from './channels.js'
import { ShardedChannels, createClusterConnection } from './cluster.js'
import { Deadlines, PairStatus, REDIS_BUS_CONNECTION_OPTIONS, quit, type CommandConnection } from './connection.js'
import { FailoverCheck, parseFenceNotice, type GapReason } from './failover.js'
import type { FlowControlState, PublishFlow } from './flow.js'
import { historyResult, parseChannelMessage, streamIdOf, type HistoryReply } from './history.js'
import { assertPrefix, metaKey, streamKey } from './keys.js'
import { LoadChannel, loadChannel } from './load.js'
import type { RedisBusOptions } from './options.js'
import { DEFAULT_PRESENCE_TTL_MS, RedisPresence } from './presence.js'
import { ProbeChannels } from './probes.js'
import { ReplicaAck } from './replicas.js'
import { HISTORY_SCRIPT, PUBLISH_SCRIPT, publishArguments } from './scripts.js'
import { sentinelConnectionOptions, usesSentinel } from './sentinel.js'
import { groupBySlot } from './slots.js'
import { defineStateCommands, readRetained, retain } from './state.js'

export type { RedisBusOptions } from './options.js'
export type { RedisBusClusterOptions } from './cluster.js'

interface TopicSubscription {
  listeners: Set<BusListener>
  /** Whether the channel is subscribed in Redis (as far as the bus has asked). */
  subscribed: boolean
  /** Serializes SSUBSCRIBE/SUNSUBSCRIBE of this topic's channel. */
  queue: Promise<void>
  /** Position of the last message delivered, to fill the gap after a reconnect and drop repeats. */
  last?: Position
  /** The topic's position when its channel was subscribed: where a gap fill starts if nothing came since. */
  base?: Position
  /** While set, live messages are held here until the gap after a lost subscription is filled. */
  held?: BusMessage[]
  /** How many times the subscription was lost: a fill that sees it change keeps holding. */
  losses: number
  /** Settles when the gap fills in progress are done. */
  filling?: Promise<void>
  /** The epoch the topic was moved to when its listeners were last told to resync (one resync per new epoch). */
  toldEpoch?: string
}

type SubscriptionListener = (topic: string, reason: GapReason) => void

function randomEpoch(): string {
  return randomBytes(6).toString('base64url') + Date.now().toString(36)
}

/**
 * A bus for many server instances sharing one Redis or one Redis Cluster. Each publish is one Lua
 * script that appends to the topic's stream (approximately capped, expiring after the history age)
 * and SPUBLISHes the message with its offset (the stream id) on the topic's sharded channel. An
 * instance SSUBSCRIBEs a topic's channel only while it has a local listener to it, so its Redis
 * traffic follows its clients' interest; on a Cluster a topic's messages stay within its shard.
 *
 * While Redis is down, `publish` rejects with `BUS_UNAVAILABLE` after at most `publishTimeoutMs`;
 * when a subscription is lost (Redis restarted, a connection dropped, a slot moved or its primary
 * failed over), the bus subscribes the topic again and fills from its stream any message its
 * listeners missed meanwhile, or reports the gap (`onGap`). History lost with Redis shows up as a
 * new epoch.
 */
export class RedisBus implements Bus {
  private readonly pub: CommandConnection
  /** Single Redis only: the subscriber connection (topics, and the flow-control channels). */
  private readonly sub: Redis | undefined
  private readonly channelSet: TopicChannels
  /** On a Cluster: a multi-topic publish runs one script per slot. */
  private readonly sharded: boolean
  private readonly ownsConnections: boolean
  private readonly prefix: string
  private readonly size: number
  private readonly ttlMs: number
  private readonly deadlines: Deadlines
  private readonly onListenerError: (error: unknown, message: BusMessage) => void
  private readonly topics = new Map<string, TopicSubscription>()
  private readonly gapListeners = new Set<SubscriptionListener>()
  private readonly status: PairStatus
  private published = 0
  private received = 0
  private closed = false
  private readonly detach: () => void
  /** Single Redis: the flow-control channels, and the flow control of this bus's publishes. */
  private readonly probes: ProbeChannels | undefined
  private readonly flow: PublishFlow | undefined
  /** The check of a new primary after a failover (`failoverCheck`), when on. */
  private readonly failover: FailoverCheck | undefined
  /** The wait for replicas before a publish is confirmed (`replicaAck`), when on. */
  private readonly replicaAck: ReplicaAck | undefined
  /** Presence, made when a server first asks for it (its own subscriber connection). */
  private presenceState: RedisPresence | undefined
  private readonly presenceTtlMs: number
  /** `shareLoad`/`onLoad` (for the server's `rebalance`), made at first use: see load.ts. */
  private load: LoadChannel | undefined

  constructor(options: RedisBusOptions = {}) {
    this.prefix = options.prefix ?? 'rt:'
    const events: ChannelEvents = {
      message: (topic, text) => this.receive(topic, text),
      lost: (topics) => this.lost(topics),
      restored: (topics) => this.restored(topics),
      changed: () => this.status?.update(),
    }
    if (options.cluster) {
      if (options.redis || options.url) throw new TypeError('RedisBus takes one of `url`, `redis` and `cluster`')
      if (options.flowControl) throw new TypeError('RedisBus flow control is not available on a Redis Cluster: leave `flowControl` out')
      assertPrefix(this.prefix)
      const cluster = createClusterConnection(options.cluster)
      this.pub = cluster
      this.sub = undefined
      this.channelSet = new ShardedChannels(cluster, this.prefix, events, options.cluster.options?.redisOptions, options.cluster.checkMs)
      this.sharded = true
      this.ownsConnections = true
    } else {
      if (options.redis) {
        this.pub = options.redis.pub
        this.sub = options.redis.sub
        this.ownsConnections = false
      } else if (options.sentinel) {
        this.pub = new Redis(sentinelConnectionOptions(options.sentinel, 'realtime-bus-pub'))
        this.sub = new Redis({ ...sentinelConnectionOptions(options.sentinel, 'realtime-bus-sub'), autoResubscribe: false })
        this.ownsConnections = true
      } else {
        const url = options.url ?? 'redis://127.0.0.1:6379'
        this.pub = new Redis(url, { ...REDIS_BUS_CONNECTION_OPTIONS, connectionName: 'realtime-bus-pub' })
        // The bus re-subscribes by itself, then fills gaps: ioredis' own resubscribe would race it.
        this.sub = new Redis(url, { ...REDIS_BUS_CONNECTION_OPTIONS, autoResubscribe: false, connectionName: 'realtime-bus-sub' })
        this.ownsConnections = true
      }
      if (this.pub === this.sub) throw new TypeError('RedisBus needs two distinct connections: pub and sub')
      this.channelSet = new SingleChannels(this.sub, this.prefix, events)
      this.sharded = false
    }
    this.size = Math.max(0, Math.floor(options.history?.size ?? DEFAULT_HISTORY_SIZE))
    this.ttlMs = Math.max(1, Math.floor(options.history?.ttlMs ?? DEFAULT_HISTORY_TTL_MS))
    this.deadlines = new Deadlines(Math.max(1, options.publishTimeoutMs ?? 2000))
    this.presenceTtlMs = Math.max(100, options.presenceTtlMs ?? DEFAULT_PRESENCE_TTL_MS)
    this.onListenerError =
      options.onListenerError ??
      ((error, message) => console.error(`[@app/realtime] bus listener for "${message.topic}" threw`, error))
    this.status = new PairStatus(this.pub, this.channelSet)
    const pub = this.pub
    if (this.sub) {
      const id = randomBytes(9).toString('base64url')
      this.probes = new ProbeChannels(pub, this.sub, this.prefix, id, this.deadlines, options.flowControl, () => this.topics.size > 0)
      this.flow = this.probes.flow
    }
    // The failover check is for Sentinel: a single Redis or a Cluster does not fail over to a primary that lost writes unseen.
    const sentinel = options.sentinel !== undefined || (this.sub !== undefined && usesSentinel((pub as Redis).options))
    this.failover = this.sharded
      ? undefined
      : FailoverCheck.of(options.failoverCheck ?? sentinel, pub as Redis, {
          prefix: this.prefix,
          ttlMs: this.ttlMs,
          freshEpoch: randomEpoch,
          delivered: () => this.deliveredPositions(),
          onFenced: (topic, epoch) => this.fenced(topic, epoch),
        })
    this.replicaAck = this.sharded ? undefined : ReplicaAck.of(options.replicaAck, pub as Redis, this.deadlines.timeoutMs)
    const onChange = () => this.status.update()
    // First: a publish waiting for this 'ready' must see the check it starts.
    const onPubReady = () => {
      this.failover?.onReady()
      this.status.update()
    }
    // Without an 'error' listener ioredis logs every failed reconnect attempt as unhandled.
    const onError = () => {}
    pub.on('ready', onPubReady)
    pub.on('close', onChange)
    pub.on('error', onError)
    this.sub?.on('error', onError)
    // The number of keys comes first in each call: one pair per topic.
    pub.defineCommand('realtimeBusPublish', { lua: PUBLISH_SCRIPT })
    pub.defineCommand('realtimeBusHistory', { numberOfKeys: 2, lua: HISTORY_SCRIPT })
    defineStateCommands(pub)
    this.detach = () => {
      pub.off('ready', onPubReady)
      pub.off('close', onChange)
      pub.off('error', onError)
      this.sub?.off('error', onError)
    }
  }

  /** True while both connections are up: publishes and subscriptions work. */
  get healthy(): boolean {
    return this.status.current === 'up'
  }

  /** Learns of `'up'`/`'down'` changes of the Redis connections. Returns the function that stops it. */
  onStatus(listener: (status: BusStatus) => void): () => void {
    return this.status.listen(listener)
  }

  /**
   * Learns of topics whose listeners missed messages that the history no longer holds (the
   * subscriber connection was down longer than the history reaches: `'history'`; the history was
   * lost: `'epoch'`; a failover lost messages the old primary had confirmed: `'failover'`; see
   * `GapReason`). Their subscribers must resync.
   */
  onGap(listener: (topic: string, reason: GapReason) => void): () => void {
    this.gapListeners.add(listener)
    return () => this.gapListeners.delete(listener)
  }

  /** Publishes this instance's load on the bus's load channel (see load.ts). */
  shareLoad(report: LoadReport): Promise<void> {
    return this.loadChannel().share(report)
  }

  /** Learns of every instance's load reports (see load.ts). */
  onLoad(listener: (report: LoadReport) => void): () => void {
    return this.loadChannel().listen(listener)
  }

  private loadChannel(): LoadChannel {
    const channel = loadChannel(this.prefix)
    this.load ??= this.sub ? new LoadChannel(this.pub, this.sub, channel) : LoadChannel.ofCluster(this.pub as Cluster, channel)
    return this.load
  }

  /** Messages this instance published since it was created. */
  get messagesPublished(): number {
    return this.published
  }

  /** Messages this instance received from Redis: it receives only topics it has listeners for. */
  get messagesReceived(): number {
    return this.received
  }

  /** Topics whose channel this instance is subscribed to (for stats and tests). */
  get subscribedTopics(): string[] {
    return [...this.topics].filter(([, t]) => t.subscribed).map(([topic]) => topic)
  }

  /**
   * Primaries this bus moved to and checked (`failovers`), and topics whose epoch its checks
   * replaced because the new primary lacked a position (`fenced`); `undefined` when the check is off.
   */
  get failoverChecks(): { failovers: number; fenced: number } | undefined {
    return this.failover && { failovers: this.failover.failovers, fenced: this.failover.fenced }
  }

  /** The state of the publisher flow control (`undefined` when it is off). */
  get flowControl(): FlowControlState | undefined {
    return this.flow?.state()
  }

  /** Presence across the instances on this Redis (see `RedisPresence`), made on first use. */
  get presence(): BusPresence {
    this.presenceState ??= new RedisPresence(
      this.pub,
      this.prefix,
      randomBytes(9).toString('base64url'),
      this.presenceTtlMs,
      (what, call) => this.deadlines.run(what, this.pub, call),
      () => {},
    )
    return this.presenceState
  }

  /** Keeps a state topic's message as its state (unless a later one is kept): no expiry. */
  async retain(message: BusMessage): Promise<void> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    await this.deadlines.run(`state of "${message.topic}"`, this.pub, () => retain(this.pub, this.prefix, message), this.failoverGate)
  }

  async retained(topic: string): Promise<BusMessage | undefined> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    return this.deadlines.run(`state of "${topic}"`, this.pub, () => readRetained(this.pub, this.prefix, topic), this.failoverGate)
  }

  async publish(topic: string, data: string, options?: PublishOptions): Promise<Position> {
    const [position] = await this.publishMany([topic], data, options)
    return position as Position
  }

  /**
   * One payload to several topics: one script call (one round trip) appends it to each topic's
   * stream and publishes it on each topic's channel, in the order given. Each topic keeps its own
   * order and positions. Counts as one publish for flow control. On a Cluster the topics are grouped
   * by slot, one script per group (sent together): each group is atomic, the whole is not. With
   * `options.id` (an idempotency key), a repeat within the history age publishes nothing and
   * resolves with the first one's positions (on a Cluster, per slot group: a retry after a partial
   * failure publishes only the groups that did not run).
   */
  async publishMany(topics: readonly string[], data: string, options?: PublishOptions): Promise<Position[]> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    if (topics.length === 0) return []
    if (this.flow) {
      this.probes?.armFlow()
      const wait = this.flow.admit()
      if (wait) {
        await wait
        if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
      }
    }
    const what = topics.length === 1 ? `"${topics[0]}"` : JSON.stringify(topics.slice(0, 10))
    if (!this.sharded || topics.length === 1) {
      const reply = this.runPublish(what, topics, data, options?.id)
      // Counted as started now, so that a probe sent next goes out after this publish.
      this.flow?.started()
      const flat = await reply
      this.published += topics.length
      const positions: Position[] = []
      for (let i = 0; i < topics.length; i++) positions.push({ epoch: flat[2 * i] as string, offset: flat[2 * i + 1] as string })
      if (this.failover) for (let i = 0; i < topics.length; i++) this.failover.record(topics[i] as string, positions[i] as Position)
      return positions
    }
    const groups = groupBySlot(topics, (topic) => streamKey(this.prefix, topic))
    const replies = await Promise.all(groups.map((group) => this.runPublish(what, group.topics, data, options?.id)))
    this.published += topics.length
    const positions = new Array<Position>(topics.length)
    groups.forEach((group, g) => {
      const flat = replies[g] as string[]
      group.indices.forEach((index, i) => {
        positions[index] = { epoch: flat[2 * i] as string, offset: flat[2 * i + 1] as string }
      })
    })
    return positions
  }

  /** One run of the publish script for topics of one slot (any topics on a single Redis). */
  private runPublish(what: string, topics: readonly string[], data: string, id: string | undefined): Promise<string[]> {
    // On a Cluster ioredis re-sends a command after a failover or redirection by itself, possibly
    // after the caller was told it failed: the script then refuses to run (see PUBLISH_SCRIPT).
    const notAfter = this.sharded ? Date.now() + this.deadlines.timeoutMs : 0
    // One more than the history size: recovery needs the client's last message still present.
    const args = publishArguments(this.prefix, topics, data, this.size + 1, this.ttlMs, randomEpoch, id, notAfter)
    return this.deadlines.run(
      `publish to ${what}`,
      this.pub,
      () => {
        const published = (this.pub as WithScripts).realtimeBusPublish(...args)
        // Sent after the script on the same connection, so it covers it.
        return this.replicaAck ? Promise.all([published, this.replicaAck.confirmed()]).then(([flat]) => flat) : published
      },
      this.failoverGate,
    ) as Promise<string[]>
  }

  async subscribe(topic: string, listener: BusListener): Promise<void> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    let state = this.topics.get(topic)
    if (!state) {
      state = { listeners: new Set(), subscribed: false, queue: Promise.resolve(), losses: 0 }
      this.topics.set(topic, state)
    }
    state.listeners.add(listener)
    try {
      await this.reconcile(topic, state)
    } catch (error) {
      state.listeners.delete(listener)
      this.dropIfIdle(topic, state)
      throw error
    }
  }

  async unsubscribe(topic: string, listener: BusListener): Promise<void> {
    const state = this.topics.get(topic)
    if (!state || !state.listeners.delete(listener)) return
    await this.reconcile(topic, state)
    this.dropIfIdle(topic, state)
  }

  /**
   * Reads the history, then waits until the listeners of `topic` have been handed every message
   * up to the position it reports. Redis delivers pub/sub messages on another connection than the
   * history reply, so without the wait a message could reach a listener after the caller already
   * took it from history, and the caller's merge by offset (which only looks at what it buffered)
   * would pass it on twice.
   */
  async history(topic: string, since?: Position): Promise<HistoryResult> {
    const result = await this.readHistory(topic, since)
    await this.caughtUp(topic)
    return result
  }

  /**
   * Resolves once every message published before now that this instance is subscribed to has been
   * delivered: a PING on the subscriber connection is answered after the messages queued before it.
   */
  private async caughtUp(topic: string): Promise<void> {
    const state = this.topics.get(topic)
    if (!state || !state.subscribed) return
    await this.deadlines.run(`delivery check of "${topic}"`, undefined, () => this.channelSet.flush(topic)).catch(() => {
      // Down: a gap fill follows the reconnect, and the caller's merge drops what it already has.
    })
    // A gap fill in progress holds live messages back; they count as delivered once it is done.
    if (state.filling) await state.filling
  }

  private async readHistory(topic: string, since?: Position): Promise<HistoryResult> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    const reply = (await this.deadlines.run(
      `history of "${topic}"`,
      this.pub,
      () =>
        (this.pub as WithScripts).realtimeBusHistory(
          streamKey(this.prefix, topic),
          metaKey(this.prefix, topic),
          streamIdOf(since),
          randomEpoch(),
          String(this.ttlMs),
        ),
      this.failoverGate,
    )) as HistoryReply
    return historyResult(topic, since, reply, this.ttlMs)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.topics.clear()
    // Before the connections go: this instance's members leave now, not after the presence age.
    await this.presenceState?.close()
    this.status.stop()
    this.gapListeners.clear()
    void this.load?.close(!this.ownsConnections)
    this.detach()
    this.deadlines.abortAll(new RealtimeError('CLOSED', 'the bus was closed'))
    const probes = this.probes?.close(!this.ownsConnections)
    if (this.ownsConnections) {
      await Promise.all([probes, this.sharded ? this.channelSet.close() : undefined, quit(this.pub), this.sub ? quit(this.sub) : undefined])
    } else {
      await Promise.all([probes, this.channelSet.close()])
    }
  }

  /** Brings the channel's Redis subscription in line with whether the topic has listeners. */
  private reconcile(topic: string, state: TopicSubscription): Promise<void> {
    const run = async () => {
      const wanted = state.listeners.size > 0
      if (wanted === state.subscribed) return
      if (!wanted) {
        state.subscribed = false
        // Nobody is left to fill a gap for.
        state.held = undefined
        await this.channelSet.unsubscribe(topic)
        return
      }
      try {
        await this.deadlines.run(`subscription to "${topic}"`, undefined, () => this.channelSet.subscribe(topic))
      } catch (error) {
        void this.channelSet.unsubscribe(topic)
        throw error
      }
      state.subscribed = true
      await this.probes?.subscribeProbe()
      if (!state.last && !state.base) {
        state.base = await this.readHistory(topic).then(
          (result) => result.position,
          () => undefined,
        )
      }
    }
    const next = state.queue.then(run, run)
    state.queue = next.catch(() => {})
    return next
  }

  private dropIfIdle(topic: string, state: TopicSubscription): void {
    if (state.listeners.size === 0 && !state.subscribed && this.topics.get(topic) === state) this.topics.delete(topic)
  }

  private receive(topic: string, text: string): void {
    this.received++
    const state = this.topics.get(topic)
    if (!state) return
    const notice = parseFenceNotice(text)
    if (notice) {
      this.fenced(topic, notice.to)
      return
    }
    const message = parseChannelMessage(topic, text)
    if (message === undefined) return
    if (state.held) state.held.push(message)
    else this.deliver(state, message)
  }

  private deliver(state: TopicSubscription, message: BusMessage): void {
    // Offsets only grow in an epoch: a repeat is never passed on.
    if (isRepeat(message, state.last)) return
    state.last = { epoch: message.epoch, offset: message.offset }
    for (const listener of [...state.listeners]) {
      try {
        listener(message)
      } catch (error) {
        this.onListenerError(error, message)
      }
    }
  }

  /** Subscriptions dropped: live messages of these topics are held from now until the gap is filled. */
  private lost(topics: readonly string[]): void {
    for (const topic of topics) {
      const state = this.topics.get(topic)
      if (!state || state.listeners.size === 0) continue
      state.losses++
      state.held ??= []
    }
  }

  /**
   * Subscribed again: deliver what was published while they were lost, by the catch-up merge
   * (`catchUp`): the live messages held since the subscription came back and the topic's stream go
   * to the listeners, each once, in order. Fills of one topic run one after the other.
   */
  private restored(topics: readonly string[]): void {
    for (const topic of topics) {
      const state = this.topics.get(topic)
      if (!state || !state.held) continue
      const run = async () => {
        const losses = state.losses
        const history = await this.fill(topic, state)
        for (const message of catchUp(history, state.held ?? [], state.last)) this.deliver(state, message)
        // In the turn the merge ended: nothing can have been held after its last look. Lost again
        // meanwhile: hold for the next fill.
        state.held = state.losses === losses || state.listeners.size === 0 ? undefined : []
      }
      const filling = (state.filling ?? Promise.resolve()).then(run, run)
      state.filling = filling
      void filling.then(() => {
        if (state.filling === filling) state.filling = undefined
      })
    }
  }

  /** Reads from the topic's stream what its listeners missed; reports a gap (and returns nothing) where it no longer holds it. */
  private async fill(topic: string, state: TopicSubscription): Promise<readonly BusMessage[]> {
    const from = state.last ?? state.base
    if (!from) {
      // Where the listeners were is unknown (Redis was down when they joined): they must resync.
      this.reportGap(topic)
      return []
    }
    const result = await this.readHistory(topic, from).catch(() => undefined)
    if (result?.recovered) return result.messages
    const epoch = result?.position.epoch
    if (epoch !== undefined && epoch !== from.epoch) {
      // A new epoch: the listeners were told already if a failover check (this bus's or another
      // instance's notice) replaced the old one.
      if (epoch === state.toldEpoch) return []
      state.toldEpoch = epoch
      this.reportGap(topic, 'epoch')
      return []
    }
    this.reportGap(topic)
    return []
  }

  private reportGap(topic: string, reason: GapReason = 'history'): void {
    for (const listener of this.gapListeners) listener(topic, reason)
  }

  /** While the check of a new primary runs, what publishes and history reads wait for. */
  private readonly failoverGate = () => this.failover?.settled()

  /** Where the listeners of each topic are: for the failover check, to look for on a new primary. */
  private *deliveredPositions(): Iterable<[string, Position]> {
    for (const [topic, state] of this.topics) {
      const at = state.last ?? state.base
      if (at && state.listeners.size > 0) yield [topic, at]
    }
  }

  /**
   * A failover check (this bus's, or another instance's notice) replaced the topic's epoch: the
   * listeners may have missed messages the new primary does not hold. Told once per new epoch.
   */
  private fenced(topic: string, epoch: string): void {
    const state = this.topics.get(topic)
    if (!state || state.listeners.size === 0 || state.toldEpoch === epoch || state.last?.epoch === epoch) return
    state.toldEpoch = epoch
    this.reportGap(topic, 'failover')
  }
}

type WithScripts = CommandConnection & {
  realtimeBusPublish(...args: string[]): Promise<unknown>
  realtimeBusHistory(...args: string[]): Promise<unknown>
}
