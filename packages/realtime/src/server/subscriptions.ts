import { catchUp } from '../bus/catchup.js'
import type { Bus, BusMessage } from '../bus/types.js'
import { keyedCount, keyedDelete, keyedGet, keyedSet, keyedValues, type KeyedMembers } from '../members.js'
import { ErrorCode, type FrameId, type MembersFrame, type PresenceMember, type SubscribeFrame, type UnsubscribeFrame } from '../protocol.js'
import type { Position } from '../topics.js'
import { Outbound, type OutboundContext } from './outbound.js'
import type { LocalPresence } from './presence.js'
import { count } from './stats.js'
import { patchText, type LocalTopics, type Subscription } from './topics.js'
import type { Logger, Principal } from './types.js'

/** What a connection's subscriptions need from the server. */
export interface SubscriberContext<P> extends OutboundContext {
  readonly bus: Bus
  readonly topics: LocalTopics<ConnectionSubscription<P>>
  readonly logger: Logger
  readonly authorize: ((principal: P, topic: string) => boolean | Promise<boolean>) | undefined
  /** The `stateTopics` rule, when the server has state topics. */
  readonly stateTopics: ((topic: string) => boolean) | undefined
  /** Presence, when the server has the `presence` option. */
  readonly presence: SubscriberPresence<P> | undefined
}

/** What subscriptions need of the server's presence. */
export interface SubscriberPresence<P> {
  readonly local: LocalPresence
  topics(topic: string): boolean
  /** The member a connection's principal is on a topic (undefined: none). */
  member(principal: P, topic: string, connectionId: string): PresenceMember | undefined
  watch(principal: P, topic: string): boolean
}

/** Where a subscription starts: its position, whether it recovered, the history to replay, the state. */
interface StartingPoint {
  position: Position
  /** The topic's position now (`position` is the state's, with a state). */
  latest: Position
  recovered: boolean
  messages: readonly BusMessage[]
  /** The retained state sent with `subscribed` (a state topic), or undefined. */
  state: BusMessage | undefined
}

/** A subscription of a connection, with what the protocol needs to answer for it. */
export interface ConnectionSubscription<P = Principal> extends Subscription {
  readonly sink: Subscriber<P>
  /** False once unsubscribed or closed: async steps of a pending subscribe check it. */
  active: boolean
  /** On a presence topic, once `subscribed` was sent: the member it holds and whether it watches. */
  presence?: { member: string | undefined; watching: boolean }
}

/**
 * Subscriptions told of a bus gap while still catching up: they resync once the replay is done
 * (a WeakSet, so that no subscription carries a field for this rare case).
 */
const resyncAfterReplay = new WeakSet<object>()

/**
 * A connection's subscriptions: `subscribe` (the limit, `authorize`, joining the topic, the history
 * read and the catch-up merge), `unsubscribe`, revocation, resync after a bus gap, and the
 * re-authorization after new credentials. The middle layer of `Connection` (outbound path below,
 * the protocol's frames and phases above), kept in one object so an idle connection is one object.
 */
export abstract class Subscriber<P = Principal> extends Outbound {
  /** By topic; one field for the one subscription most connections have (see `KeyedMembers`). */
  private subscriptions: KeyedMembers<ConnectionSubscription<P>> = undefined
  declare protected readonly ctx: SubscriberContext<P>

  abstract get id(): string
  abstract get principal(): P
  /** Sends an `error` frame for a refused or bad frame. */
  abstract reject(error: { code: ErrorCode; message: string; id?: FrameId; topic?: string }): void

  get subscriptionCount(): number {
    return keyedCount(this.subscriptions)
  }

  /** Removes this connection's subscription to `topic`, telling the client why. */
  revoke(topic: string, reason: string): boolean {
    const subscription = keyedGet(this.subscriptions, topic)
    if (!subscription) return false
    this.drop(subscription)
    count(this.ctx.stats.drops, 'revoked')
    this.send({ type: 'unsubscribed', topic, reason })
    return true
  }

  /**
   * The bus lost messages of `topic` that this subscription may not have seen: tell the client
   * with an unasked `subscribed` (`recovered: false`, the current position) so it refetches.
   */
  async resync(topic: string): Promise<void> {
    const subscription = keyedGet(this.subscriptions, topic)
    if (!subscription) return
    if (subscription.pending) {
      // Still catching up, maybe from history read before the bus learned of the loss: resync
      // once the replay is done.
      resyncAfterReplay.add(subscription)
      return
    }
    try {
      const start = await this.startingPoint(topic, undefined)
      if (!subscription.active || keyedGet(this.subscriptions, topic) !== subscription) return
      // A state with patches after it would need those replayed beside the live ones: refetch instead.
      if (start.state !== undefined && start.messages.length === 0) this.sendSubscribed(undefined, topic, start)
      else this.send({ type: 'subscribed', topic, epoch: start.latest.epoch, offset: start.latest.offset, recovered: false })
    } catch (error) {
      this.ctx.logger.warn({ err: error, topic, connectionId: this.id }, 'realtime: resync after a bus gap failed')
    }
  }

