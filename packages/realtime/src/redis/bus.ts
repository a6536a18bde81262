import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { catchUp, isRepeat } from '../bus/catchup.js'
import {
  DEFAULT_HISTORY_SIZE,
  DEFAULT_HISTORY_TTL_MS,
  type Bus,
  type BusListener,
  type BusMessage,
  type BusStatus,
  type HistoryResult,
  type LoadReport,
  type PublishOptions,
} from '../bus/types.js'
import { RealtimeError } from '../errors.js'
import type { Position } from '../topics.js'
import { Deadlines, PairStatus, REDIS_BUS_CONNECTION_OPTIONS, quit } from './connection.js'
import { DEFAULT_MAX_WINDOW, DEFAULT_TARGET_LAG_MS, PublishFlow, type FlowControlState } from './flow.js'
import { historyResult, parseChannelMessage, streamIdOf, type HistoryReply } from './history.js'
import { ackChannel, channelOf, metaKey, probeChannel, streamKey } from './keys.js'
import { LoadChannel, loadChannel } from './load.js'
import type { RedisBusOptions } from './options.js'
import { HISTORY_SCRIPT, PUBLISH_SCRIPT, publishArguments } from './scripts.js'

export type { RedisBusOptions } from './options.js'

interface TopicSubscription {
  listeners: Set<BusListener>
  /** Whether the channel is subscribed in Redis (as far as the bus has asked). */
  subscribed: boolean
  /** Serializes SUBSCRIBE/UNSUBSCRIBE of this topic's channel. */
  queue: Promise<void>
  /** Position of the last message delivered, to fill the gap after a reconnect and drop repeats. */
  last?: Position
  /** The topic's position when its channel was subscribed: where a gap fill starts if nothing came since. */
  base?: Position
  /** While set, live messages are held here until the gap after a reconnect is filled. */
  held?: BusMessage[]
  /** Settles when the gap fill in progress is done. */
  filling?: Promise<void>
}

type SubscriptionListener = (topic: string) => void

function randomEpoch(): string {
  return randomBytes(6).toString('base64url') + Date.now().toString(36)
}

/**
 * A bus for many server instances sharing one Redis. Each publish is one Lua script that appends to
 * the topic's stream (approximately capped, expiring after the history age) and PUBLISHes the
 * message with its offset (the stream id). An instance SUBSCRIBEs a topic's channel only while it
 * has a local listener to it, so its Redis traffic follows its clients' interest.
 *
 * While Redis is down, `publish` rejects with `BUS_UNAVAILABLE` after at most `publishTimeoutMs`;
 * when Redis returns, the bus re-subscribes its topics and fills from the streams any message its
 * listeners missed meanwhile. History lost with Redis shows up as a new epoch.
 */
export class RedisBus implements Bus {
  private readonly pub: Redis
  private readonly sub: Redis
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
  /** Set once the subscriber connection was lost: the next 'ready' must re-subscribe and fill gaps. */
  private subLost = false
  private readonly detach: () => void
  /** This bus's id: where other instances send their answers to its flow-control probes. */
  private readonly id = randomBytes(9).toString('base64url')
  private readonly flow: PublishFlow | undefined
  /** The flow-control probe channel, this bus's answers channel, and what every topic channel starts with. */
  private readonly probe: string
  private readonly acks: string
  private readonly channels: string
  /** Whether the flow-control answers channel is (being) subscribed. */
  private ackSubscribed = false
  /** `shareLoad`/`onLoad` (for the server's `rebalance`), made at first use: see load.ts. */
  private load: LoadChannel | undefined

