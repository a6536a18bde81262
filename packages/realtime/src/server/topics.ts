import type { Bus, BusMessage } from '../bus/types.js'
import type { Position } from '../topics.js'
import type { Logger, TopicActivity } from './types.js'

/** Told after each live fanout that reached at least one subscriber: once per message, not per subscriber. */
export type DeliveredListener = (count: number, message: BusMessage) => void

/** What a subscription needs from its connection: a way to send a frame. */
export interface PatchSink {
  /** Sends one text frame; the same buffer is handed to every subscriber of a message. */
  sendFrame(frame: Buffer | string): void
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

/** Builds the text of a patch frame from a bus message: the payload is already JSON. */
export function patchFrameText(topicJson: string, message: BusMessage): string {
  return (
    '{"type":"patch","topic":' +
    topicJson +
    ',"payload":' +
    message.data +
    ',"offset":' +
    JSON.stringify(message.offset) +
    ',"epoch":' +
    JSON.stringify(message.epoch) +
    '}'
  )
}

/** The local members of one topic on this server instance, and its one bus subscription. */
class LocalTopic {
  readonly subscribers = new Set<Subscription>()
  /** Server-side `onTopic` listeners; created on the first one (most topics never have any). */
  listeners: Set<ServerTopicListener> | undefined
  readonly topicJson: string
  /** Patch frames handed to subscribers by the live fanout (for `stats().busiestTopics`). */
  delivered = 0
  /** Resolves once the bus subscription is in place. */
  ready: Promise<void> = SUBSCRIBED

  constructor(
    readonly name: string,
    private readonly onDelivered: DeliveredListener,
    private readonly logger: Logger,
  ) {
    this.topicJson = JSON.stringify(name)
  }

  get size(): number {
    return this.subscribers.size + (this.listeners?.size ?? 0)
  }

  /** The bus listener: one frame text and one buffer per message, shared by every subscriber. */
  readonly onMessage = (message: BusMessage): void => {
    let frame: Buffer | undefined
    let sent = 0
    for (const subscription of this.subscribers) {
      if (subscription.pending) {
        if (subscription.pending.push(message) > MAX_PENDING_MESSAGES) subscription.sink.slow()
        continue
      }
      frame ??= Buffer.from(patchFrameText(this.topicJson, message))
      subscription.sink.sendFrame(frame)
      sent++
    }
    if (sent > 0) {
      this.delivered += sent
      this.onDelivered(sent, message)
    }
    if (this.listeners !== undefined && this.listeners.size > 0) this.notifyListeners(message, this.listeners)
  }

  private notifyListeners(message: BusMessage, listeners: Set<ServerTopicListener>): void {
    let payload: unknown
    try {
      payload = JSON.parse(message.data)
    } catch (error) {
      this.logger.error({ err: error, topic: this.name }, 'realtime: bus message is not JSON')
      return
    }
    const position: Position = { epoch: message.epoch, offset: message.offset }
    for (const listener of listeners) {
      try {
        listener(payload, position)
      } catch (error) {
        this.logger.error({ err: error, topic: this.name }, 'realtime: onTopic listener threw')
      }
    }
  }
}

/**
 * The topics that have local members (subscriptions or server-side listeners) on this instance.
 * A topic joins the bus on its first member and leaves on its last, so the bus traffic an instance
 * receives follows its clients' interest.
 */
export class LocalTopics {
  private readonly topics = new Map<string, LocalTopic>()

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly onDelivered: DeliveredListener,
  ) {}

  get size(): number {
    return this.topics.size
  }

  /** Adds a subscription (buffering until `goLive`); resolves once the bus delivers the topic. */
  join(subscription: Subscription): Promise<void> {
    const topic = this.topicFor(subscription.topic)
    topic.subscribers.add(subscription)
    return topic.ready
  }

  /** Adds a server-side listener; resolves once the bus delivers the topic. */
  listen(name: string, listener: ServerTopicListener): Promise<void> {
    const topic = this.topicFor(name)
    ;(topic.listeners ??= new Set()).add(listener)
    return topic.ready
  }

  leave(subscription: Subscription): void {
    const topic = this.topics.get(subscription.topic)
    if (!topic || !topic.subscribers.delete(subscription)) return
    this.releaseIfEmpty(topic)
  }

  unlisten(name: string, listener: ServerTopicListener): Promise<void> {
    const topic = this.topics.get(name)
    if (!topic || !topic.listeners?.delete(listener)) return Promise.resolve()
    return this.releaseIfEmpty(topic)
  }

  /** The frame text of a message of `name`, for messages sent outside the shared fanout. */
  frameText(name: string, message: BusMessage): string {
    return patchFrameText(this.topics.get(name)?.topicJson ?? JSON.stringify(name), message)
  }

  subscriptionsOf(name: string): ReadonlySet<Subscription> {
    return this.topics.get(name)?.subscribers ?? new Set()
  }

  /** The `limit` topics with the most local subscribers (then the most delivered), busiest first. */
  busiest(limit: number): TopicActivity[] {
    // One pass keeping the top `limit`: no sort of every topic on every stats() call.
    const top: LocalTopic[] = []
    if (limit <= 0) return []
    const before = (a: LocalTopic, b: LocalTopic) =>
      a.subscribers.size > b.subscribers.size || (a.subscribers.size === b.subscribers.size && a.delivered > b.delivered)
    for (const topic of this.topics.values()) {
      if (topic.subscribers.size === 0 && topic.delivered === 0) continue
      if (top.length === limit && !before(topic, top[limit - 1] as LocalTopic)) continue
      let i = Math.min(top.length, limit - 1)
      top[i] = topic
      while (i > 0 && before(topic, top[i - 1] as LocalTopic)) {
        top[i] = top[i - 1] as LocalTopic
        top[--i] = topic
      }
    }
    return top.map((t) => ({ topic: t.name, subscribers: t.subscribers.size, delivered: t.delivered }))
  }

  private topicFor(name: string): LocalTopic {
    let topic = this.topics.get(name)
    if (!topic) {
      const created = new LocalTopic(name, this.onDelivered, this.logger)
      created.ready = this.bus.subscribe(name, created.onMessage).then(
        () => {
          // Once in place, the shared resolved promise stands in: nothing kept per topic.
          if (created.ready !== SUBSCRIBED) created.ready = SUBSCRIBED
        },
        (error: unknown) => {
          // Leave the map so the next member retries the bus subscription.
          if (this.topics.get(name) === created) this.topics.delete(name)
          throw error
        },
      )
      this.topics.set(name, created)
      topic = created
    }
    return topic
  }

  private releaseIfEmpty(topic: LocalTopic): Promise<void> {
    if (topic.size > 0 || this.topics.get(topic.name) !== topic) return Promise.resolve()
    this.topics.delete(topic.name)
    return topic.ready
      .then(() => this.bus.unsubscribe(topic.name, topic.onMessage))
      .catch((error: unknown) => {
        this.logger.warn({ err: error, topic: topic.name }, 'realtime: bus unsubscribe failed')
      })
  }
}
