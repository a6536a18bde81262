import { RealtimeError, type RealtimeErrorCode } from '../errors.js'
import { isValidTopic, type ClientFrame, type PresenceMember, type ServerFrame } from '../protocol.js'
import type { PatchMessage, Position, TopicMap, TopicName } from '../topics.js'
import { createConnection, unref, type ConnectionEvents } from './connection.js'
import { Emitter } from './emitter.js'
import { compareOffsets, createSharedConnection } from './shared.js'
import { TopicSubscription, type PresenceChange, type SubscribedInfo, type Subscription, type SubscriptionState } from './subscription.js'

/** The connection state of a client. The `state` event fires on real changes only. */
export type ConnectionState = 'connecting' | 'connected' | 'disconnected'

/** The events of a realtime client, typed by the app's topic map. */
export interface RealtimeClientEvents<T extends TopicMap> {
  /** A patch on a subscribed topic, in order. */
  patch: (message: PatchMessage<T>) => void
  /** The client could not recover what it missed on `topic`: refetch its state. */
  resync: (topic: TopicName<T>) => void
  state: (state: ConnectionState) => void
  /**
   * A subscription reached the server (`recovered` when missed patches follow; `state` on a state
   * topic that was not recovered: its current state, so no `resync` follows).
   */
  subscribed: (topic: TopicName<T>, info: SubscribedInfo<T[TopicName<T>]>) => void
  /** Members of a subscribed presence topic joined or left. */
  presence: (topic: TopicName<T>, change: PresenceChange) => void
  /** The server removed a subscription (`reason`, e.g. 'forbidden' or 'revoked'). */
  unsubscribed: (topic: TopicName<T>, reason: string) => void
  error: (error: RealtimeError & { topic?: string }) => void
}

/** The WebSocket constructor to use: the browser's by default, `ws` in Node. */
export type WebSocketLike = new (url: string, protocols?: string | string[]) => unknown

/** Options of `createRealtimeClient`. */
export interface RealtimeClientOptions {
  /** ws:// or wss:// URL of the server's endpoint, e.g. `wss://example.com/ws`. */
  url: string | (() => string | Promise<string>)
  /** Credentials sent in `hello`; a function is called on every (re)connect and before expiry. */
  auth?: unknown | (() => unknown | Promise<unknown>)
  /** A WebSocket implementation (pass `ws` in Node < 22). Default: `globalThis.WebSocket`. */
  WebSocket?: WebSocketLike
  /** Reconnect backoff. Defaults: 500 ms to 10 s, growing 1.5×, with jitter. */
  reconnect?: {
    minDelayMs?: number
    maxDelayMs?: number
    growFactor?: number
    /** Give up after this many attempts. Default: never. */
    maxRetries?: number
  }
  /** Close the connection when no frame came for this long (default: 2 × the server's heartbeat). */
  idleTimeoutMs?: number
  /** Connect on creation (default) or on the first `subscribe`. */
  lazy?: boolean
  /**
   * In a browser, check the connection when the page wakes up (visible again, `pageshow`,
   * `online`, `resume`): a `ping` that must be answered within this time, or the client
   * reconnects and recovers at once. `0` turns the page-lifecycle handling off. Default: 2000.
   */
  wakeCheckTimeoutMs?: number
  /**
   * One WebSocket for every tab of the origin that passes the same `key`: the tabs elect one to
   * hold it and the others subscribe through it (Web Locks and BroadcastChannel; where either is
   * missing, as in Node, each client keeps its own socket). The tabs share the leader's `auth`:
   * the key must differ wherever the credentials do, e.g. the signed-in user's id.
   */
  shared?: { key: string }
}

