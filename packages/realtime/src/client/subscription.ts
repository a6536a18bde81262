import { RealtimeError } from '../errors.js'
import type { PresenceMember } from '../protocol.js'
import type { Position, TopicMap, TopicName } from '../topics.js'
import { Emitter } from './emitter.js'

/** The state of one topic subscription on the client. The `state` event fires on real changes only. */
export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed'

/** The patch message of one topic. */
export interface TopicPatch<T extends TopicMap, K extends TopicName<T>> {
  type: 'patch'
  topic: K
  payload: T[K]
  offset: string
  epoch: string
}

/**
 * What a `subscribed` event says: whether the missed patches follow (`recovered`), the position,
 * and on a state topic that was not recovered the topic's current `state` (the payload at `position`).
 */
export interface SubscribedInfo<P = unknown> {
  recovered: boolean
  position: Position
  /** Present on a state topic that holds a state, when the subscription was not recovered. */
  state?: P
}

/** Members that joined a presence topic (add or replace) and the ids of those that left. */
export interface PresenceChange<I = Record<string, unknown>> {
  join: PresenceMember<I>[]
  leave: string[]
}

/** The events of one topic's subscription. */
export interface SubscriptionEvents<T extends TopicMap, K extends TopicName<T>> {
  /** A patch of this topic, in order (recovered ones included). */
  patch: (message: TopicPatch<T, K>) => void
  state: (state: SubscriptionState) => void
  /**
   * The subscription reached the server (`recovered` when missed patches follow; `state` on a
   * state topic, which then needs no refetch and gets no `resync`).
   */
  subscribed: (info: SubscribedInfo<T[K]>) => void
  /** Members of this presence topic joined or left. */
  presence: (change: PresenceChange) => void
  /** The server removed the subscription (`reason`, e.g. 'revoked'). */
  unsubscribed: (reason: string) => void
  /** What was missed could not be recovered: refetch the topic's state. */
  resync: () => void
  error: (error: RealtimeError & { topic?: string }) => void
}

/**
 * One topic of a client, as centrifuge-js has it: the same object for the same topic, reference
 * counted by `subscribe`/`unsubscribe`, with its own state, position and events.
 */
export interface Subscription<T extends TopicMap = TopicMap, K extends TopicName<T> = TopicName<T>> {
  readonly topic: K
  readonly state: SubscriptionState
  /** The last position seen (what a re-subscribe sends as `since`). */
  readonly position: Position | undefined
  /**
   * On a state topic, its current state: the `state` the server sent with `subscribed`, then each
   * later patch's payload (each is the whole state). `undefined` until the server sent a state (a
   * topic that is not a state topic, or that held none yet when subscribed).
   */
  readonly value: T[K] | undefined
  /** Adds a reference; the first one subscribes on the wire. */
  subscribe(): void
  /** Drops a reference; the last one unsubscribes on the wire (at the end of the tick). */
  unsubscribe(): void
  on<E extends keyof SubscriptionEvents<T, K>>(event: E, listener: SubscriptionEvents<T, K>[E]): () => void
  off<E extends keyof SubscriptionEvents<T, K>>(event: E, listener: SubscriptionEvents<T, K>[E]): void
  /**
   * Resolves once the state is `subscribed` (at once if it is). Rejects with `TIMEOUT` after
   * `timeoutMs`, or with the reason when the subscription ends up `unsubscribed` (refused, revoked).
   */
  ready(timeoutMs?: number): Promise<void>
}

/** What a subscription asks of its client. */
export interface SubscriptionHost {
  retain(sub: TopicSubscription): void
  release(sub: TopicSubscription): void
}

/**
 * The client's record of one topic: how many callers want it, the last position seen (sent as
 * `since` on re-subscribe), and the id of the subscribe frame in flight.
 */
export class TopicSubscription implements Subscription {
  refs = 0
  /** The references held for other tabs (a shared client's leader): not this tab's own. */
  remote = 0
  position: Position | undefined
  value: unknown
  /** Whether the server sent a state for this subscription: `value` then follows the patches. */
  stateful = false
  /** Whether a subscribe was sent on the current connection (and not undone since). */
  onWire = false
  /** Id of the latest subscribe frame: replies to older ones are stale and ignored. */
  requestId = 0
  /** Whether the in-flight subscribe carried `since` (so `recovered:false` means a resync). */
  sentSince = false
  retryTimer: ReturnType<typeof setTimeout> | undefined
  retries = 0
  private current: SubscriptionState = 'unsubscribed'
  private readonly events = new Emitter<SubscriptionEvents<TopicMap, string>>()

  constructor(
    readonly topic: string,
    private readonly host: SubscriptionHost,
  ) {}

  get state(): SubscriptionState {
    return this.current
  }

  setState(next: SubscriptionState): void {
    if (this.current === next) return
    this.current = next
    this.events.emit('state', next)
  }

  emit<E extends keyof SubscriptionEvents<TopicMap, string>>(event: E, ...args: Parameters<SubscriptionEvents<TopicMap, string>[E]>): void {
    this.events.emit(event, ...(args as never))
  }

  /** Whether anyone listens: a subscription nobody holds nor listens to is forgotten. */
  get listened(): boolean {
    return this.events.listened
  }

  subscribe(): void {
    this.host.retain(this)
  }

  unsubscribe(): void {
    this.host.release(this)
  }

  on(event: keyof SubscriptionEvents<TopicMap, string>, listener: (...args: never[]) => void): () => void {
    this.events.on(event, listener as never)
    return () => {
      this.events.off(event, listener as never)
    }
  }

  off(event: keyof SubscriptionEvents<TopicMap, string>, listener: (...args: never[]) => void): void {
    this.events.off(event, listener as never)
  }

  ready(timeoutMs?: number): Promise<void> {
    if (this.current === 'subscribed') return Promise.resolve()
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      let why = 'it ended'
      const offs = [
        this.on('error', (error: RealtimeError) => (why = error.message)),
        this.on('unsubscribed', (reason: string) => (why = `removed by the server: ${reason}`)),
        this.on('state', (state: SubscriptionState) => {
          if (state === 'subscribed') done()
          else if (state === 'unsubscribed') done(new RealtimeError('CLOSED', `subscription to "${this.topic}" ended: ${why}`))
        }),
      ]
      const done = (error?: RealtimeError) => {
        clearTimeout(timer)
        for (const off of offs) off()
        if (error) reject(error)
        else resolve()
      }
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => done(new RealtimeError('TIMEOUT', `"${this.topic}" not subscribed within ${timeoutMs} ms`)), timeoutMs)
      }
    })
  }
}