  constructor(options: RedisBusOptions = {}) {
    if (options.redis) {
      this.pub = options.redis.pub
      this.sub = options.redis.sub
      this.ownsConnections = false
    } else {
      const url = options.url ?? 'redis://127.0.0.1:6379'
      this.pub = new Redis(url, { ...REDIS_BUS_CONNECTION_OPTIONS, connectionName: 'realtime-bus-pub' })
      // The bus re-subscribes by itself, then fills gaps: ioredis' own resubscribe would race it.
      this.sub = new Redis(url, { ...REDIS_BUS_CONNECTION_OPTIONS, autoResubscribe: false, connectionName: 'realtime-bus-sub' })
      this.ownsConnections = true
    }
    if (this.pub === this.sub) throw new TypeError('RedisBus needs two distinct connections: pub and sub')
    this.prefix = options.prefix ?? 'rt:'
    this.probe = probeChannel(this.prefix)
    this.acks = ackChannel(this.prefix, this.id)
    this.channels = channelOf(this.prefix, '')
    this.size = Math.max(0, Math.floor(options.history?.size ?? DEFAULT_HISTORY_SIZE))
    this.ttlMs = Math.max(1, Math.floor(options.history?.ttlMs ?? DEFAULT_HISTORY_TTL_MS))
    this.deadlines = new Deadlines(Math.max(1, options.publishTimeoutMs ?? 2000))
    this.onListenerError =
      options.onListenerError ??
      ((error, message) => console.error(`[@app/realtime] bus listener for "${message.topic}" threw`, error))
    this.status = new PairStatus(this.pub, this.sub)
    if (options.flowControl !== false) {
      this.flow = new PublishFlow(
        {
          targetLagMs: Math.max(1, options.flowControl?.targetLagMs ?? DEFAULT_TARGET_LAG_MS),
          maxWindow: Math.max(4, Math.floor(options.flowControl?.maxWindow ?? DEFAULT_MAX_WINDOW)),
          timeoutMs: this.deadlines.timeoutMs,
        },
        (seq) => this.pub.publish(this.probe, `${this.id} ${seq}`),
      )
    }

    const onMessage = (channel: string, text: string) => this.receive(channel, text)
    const onChange = () => this.status.update()
    const onSubReady = () => {
      if (this.subLost) {
        this.subLost = false
        void this.resubscribeAll()
        if (this.ackSubscribed) {
          this.ackSubscribed = false
          this.armFlow()
        }
      }
      this.status.update()
    }
    const onSubDown = () => {
      this.subLost = true
      // No answers can come: publishes no longer wait for them.
      this.flow?.setArmed(false)
      this.status.update()
    }
    // Without an 'error' listener ioredis logs every failed reconnect attempt as unhandled.
    const onError = () => {}
    this.sub.on('message', onMessage)
    this.sub.on('ready', onSubReady)
    this.sub.on('close', onSubDown)
    this.sub.on('error', onError)
    this.pub.on('ready', onChange)
    this.pub.on('close', onChange)
    this.pub.on('error', onError)
    // The number of keys comes first in each call: one pair per topic.
    this.pub.defineCommand('realtimeBusPublish', { lua: PUBLISH_SCRIPT })
    this.pub.defineCommand('realtimeBusHistory', { numberOfKeys: 2, lua: HISTORY_SCRIPT })
    this.detach = () => {
      this.sub.off('message', onMessage)
      this.sub.off('ready', onSubReady)
      this.sub.off('close', onSubDown)
      this.sub.off('error', onError)
      this.pub.off('ready', onChange)
      this.pub.off('close', onChange)
      this.pub.off('error', onError)
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
   * subscriber connection was down longer than the history reaches). Their subscribers must resync.
   */
  onGap(listener: (topic: string) => void): () => void {
    this.gapListeners.add(listener)
    return () => this.gapListeners.delete(listener)
  }

  /** Publishes this instance's load on the bus's load channel (see load.ts). */
  shareLoad(report: LoadReport): Promise<void> {
    return (this.load ??= new LoadChannel(this.pub, this.sub, loadChannel(this.prefix))).share(report)
  }

  /** Learns of every instance's load reports (see load.ts). */
  onLoad(listener: (report: LoadReport) => void): () => void {
    return (this.load ??= new LoadChannel(this.pub, this.sub, loadChannel(this.prefix))).listen(listener)
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

  /** The state of the publisher flow control (`undefined` when it is off). */
  get flowControl(): FlowControlState | undefined {
    return this.flow?.state()
  }

  async publish(topic: string, data: string, options?: PublishOptions): Promise<Position> {
    const [position] = await this.publishMany([topic], data, options)
    return position as Position
  }

  /**
   * One payload to several topics: one script call (one round trip) appends it to each topic's
   * stream and publishes it on each topic's channel, in the order given. Each topic keeps its own
   * order and positions. Counts as one publish for flow control. Its keys span several hash slots,
   * so it needs a single Redis (not a Cluster). With `options.id` (an idempotency key), a repeat
   * within the history age publishes nothing and resolves with the first one's positions.
   */
  async publishMany(topics: readonly string[], data: string, options?: PublishOptions): Promise<Position[]> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    if (topics.length === 0) return []
    if (this.flow) {
      if (!this.ackSubscribed) this.armFlow()
      const wait = this.flow.admit()
      if (wait) {
        await wait
        if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
      }
    }
    // One more than the history size: recovery needs the client's last message still present.
    const args = publishArguments(this.prefix, topics, data, this.size + 1, this.ttlMs, randomEpoch, options?.id)
    const what = topics.length === 1 ? `"${topics[0]}"` : JSON.stringify(topics.slice(0, 10))
    const reply = this.deadlines.run(`publish to ${what}`, this.pub, () => (this.pub as RedisWithScripts).realtimeBusPublish(...args))
    // Counted as started now, so that a probe sent next goes out after this publish.
    this.flow?.started()
    const flat = (await reply) as string[]
    this.published += topics.length
    const positions: Position[] = []
    for (let i = 0; i < topics.length; i++) positions.push({ epoch: flat[2 * i] as string, offset: flat[2 * i + 1] as string })
    return positions
  }

  async subscribe(topic: string, listener: BusListener): Promise<void> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    let state = this.topics.get(topic)
    if (!state) {
      state = { listeners: new Set(), subscribed: false, queue: Promise.resolve() }
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
    await this.deadlines.run(`delivery check of "${topic}"`, this.sub, () => this.sub.ping()).catch(() => {
      // Down: a gap fill follows the reconnect, and the caller's merge drops what it already has.
    })
    // A gap fill in progress holds live messages back; they count as delivered once it is done.
    if (state.filling) await state.filling
  }

  private async readHistory(topic: string, since?: Position): Promise<HistoryResult> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    const reply = (await this.deadlines.run(`history of "${topic}"`, this.pub, () =>
      (this.pub as RedisWithScripts).realtimeBusHistory(
        streamKey(this.prefix, topic),
        metaKey(this.prefix, topic),
        streamIdOf(since),
        randomEpoch(),
        String(this.ttlMs),
      ),
    )) as HistoryReply
    return historyResult(topic, since, reply, this.ttlMs)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const channels = this.subscribedTopics.map((topic) => channelOf(this.prefix, topic))
    if (channels.length > 0) channels.push(this.probe)
    if (this.ackSubscribed) channels.push(this.acks)
    this.topics.clear()
    this.status.stop()
    this.gapListeners.clear()
    void this.load?.close(!this.ownsConnections)
    this.detach()
    this.deadlines.abortAll(new RealtimeError('CLOSED', 'the bus was closed'))
    this.flow?.abort(new RealtimeError('CLOSED', 'the bus was closed'))
    if (this.ownsConnections) {
      await Promise.all([quit(this.pub), quit(this.sub)])
    } else if (channels.length > 0 && this.sub.status === 'ready') {
      await this.sub.unsubscribe(...channels).catch(() => {})
    }
  }