/** A realtime client. Topics and payloads are checked against `T`. */
export interface RealtimeClient<T extends TopicMap = TopicMap> {
  /**
   * The subscription object of `topic`: the same object while it is held or listened to. It holds
   * no reference until its `subscribe()`. Throws `INVALID_TOPIC` for a bad name.
   */
  subscription<K extends TopicName<T>>(topic: K): Subscription<T, K>
  /** Adds a reference to `topic`; the first one subscribes on the wire. */
  subscribe<K extends TopicName<T>>(topic: K): void
  /** Drops a reference; the last one unsubscribes on the wire. */
  unsubscribe<K extends TopicName<T>>(topic: K): void
  on<E extends keyof RealtimeClientEvents<T>>(event: E, listener: RealtimeClientEvents<T>[E]): () => void
  off<E extends keyof RealtimeClientEvents<T>>(event: E, listener: RealtimeClientEvents<T>[E]): void
  /**
   * The members of presence topic `topic`, which this client must be subscribed to (wait for its
   * `subscribed`). Rejects with the server's error (`BAD_REQUEST`: not subscribed, or no presence
   * on the topic), with `CLOSED` when the connection is not up or drops before the reply, and with
   * `TIMEOUT` after `timeoutMs` (default 10 000).
   */
  members<I = Record<string, unknown>>(topic: TopicName<T>, timeoutMs?: number): Promise<PresenceMember<I>[]>
  /** The last position seen on `topic` (what a re-subscribe sends as `since`). */
  position(topic: TopicName<T>): Position | undefined
  subscriptionState(topic: TopicName<T>): SubscriptionState
  /** Topics with at least one reference. */
  topics(): TopicName<T>[]
  readonly state: ConnectionState
  /** Id the server gave this connection (from `welcome`). */
  readonly connectionId: string | undefined
  /** Drops the connection now and reconnects (re-subscribing with positions). */
  reconnect(): void
  /** Closes for good. */
  close(): void
}

/** How long to wait before retrying a subscribe the server could not serve (bus down). */
const SUBSCRIBE_RETRY_MS = [500, 1000, 2000, 5000]

/**
 * Creates a client that connects, says hello, and keeps every subscribed topic live across
 * reconnects: it re-subscribes each topic with its last position, so the server sends what was
 * missed, or the client emits `resync` for the topic.
 */
