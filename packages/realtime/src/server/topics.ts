import type { Bus, BusMessage } from '../bus/types.js'
import { addMember, deleteMember, memberCount, type Members } from '../members.js'
import type { Position } from '../topics.js'
import { textFrame } from './socket.js'
import type { Logger, TopicActivity } from './types.js'

/** Told after each live fanout that reached at least one subscriber: once per message, not per subscriber. */
export type DeliveredListener = (count: number, message: BusMessage) => void

/** What a subscription needs from its connection: the outbound path's live-patch write. */
export interface PatchSink {
  /**
   * Sends a patch of the live fanout: `frame` is a whole WebSocket text frame (`textFrame`), the
   * same buffer for every subscriber of a message; `payloadBytes` is the size of its text.
   */
  sendPatch(frame: Buffer, payloadBytes: number): void
  /** Called when a subscription's catch-up falls too far behind: the peer is closed 4008. */
  slow(): void
}

/**
 * Live messages held for one subscription while its history is replayed. A peer that reads its
 * replay so slowly that more pile up is a slow consumer: it is closed (4008) rather than queued for.
 */
export const MAX_PENDING_MESSAGES = 10_000

/** One connection's subscription to one topic. */
export interface Subscription {
  readonly sink: PatchSink
  readonly topic: string
  /**
   * Live messages held back while the subscription's history is read (`null` once live). The
   * subscription joins the topic before history is read, so nothing published in between is lost;
   * duplicates are dropped by offset when the buffer is flushed.
   */
  pending: BusMessage[] | null
}

/** A server-side listener registered with `onTopic`. */
export type ServerTopicListener = (payload: unknown, position: Position) => void

/** The `ready` of a topic whose bus subscription is in place: one shared promise, not one per topic. */
const SUBSCRIBED: Promise<void> = Promise.resolve()

/** The epoch of the last patch text made, and the end of its text (`,"epoch":"…"}`): made once per epoch. */
let lastEpoch = ''
let lastEpochTail = ''

/**
 * The text of a patch frame for a bus message (the payload is already JSON): the one encoder of
 * patches, for the live fanout and for history replay alike. `topicJson` is `JSON.stringify(topic)`.
 */
export function patchText(topicJson: string, message: BusMessage): string {
  if (message.epoch !== lastEpoch) {
    lastEpoch = message.epoch
    lastEpochTail = ',"epoch":' + JSON.stringify(message.epoch) + '}'
  }
  return '{"type":"patch","topic":' + topicJson + ',"payload":' + message.data + ',"offset":' + JSON.stringify(message.offset) + lastEpochTail
}

/**
 * The local members of one topic on this server instance. Kept small: an instance may hold one per
 * connection (`user:<id>` topics), so a topic with one subscriber holds it directly (no Set), its
 * JSON-quoted name is made at its first message, and the bus listener is one function for all
 * topics.
 */
class LocalTopic<S extends Subscription> implements Members<S> {
  /** The subscriber of a topic that has one and no `many` (`many`, once made, holds them all). */
  one: S | undefined = undefined
  /** Every subscriber, in join order, once a second one joined. */
  many: Set<S> | undefined = undefined
  /** Server-side `onTopic` listeners; created on the first one (most topics never have any). */
  listeners: Set<ServerTopicListener> | undefined = undefined
  /** `JSON.stringify(name)`, made at the first patch frame of the topic. */
  topicJson: string | undefined = undefined
  /** Patch frames handed to subscribers by the live fanout (for `stats().busiestTopics`). */
  delivered = 0
  /** Resolves once the bus subscription is in place. */
  ready: Promise<void> = SUBSCRIBED

  constructor(readonly name: string) {}

  get subscriberCount(): number {
    return memberCount(this)
  }

  get size(): number {
    return this.subscriberCount + (this.listeners?.size ?? 0)
  }

}

/**
 * The topics that have local members (subscriptions or server-side listeners) on this instance.
 * A topic joins the bus on its first member and leaves on its last, so the bus traffic an instance
 * receives follows its clients' interest.
 */