  /** The principal changed (a successful `auth`): keep only the subscriptions it may still have. */
  async reauthorize(): Promise<void> {
    const authorize = this.ctx.authorize
    if (!authorize) return
    for (const { topic } of keyedValues(this.subscriptions)) {
      let allowed = false
      try {
        allowed = await authorize(this.principal, topic)
      } catch {
        allowed = false
      }
      if (!allowed && !this.closed) this.revoke(topic, 'forbidden')
    }
  }

  protected async subscribe(frame: SubscribeFrame): Promise<void> {
    const { topic, id } = frame
    const ctx = this.ctx
    const existing = keyedGet(this.subscriptions, topic)
    if (existing) this.drop(existing)
    else if (keyedCount(this.subscriptions) >= ctx.limits.maxSubscriptions) {
      count(ctx.stats.drops, 'too_many_subscriptions')
      const message = `at most ${ctx.limits.maxSubscriptions} subscriptions per connection`
      this.reject({ code: ErrorCode.TOO_MANY_SUBSCRIPTIONS, message, id, topic })
      return
    }
    const subscription: ConnectionSubscription<P> = { sink: this, topic, pending: [], active: true }
    // Registered before any await so that the limit counts it and an unsubscribe can cancel it.
    this.subscriptions = keyedSet(this.subscriptions, subscription)
    try {
      if (ctx.authorize && !(await this.authorized(ctx.authorize, subscription, id))) return
      // Join first, then read history: what is published meanwhile waits in `pending`.
      await ctx.topics.join(subscription)
      if (!subscription.active) return
      const start = await this.startingPoint(topic, frame.since)
      if (!subscription.active) return
      const { position, recovered } = start
      this.sendSubscribed(id, topic, start)
      if (ctx.presence?.topics(topic)) this.enterPresence(ctx.presence, subscription)
      const from = { epoch: position.epoch, offset: recovered && frame.since ? frame.since.offset : position.offset }
      await this.replay(subscription, start.messages, from)
    } catch (error) {
      if (!subscription.active) return
      this.drop(subscription)
      ctx.logger.error({ err: error, topic, connectionId: this.id }, 'realtime: subscribe failed')
      count(ctx.stats.errors, ErrorCode.INTERNAL)
      this.send({ type: 'error', ...(id === undefined ? {} : { id }), topic, code: ErrorCode.INTERNAL, message: 'subscribe failed: the bus is unavailable; retry later' })
    }
  }

  /**
   * Reads where a subscription starts: the history after `since`; on a state topic that does not
   * recover, the retained state and the messages after it (or, when those are gone from the
   * history while later ones exist, no state: the client refetches).
   */
  private async startingPoint(topic: string, since: Position | undefined): Promise<StartingPoint> {
    const { bus, stateTopics } = this.ctx
    const history = await bus.history(topic, since)
    const plain: StartingPoint = { position: history.position, latest: history.position, recovered: history.recovered, messages: history.messages, state: undefined }
    if (history.recovered || !stateTopics?.(topic) || !bus.retained) return plain
    const state = await bus.retained(topic)
    if (state === undefined) return plain
    const at: Position = { epoch: state.epoch, offset: state.offset }
    if (at.epoch === history.position.epoch && at.offset === history.position.offset) return { ...plain, position: at, state }
    const after = await bus.history(topic, at)
    // Recovered: the patches after the state follow it. An empty topic (its history expired, or lost
    // with Redis): nothing came after the state that anyone could replay, so it is the latest.
    if (after.recovered || after.position.offset === '0') return { position: at, latest: after.position, recovered: false, messages: after.messages, state }
    return plain
  }

  /** The `subscribed` reply; with a state, its JSON goes in as it is (it was serialized at publish). */
  private sendSubscribed(id: FrameId | undefined, topic: string, start: StartingPoint): void {
    const { position, recovered, state } = start
    const frame = { type: 'subscribed' as const, ...(id === undefined ? {} : { id }), topic, epoch: position.epoch, offset: position.offset, recovered }
    if (state === undefined) this.send(frame)
    else this.sendText(JSON.stringify(frame).slice(0, -1) + ',"state":' + state.data + '}')
  }