export function createRealtimeClient<T extends TopicMap = TopicMap>(
  options: RealtimeClientOptions,
): RealtimeClient<T> {
  const emitter = new Emitter<RealtimeClientEvents<T>>()
  const subscriptions = new Map<string, TopicSubscription>()
  /** `members` requests waiting for their reply, by id (strings: apart from the subscribes' ids). */
  const requests = new Map<string, (error: RealtimeError | undefined, members?: PresenceMember[]) => void>()
  let lastRequest = 0
  const pendingUnsubscribe = new Set<string>()
  let closed = false

  function emitError(code: RealtimeErrorCode, message: string, topic?: string): void {
    const error = new RealtimeError(code, message) as RealtimeError & { topic?: string }
    if (topic !== undefined) error.topic = topic
    if (topic !== undefined) subscriptions.get(topic)?.emit('error', error)
    // An EventEmitter without listeners would be silent; that is what we want for a client.
    emitter.emit('error', error)
  }

  function failRequests(why: string): void {
    for (const settle of [...requests.values()]) settle(new RealtimeError('CLOSED', why))
  }

  function sendSubscribe(sub: TopicSubscription, since = sub.position): void {
    clearTimeout(sub.retryTimer)
    sub.retryTimer = undefined
    sub.requestId = connection.nextId()
    sub.onWire = true
    sub.setState('subscribing')
    sub.sentSince = since !== undefined
    const frame: ClientFrame = { type: 'subscribe', id: sub.requestId, topic: sub.topic }
    if (since) frame.since = since
    connection.send(frame)
  }

  function onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case 'subscribed': {
        const sub = subscriptions.get(frame.topic)
        // A late reply for a subscription dropped since (refs 0) is stale too.
        if (!sub || sub.refs === 0 || (frame.id !== undefined && frame.id !== sub.requestId)) return
        const { state } = frame
        // An unasked `subscribed` on a live topic: the server's bus lost messages we may not have
        // seen. With the topic's state, though, nothing needs refetching.
        const resync = !frame.recovered && state === undefined && (sub.sentSince || (frame.id === undefined && sub.state === 'subscribed'))
        sub.retries = 0
        const position = { epoch: frame.epoch, offset: frame.offset }
        // Recovered: the missed patches follow and advance the position one by one.
        if (!frame.recovered || !sub.position) sub.position = position
        const info: SubscribedInfo = { recovered: frame.recovered, position }
        if (state !== undefined) info.state = sub.value = state
        // Not recovered and no state: the server holds none (now), whatever this tab had.
        else if (!frame.recovered) sub.value = undefined
        if (!frame.recovered) sub.stateful = state !== undefined
        sub.setState('subscribed')
        sub.emit('subscribed', info)
        // Client-wide events are about this tab's own topics, not those a leader holds for others.
        if (sub.refs > sub.remote) emitter.emit('subscribed', frame.topic as TopicName<T>, info as never)
        if (resync) {
          sub.emit('resync')
          if (sub.refs > sub.remote) emitter.emit('resync', frame.topic as TopicName<T>)
        }
        return
      }
      case 'patch': {
        const sub = subscriptions.get(frame.topic)
        const at = sub?.position
        if (!sub || sub.state !== 'subscribed') return
        // A shared connection replays for a tab that was behind, and a takeover may relay a patch
        // twice: each tab drops what it has seen.
        if (shared && at?.epoch === frame.epoch && compareOffsets(frame.offset, at.offset) <= 0) return
        sub.position = { epoch: frame.epoch, offset: frame.offset }
        // On a state topic each payload is the whole state.
        if (sub.stateful) sub.value = frame.payload
        // The topic's own listeners (hooks) first; client-wide ones see every topic.
        sub.emit('patch', frame as never)
        if (sub.refs > sub.remote) emitter.emit('patch', frame as unknown as PatchMessage<T>)
        return
      }
      case 'unsubscribed': {
        if (frame.reason === undefined) return
        // Unasked: the server revoked it. Forget it so a later subscribe starts afresh.
        const sub = subscriptions.get(frame.topic)
        const own = !sub || sub.refs > sub.remote
        if (sub) {
          sub.refs = 0
          sub.emit('unsubscribed', frame.reason)
          forget(sub)
        }
        if (own) emitter.emit('unsubscribed', frame.topic as TopicName<T>, frame.reason)
        return
      }
      case 'members':
        return requests.get(frame.id as string)?.(undefined, frame.members)
      case 'presence': {
        const sub = subscriptions.get(frame.topic)
        if (!sub?.refs) return
        const change = { join: frame.join ?? [], leave: frame.leave ?? [] }
        sub.emit('presence', change)
        if (sub.refs > sub.remote) emitter.emit('presence', frame.topic as TopicName<T>, change)
        return
      }
      case 'error': {
        const request = requests.get(frame.id as string)
        if (request) return request(new RealtimeError(frame.code, frame.message))
        const topic = frame.topic
        const sub = topic === undefined ? undefined : subscriptions.get(topic)
        if (sub && (frame.id === undefined || frame.id === sub.requestId)) {
          if (frame.code === 'INTERNAL' || frame.code === 'RATE_LIMITED') {
            // The server could not serve it now (its bus is down, or we were too fast): retry.
            const delay = SUBSCRIBE_RETRY_MS[Math.min(sub.retries++, SUBSCRIBE_RETRY_MS.length - 1)] as number
            sub.onWire = false
            sub.retryTimer = setTimeout(() => {
              if (subscriptions.get(sub.topic) === sub && sub.refs > 0 && connection.welcomed) sendSubscribe(sub)
            }, delay)
            unref(sub.retryTimer)
            emitError(frame.code, frame.message, topic)
          } else {
            sub.onWire = false
            // The error first, so a `ready()` waiting on the state can say why.
            emitError(frame.code, frame.message, topic)
            sub.setState('unsubscribed')
          }
          return
        }
        emitError(frame.code, frame.message, topic)
        return
      }
    }
  }

  const events: ConnectionEvents = {
    welcome() {
      for (const sub of subscriptions.values()) if (sub.refs > 0) sendSubscribe(sub)
    },
    frame: onFrame,
    closed() {
      failRequests('the connection closed before the reply')
      for (const sub of subscriptions.values()) {
        clearTimeout(sub.retryTimer)
        sub.onWire = false
        // Still wanted: it is re-subscribed after the next `welcome`.
        if (sub.state === 'subscribed') sub.setState('subscribing')
      }
    },
    state: (state) => emitter.emit('state', state),
    error: emitError,
  }
  const shared =
    options.shared &&
    createSharedConnection(
      options.shared.key,
      {
        get: (topic) => subscriptions.get(topic),
        retain(topic, since) {
          const sub = subscriptionOf(topic)
          // A topic new to this tab starts where that tab is.
          sub.position ??= since
          sub.remote++
          host.retain(sub)
        },
        release(topic) {
          const sub = subscriptions.get(topic)
          if (!sub?.remote) return
          sub.remote--
          host.release(sub)
        },
        replay: sendSubscribe,
      },
      events,
      (relay) => createConnection(options, relay),
    )
  const connection = shared || createConnection(options, events)

  function flushUnsubscribes(): void {
    for (const topic of pendingUnsubscribe) {
      const sub = subscriptions.get(topic)
      if (!sub || sub.refs > 0) continue
      if (sub.onWire && connection.welcomed) connection.send({ type: 'unsubscribe', id: connection.nextId(), topic })
      forget(sub)
    }
    pendingUnsubscribe.clear()
  }

  /** Ends a subscription with no references: a later subscribe starts afresh (no `since`). */
  function forget(sub: TopicSubscription): void {
    clearTimeout(sub.retryTimer)
    sub.onWire = false
    sub.position = sub.value = undefined
    sub.stateful = false
    sub.remote = 0
    sub.retries = 0
    sub.setState('unsubscribed')
    // Kept while someone listens, so a held object stays the topic's object.
    if (!sub.listened && subscriptions.get(sub.topic) === sub) subscriptions.delete(sub.topic)
  }

  const host = {
    retain(sub: TopicSubscription): void {
      if (closed) {
        // Not a throw: a React effect re-run against a closed client (StrictMode, a stale
        // provider) must not crash the tree. The app still hears of it.
        emitError('CLOSED', `subscribe("${sub.topic}") on a closed client: ignored`, sub.topic)
        return
      }
      const current = subscriptions.get(sub.topic)
      // A forgotten object held by the app: the topic's current object takes the reference.
      if (current && current !== sub) return host.retain(current)
      if (!current) subscriptions.set(sub.topic, sub)
      sub.refs++
      if (sub.refs === 1) {
        if (sub.state === 'unsubscribed') sub.setState('subscribing')
        if (connection.welcomed && !sub.onWire) sendSubscribe(sub)
      }
      connection.connect()
    },
    release(sub: TopicSubscription): void {
      const current = subscriptions.get(sub.topic)
      if (current && current !== sub) return host.release(current)
      if (sub.refs === 0) return
      sub.refs--
      if (sub.refs > 0) return
      // Deferred: a resubscribe in the same tick (React StrictMode's remount) keeps the one wire
      // subscription instead of unsubscribing and subscribing again.
      if (pendingUnsubscribe.size === 0) queueMicrotask(flushUnsubscribes)
      pendingUnsubscribe.add(sub.topic)
    },
  }

  function subscriptionOf(topic: string): TopicSubscription {
    if (!isValidTopic(topic)) throw new RealtimeError('INVALID_TOPIC', `invalid topic ${JSON.stringify(String(topic).slice(0, 50))}`)
    let sub = subscriptions.get(topic)
    if (!sub) {
      sub = new TopicSubscription(topic, host)
      subscriptions.set(topic, sub)
    }
    return sub
  }

  if (!options.lazy) connection.connect()

  const client: RealtimeClient<T> = {
    subscription(topic) {
      return subscriptionOf(topic) as unknown as Subscription<T, typeof topic>
    },
    subscribe(topic) {
      if (closed) return host.retain(new TopicSubscription(topic, host))
      subscriptionOf(topic).subscribe()
    },
    unsubscribe(topic) {
      subscriptions.get(topic)?.unsubscribe()
    },
    on(event, listener) {
      emitter.on(event, listener)
      return () => emitter.off(event, listener)
    },
    off(event, listener) {
      emitter.off(event, listener)
    },
    members<I>(topic: string, timeoutMs = 10_000) {
      return new Promise<PresenceMember<I>[]>((resolve, reject) => {
        const id = `m${++lastRequest}`
        const timer = setTimeout(() => settle(new RealtimeError('TIMEOUT', `no members of "${topic}" within ${timeoutMs} ms`)), timeoutMs)
        unref(timer)
        const settle = (error: RealtimeError | undefined, members?: PresenceMember[]) => {
          clearTimeout(timer)
          requests.delete(id)
          if (error) reject(error)
          else resolve(members as PresenceMember<I>[])
        }
        requests.set(id, settle)
        if (!isValidTopic(topic)) settle(new RealtimeError('INVALID_TOPIC', `invalid topic ${JSON.stringify(String(topic).slice(0, 50))}`))
        else if (closed || !connection.welcomed || !connection.send({ type: 'members', id, topic })) settle(new RealtimeError('CLOSED', 'not connected'))
      })
    },
    position(topic) {
      return subscriptions.get(topic)?.position
    },
    subscriptionState(topic) {
      return subscriptions.get(topic)?.state ?? 'unsubscribed'
    },
    topics() {
      return [...subscriptions.values()].filter((s) => s.refs > s.remote).map((s) => s.topic as TopicName<T>)
    },
    get state() {
      return connection.state
    },
    get connectionId() {
      return connection.connectionId
    },
    reconnect() {
      connection.reconnect()
    },
    close() {
      if (closed) return
      closed = true
      failRequests('the client closed')
      for (const sub of subscriptions.values()) {
        clearTimeout(sub.retryTimer)
        sub.setState('unsubscribed')
      }
      connection.close()
    },
  }
  return client
}