export class LocalTopics<S extends Subscription = Subscription> {
  private readonly topics = new Map<string, LocalTopic<S>>()
  /**
   * Topics that lost their last member and whose bus unsubscribe waits for their `ready`. A member
   * that comes meanwhile takes the topic back: the one bus listener, shared by every topic, is then
   * never subscribed to a topic twice, nor unsubscribed after its topic came back.
   */
  private readonly releasing = new Map<string, LocalTopic<S>>()

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly onDelivered: DeliveredListener,
  ) {}

  get size(): number {
    return this.topics.size
  }

  /**
   * The bus listener of every local topic (a message names its topic): one WebSocket frame per
   * message, shared by every subscriber.
   */
  private readonly onBusMessage = (message: BusMessage): void => {
    const topic = this.topics.get(message.topic)
    if (topic === undefined) return
    let frame: Buffer | undefined
    let bytes = 0
    let sent = 0
    const one = topic.one
    if (one !== undefined) {
      if (one.pending) this.hold(one, message)
      else {
        const text = patchText((topic.topicJson ??= JSON.stringify(topic.name)), message)
        bytes = Buffer.byteLength(text)
        one.sink.sendPatch(textFrame(text, bytes), bytes)
        sent = 1
      }
    } else if (topic.many !== undefined) {
      for (const subscription of topic.many) {
        if (subscription.pending) {
          this.hold(subscription, message)
          continue
        }
        if (frame === undefined) {
          const text = patchText((topic.topicJson ??= JSON.stringify(topic.name)), message)
          bytes = Buffer.byteLength(text)
          frame = textFrame(text, bytes)
        }
        subscription.sink.sendPatch(frame, bytes)
        sent++
      }
    }
    if (sent > 0) {
      topic.delivered += sent
      this.onDelivered(sent, message)
    }
    if (topic.listeners !== undefined && topic.listeners.size > 0) this.notifyListeners(topic.name, message, topic.listeners)
  }

  private hold(subscription: S, message: BusMessage): void {
    if ((subscription.pending as BusMessage[]).push(message) > MAX_PENDING_MESSAGES) subscription.sink.slow()
  }

  private notifyListeners(name: string, message: BusMessage, listeners: Set<ServerTopicListener>): void {
    let payload: unknown
    try {
      payload = JSON.parse(message.data)
    } catch (error) {
      this.logger.error({ err: error, topic: name }, 'realtime: bus message is not JSON')
      return
    }
    const position: Position = { epoch: message.epoch, offset: message.offset }
    for (const listener of listeners) {
      try {
        listener(payload, position)
      } catch (error) {
        this.logger.error({ err: error, topic: name }, 'realtime: onTopic listener threw')
      }
    }
  }

  /** Adds a subscription (buffering until `goLive`); resolves once the bus delivers the topic. */
  join(subscription: S): Promise<void> {
    const topic = this.topicFor(subscription.topic)
    addMember(topic, subscription)
    return topic.ready
  }

  /** Adds a server-side listener; resolves once the bus delivers the topic. */
  listen(name: string, listener: ServerTopicListener): Promise<void> {
    const topic = this.topicFor(name)
    ;(topic.listeners ??= new Set()).add(listener)
    return topic.ready
  }

  leave(subscription: S): void {
    const topic = this.topics.get(subscription.topic)
    if (!topic || !deleteMember(topic, subscription)) return
    this.releaseIfEmpty(topic)
  }

  unlisten(name: string, listener: ServerTopicListener): Promise<void> {
    const topic = this.topics.get(name)
    if (!topic || !topic.listeners?.delete(listener)) return Promise.resolve()
    return this.releaseIfEmpty(topic)
  }

  /** `JSON.stringify(name)`, made once per local topic: for patches sent outside the shared fanout. */
  topicJson(name: string): string {
    const topic = this.topics.get(name)
    return topic === undefined ? JSON.stringify(name) : (topic.topicJson ??= JSON.stringify(name))
  }

  /** How many local subscriptions `name` has (no Set is built for it). */
  subscriberCount(name: string): number {
    return this.topics.get(name)?.subscriberCount ?? 0
  }

  subscriptionsOf(name: string): ReadonlySet<S> {
    const topic = this.topics.get(name)
    if (topic === undefined) return new Set()
    return topic.many ?? new Set(topic.one === undefined ? [] : [topic.one])
  }

  /** The `limit` topics with the most local subscribers (then the most delivered), busiest first. */
  busiest(limit: number): TopicActivity[] {
    // One pass keeping the top `limit`: no sort of every topic on every stats() call.
    const top: LocalTopic<S>[] = []
    if (limit <= 0) return []
    const before = (a: LocalTopic<S>, b: LocalTopic<S>) =>
      a.subscriberCount > b.subscriberCount || (a.subscriberCount === b.subscriberCount && a.delivered > b.delivered)
    for (const topic of this.topics.values()) {
      if (topic.subscriberCount === 0 && topic.delivered === 0) continue
      if (top.length === limit && !before(topic, top[limit - 1] as LocalTopic<S>)) continue
      let i = Math.min(top.length, limit - 1)
      top[i] = topic
      while (i > 0 && before(topic, top[i - 1] as LocalTopic<S>)) {
        top[i] = top[i - 1] as LocalTopic<S>
        top[--i] = topic
      }
    }
    return top.map((t) => ({ topic: t.name, subscribers: t.subscriberCount, delivered: t.delivered }))
  }

  private topicFor(name: string): LocalTopic<S> {
    let topic = this.topics.get(name)
    if (topic !== undefined) return topic
    topic = this.releasing.get(name)
    if (topic !== undefined) {
      // Back before its bus unsubscribe: it keeps its bus subscription, and starts its count anew.
      this.releasing.delete(name)
      topic.delivered = 0
      this.topics.set(name, topic)
      return topic
    }
    const created = new LocalTopic<S>(name)
    created.ready = this.bus.subscribe(name, this.onBusMessage).then(
      () => {
        // Once in place, the shared resolved promise stands in: nothing kept per topic.
        if (created.ready !== SUBSCRIBED) created.ready = SUBSCRIBED
      },
      (error: unknown) => {
        // Leave the map so the next member retries the bus subscription.
        if (this.topics.get(name) === created) this.topics.delete(name)
        if (this.releasing.get(name) === created) this.releasing.delete(name)
        throw error
      },
    )
    this.topics.set(name, created)
    return created
  }

  private releaseIfEmpty(topic: LocalTopic<S>): Promise<void> {
    const name = topic.name
    if (topic.size > 0 || this.topics.get(name) !== topic) return Promise.resolve()
    this.topics.delete(name)
    this.releasing.set(name, topic)
    return topic.ready
      .then(() => {
        if (this.releasing.get(name) !== topic) return
        this.releasing.delete(name)
        return this.bus.unsubscribe(name, this.onBusMessage)
      })
      .catch((error: unknown) => {
        if (this.releasing.get(name) === topic) this.releasing.delete(name)
        this.logger.warn({ err: error, topic: name }, 'realtime: bus unsubscribe failed')
      })
  }
}