  /** A presence topic's subscription confirmed: the principal holds its member and watches, as allowed. */
  private enterPresence(presence: SubscriberPresence<P>, subscription: ConnectionSubscription<P>): void {
    const { topic } = subscription
    let member: PresenceMember | undefined
    let watching = false
    try {
      member = presence.member(this.principal, topic, this.id)
      watching = presence.watch(this.principal, topic)
    } catch (error) {
      this.ctx.logger.error({ err: error, topic, connectionId: this.id }, 'realtime: presence member/watch threw')
    }
    subscription.presence = { member: member?.id, watching }
    presence.local.add(topic, member, watching ? this : undefined)
  }

  /** `members`: the list of a presence topic this connection watches, from the instance's mirror. */
  protected async members(frame: MembersFrame): Promise<void> {
    const { topic, id } = frame
    const presence = this.ctx.presence
    const subscription = keyedGet(this.subscriptions, topic)
    if (!presence?.topics(topic)) {
      this.reject({ code: ErrorCode.BAD_REQUEST, message: `"${topic}" is not a presence topic`, id, topic })
      return
    }
    if (!subscription?.presence) {
      this.reject({ code: ErrorCode.BAD_REQUEST, message: `subscribe to "${topic}" first`, id, topic })
      return
    }
    if (!subscription.presence.watching) {
      count(this.ctx.stats.refused, 'forbidden')
      this.reject({ code: ErrorCode.FORBIDDEN, message: `not allowed to see the members of "${topic}"`, id, topic })
      return
    }
    const members = await presence.local.members(topic)
    if (!subscription.active) return
    this.send({ type: 'members', ...(id === undefined ? {} : { id }), topic, members })
  }

  /** Runs `authorize`; false (and the subscription gone, the client told) when it says no or throws. */
  private async authorized(
    authorize: NonNullable<SubscriberContext<P>['authorize']>,
    subscription: ConnectionSubscription<P>,
    id: FrameId | undefined,
  ): Promise<boolean> {
    const { ctx } = this
    const { topic } = subscription
    let allowed: boolean
    try {
      allowed = await authorize(this.principal, topic)
    } catch (error) {
      ctx.logger.error({ err: error, topic, connectionId: this.id }, 'realtime: authorize threw')
      allowed = false
    }
    if (!subscription.active) return false
    if (allowed) return true
    this.subscriptions = keyedDelete(this.subscriptions, subscription)
    subscription.active = false
    count(ctx.stats.refused, 'forbidden')
    ctx.logger.info({ connectionId: this.id, topic }, 'realtime: subscription forbidden')
    this.reject({ code: ErrorCode.FORBIDDEN, message: `not allowed to subscribe to "${topic}"`, id, topic })
    return false
  }

  /**
   * The catch-up of a new subscription (`catchUp`): the history read, then the live messages held
   * in `pending` meanwhile, each once, at the pace the peer reads (history can be far larger than
   * the send buffer limit); then live. `pending` may grow while this waits for the peer.
   */
  private async replay(subscription: ConnectionSubscription<P>, history: readonly BusMessage[], from: Position): Promise<void> {
    // Made at the first message only: an idle subscription keeps no quoted topic name.
    let topicJson: string | undefined
    for (const message of catchUp(history, subscription.pending ?? [], from)) {
      const ready = this.paced()
      if ((ready !== true && !(await ready)) || !subscription.active) return
      this.sendPatchText(patchText((topicJson ??= this.ctx.topics.topicJson(subscription.topic)), message))
      this.ctx.stats.delivered++
    }
    // In the turn the merge ended: nothing can have been held after its last look.
    subscription.pending = null
    if (resyncAfterReplay.delete(subscription)) void this.resync(subscription.topic)
  }

  protected unsubscribe(frame: UnsubscribeFrame): void {
    const subscription = keyedGet(this.subscriptions, frame.topic)
    if (subscription) this.drop(subscription)
    this.send({ type: 'unsubscribed', ...(frame.id === undefined ? {} : { id: frame.id }), topic: frame.topic })
  }

  /** Leaves every topic (the connection closed). */
  protected leaveAll(): void {
    const subscriptions = keyedValues(this.subscriptions)
    this.subscriptions = undefined
    for (const subscription of subscriptions) this.forget(subscription)
  }

  private drop(subscription: ConnectionSubscription<P>): void {
    this.subscriptions = keyedDelete(this.subscriptions, subscription)
    this.forget(subscription)
  }

  private forget(subscription: ConnectionSubscription<P>): void {
    subscription.active = false
    subscription.pending = null
    this.ctx.topics.leave(subscription)
    const held = subscription.presence
    if (held) this.ctx.presence?.local.remove(subscription.topic, held.member, held.watching ? this : undefined)
  }
}