  /** Subscribes the answers channel; flow control is armed once it is in place. */
  private armFlow(): void {
    if (this.ackSubscribed || this.closed || !this.flow) return
    this.ackSubscribed = true
    this.deadlines.run('subscription to flow-control answers', this.sub, () => this.sub.subscribe(this.acks)).then(
      () => {
        if (!this.closed && this.ackSubscribed && this.sub.status === 'ready') this.flow?.setArmed(true)
      },
      () => {
        // Try again with the next publish.
        this.ackSubscribed = false
      },
    )
  }

  /** Brings the channel's Redis subscription in line with whether the topic has listeners. */
  private reconcile(topic: string, state: TopicSubscription): Promise<void> {
    const run = async () => {
      const wanted = state.listeners.size > 0
      if (wanted === state.subscribed) return
      if (!wanted) {
        state.subscribed = false
        // A lost connection has dropped its channels already.
        if (this.sub.status === 'ready') await this.sub.unsubscribe(channelOf(this.prefix, topic)).catch(() => {})
        return
      }
      // The probe channel comes with the first topic (subscribing it again is a no-op in Redis).
      await this.deadlines.run(`subscription to "${topic}"`, this.sub, () => this.sub.subscribe(channelOf(this.prefix, topic), this.probe))
      state.subscribed = true
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

  private receive(channel: string, text: string): void {
    if (channel === this.probe) {
      // Every message published before the probe has been handed to the listeners: answer it.
      const space = text.indexOf(' ')
      if (space > 0) this.pub.publish(ackChannel(this.prefix, text.slice(0, space)), `${text.slice(space + 1)} ${this.id}`).catch(() => {})
      return
    }
    if (channel === this.acks) {
      const space = text.indexOf(' ')
      if (space > 0) this.flow?.ack(Number(text.slice(0, space)), text.slice(space + 1))
      return
    }
    if (!channel.startsWith(this.channels)) return
    const topic = channel.slice(this.channels.length)
    this.received++
    const state = this.topics.get(topic)
    if (!state) return
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

  /**
   * After the subscriber connection came back: subscribe every topic that has listeners again, then
   * deliver what was published while it was away, by the catch-up merge (`catchUp`): live messages
   * are held while the topic's stream is read, then the stream's messages and the held ones go to
   * the listeners, each once, in order.
   */
  private async resubscribeAll(): Promise<void> {
    const topics = [...this.topics].filter(([, state]) => state.listeners.size > 0)
    for (const [, state] of this.topics) state.subscribed = false
    await Promise.all(
      topics.map(([topic, state]) => {
        state.held = []
        const merge = (history: readonly BusMessage[]) => {
          for (const message of catchUp(history, state.held ?? [], state.last)) this.deliver(state, message)
          // In the turn the merge ended: nothing can have been held after its last look.
          state.held = undefined
          state.filling = undefined
        }
        state.filling = this.fill(topic, state).then(merge, () => merge([]))
        return state.filling
      }),
    )
  }

  /**
   * Re-subscribes one topic and reads from its stream what its listeners missed; reports a gap
   * (and returns nothing) where the stream no longer holds it.
   */
  private async fill(topic: string, state: TopicSubscription): Promise<readonly BusMessage[]> {
    try {
      await this.reconcile(topic, state)
    } catch {
      // Down again: the next 'ready' re-subscribes every topic.
      this.subLost = true
      return []
    }
    const from = state.last ?? state.base
    if (!from) {
      // Where the listeners were is unknown (Redis was down when they joined): they must resync.
      this.reportGap(topic)
      return []
    }
    const result = await this.readHistory(topic, from).catch(() => undefined)
    if (result?.recovered) return result.messages
    this.reportGap(topic)
    return []
  }

  private reportGap(topic: string): void {
    for (const listener of this.gapListeners) listener(topic)
  }
}

type RedisWithScripts = Redis & {
  realtimeBusPublish(...args: string[]): Promise<unknown>
  realtimeBusHistory(...args: string[]): Promise<unknown>
}
