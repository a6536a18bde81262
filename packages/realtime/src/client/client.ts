import { EventEmitter } from 'eventemitter3'
import ReconnectingWebSocket from 'reconnecting-websocket'
import { RealtimeError, type RealtimeErrorCode } from '../errors.js'
import {
  CloseCode,
  PROTOCOL_VERSION,
  isValidTopic,
  parseServerFrame,
  type ClientFrame,
  type ServerFrame,
} from '../protocol.js'
import type { PatchMessage, Position, TopicMap, TopicName } from '../topics.js'
import { browserOnline, watchPageLifecycle } from './lifecycle.js'
import { TopicSubscription, type Subscription, type SubscriptionState } from './subscription.js'

/** The connection state of a client. The `state` event fires on real changes only. */
export type ConnectionState = 'connecting' | 'connected' | 'disconnected'

/** The events of a realtime client, typed by the app's topic map. */
export interface RealtimeClientEvents<T extends TopicMap> {
  /** A patch on a subscribed topic, in order. */
  patch: (message: PatchMessage<T>) => void
  /** The client could not recover what it missed on `topic`: refetch its state. */
  resync: (topic: TopicName<T>) => void
  state: (state: ConnectionState) => void
  /** A subscription reached the server (`recovered` when missed patches follow). */
  subscribed: (topic: TopicName<T>, info: { recovered: boolean; position: Position }) => void
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
  const emitter = new EventEmitter<RealtimeClientEvents<T>>()
  const subscriptions = new Map<string, TopicSubscription>()
  const pendingUnsubscribe = new Set<string>()
  let state: ConnectionState = 'connecting'
  let connectionId: string | undefined
  let nextId = 0
  let closed = false
  let welcomed = false
  let idleTimer: ReturnType<typeof setTimeout> | undefined
  let pingTimer: ReturnType<typeof setInterval> | undefined
  let authTimer: ReturnType<typeof setTimeout> | undefined
  let stopAfterClose = false
  let socket: ReconnectingWebSocket | undefined
  /** Set by the browser's `offline` event until the network is back: the state reads `disconnected`. */
  let offline = false
  let wakeCheck: ReturnType<typeof setTimeout> | undefined

  const WebSocketImpl = withErrorGuard(options.WebSocket ?? (globalThis as { WebSocket?: WebSocketLike }).WebSocket)

  function setState(next: ConnectionState): void {
    if (state === next) return
    state = next
    emitter.emit('state', next)
  }

  function emitError(code: RealtimeErrorCode, message: string, topic?: string): void {
    const error = new RealtimeError(code, message) as RealtimeError & { topic?: string }
    if (topic !== undefined) error.topic = topic
    if (topic !== undefined) subscriptions.get(topic)?.emit('error', error)
    // An EventEmitter without listeners would be silent; that is what we want for a client.
    emitter.emit('error', error)
  }

  function send(frame: ClientFrame): boolean {
    if (!socket || socket.readyState !== 1) return false
    socket.send(JSON.stringify(frame))
    return true
  }

  async function resolveAuth(): Promise<unknown> {
    return typeof options.auth === 'function' ? await (options.auth as () => unknown)() : options.auth
  }

  function sendSubscribe(sub: TopicSubscription): void {
    clearTimeout(sub.retryTimer)
    sub.retryTimer = undefined
    sub.requestId = ++nextId
    sub.onWire = true
    sub.setState('subscribing')
    sub.sentSince = sub.position !== undefined
    const frame: ClientFrame = { type: 'subscribe', id: sub.requestId, topic: sub.topic }
    if (sub.position) frame.since = sub.position
    send(frame)
  }

  function touch(): void {
    // Any frame proves the connection alive: a pending wake check has its answer.
    clearTimeout(wakeCheck)
    wakeCheck = undefined
    clearTimeout(idleTimer)
    const timeout = options.idleTimeoutMs ?? heartbeatMs * 2
    if (!(timeout > 0)) return
    idleTimer = setTimeout(() => {
      // No frame for too long: the connection is dead even if the socket has not noticed.
      socket?.reconnect(CloseCode.HeartbeatTimeout, 'idle timeout')
    }, timeout)
    unref(idleTimer)
  }
  let heartbeatMs = 25_000

  function onOpen(): void {
    welcomed = false
    void resolveAuth().then(
      (auth) => {
        if (closed || !socket || socket.readyState !== 1) return
        const hello: ClientFrame = { type: 'hello', v: PROTOCOL_VERSION }
        if (auth !== undefined) hello.auth = auth
        send(hello)
      },
      (error: unknown) => {
        emitError('UNAUTHORIZED', `auth() failed: ${error instanceof Error ? error.message : String(error)}`)
        socket?.reconnect()
      },
    )
    touch()
  }

  function scheduleReauth(expiresAt: number | undefined): void {
    clearTimeout(authTimer)
    authTimer = undefined
    if (expiresAt === undefined || typeof options.auth !== 'function') return
    // Renew a little before expiry: at 80% of the remaining time, at most 30 s early.
    const remaining = expiresAt - Date.now()
    const delay = Math.max(0, remaining - Math.min(30_000, remaining * 0.2))
    authTimer = setTimeout(() => {
      void resolveAuth().then(
        (auth) => send({ type: 'auth', id: ++nextId, auth }),
        () => undefined,
      )
    }, delay)
    unref(authTimer)
  }

  function onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case 'welcome': {
        welcomed = true
        offline = false
        connectionId = frame.connectionId
        if (typeof frame.heartbeatMs === 'number' && frame.heartbeatMs > 0) heartbeatMs = frame.heartbeatMs
        touch()
        clearInterval(pingTimer)
        pingTimer = setInterval(() => send({ type: 'ping', id: ++nextId }), heartbeatMs)
        unref(pingTimer)
        scheduleReauth(frame.expiresAt)
        setState('connected')
        for (const sub of subscriptions.values()) if (sub.refs > 0) sendSubscribe(sub)
        return
      }
      case 'authenticated':
        scheduleReauth(frame.expiresAt)
        return
      case 'subscribed': {
        const sub = subscriptions.get(frame.topic)
        // A late reply for a subscription dropped since (refs 0) is stale too.
        if (!sub || sub.refs === 0 || (frame.id !== undefined && frame.id !== sub.requestId)) return
        // An unasked `subscribed` on a live topic: the server's bus lost messages we may not have seen.
        const resync = !frame.recovered && (sub.sentSince || (frame.id === undefined && sub.state === 'subscribed'))
        sub.retries = 0
        const position = { epoch: frame.epoch, offset: frame.offset }
        // Recovered: the missed patches follow and advance the position one by one.
        if (!frame.recovered || !sub.position) sub.position = position
        sub.setState('subscribed')
        const info = { recovered: frame.recovered, position }
        sub.emit('subscribed', info)
        emitter.emit('subscribed', frame.topic as TopicName<T>, info)
        if (resync) {
          sub.emit('resync')
          emitter.emit('resync', frame.topic as TopicName<T>)
        }
        return
      }
      case 'patch': {
        const sub = subscriptions.get(frame.topic)
        if (!sub || sub.state !== 'subscribed') return
        sub.position = { epoch: frame.epoch, offset: frame.offset }
        // The topic's own listeners (hooks) first; client-wide ones see every topic.
        sub.emit('patch', frame as never)
        emitter.emit('patch', frame as unknown as PatchMessage<T>)
        return
      }
      case 'unsubscribed': {
        if (frame.reason === undefined) return
        // Unasked: the server revoked it. Forget it so a later subscribe starts afresh.
        const sub = subscriptions.get(frame.topic)
        if (sub) {
          sub.refs = 0
          sub.emit('unsubscribed', frame.reason)
          forget(sub)
        }
        emitter.emit('unsubscribed', frame.topic as TopicName<T>, frame.reason)
        return
      }
      case 'error': {
        const topic = frame.topic
        const sub = topic === undefined ? undefined : subscriptions.get(topic)
        if (sub && (frame.id === undefined || frame.id === sub.requestId)) {
          if (frame.code === 'INTERNAL' || frame.code === 'RATE_LIMITED') {
            // The server could not serve it now (its bus is down, or we were too fast): retry.
            const delay = SUBSCRIBE_RETRY_MS[Math.min(sub.retries++, SUBSCRIBE_RETRY_MS.length - 1)] as number
            sub.onWire = false
            sub.retryTimer = setTimeout(() => {
              if (subscriptions.get(sub.topic) === sub && sub.refs > 0 && welcomed) sendSubscribe(sub)
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
      case 'pong':
        return
    }
  }

  function onMessage(event: { data: unknown }): void {
    touch()
    // The answer to a wake check after `online`: the kept socket survived the cut.
    if (welcomed && !offline) setState('connected')
    if (typeof event.data !== 'string') return
    const parsed = parseServerFrame(event.data)
    if (!parsed.ok) {
      emitError('BAD_REQUEST', `unreadable frame from server: ${parsed.message}`)
      return
    }
    onFrame(parsed.frame)
  }

  function onClose(event: { code: number; reason?: string }): void {
    // Closed while a wake check was pending: the page is awake and the socket dead, so no backoff.
    const waking = wakeCheck !== undefined
    clearTimeout(wakeCheck)
    wakeCheck = undefined
    welcomed = false
    connectionId = undefined
    clearTimeout(idleTimer)
    clearInterval(pingTimer)
    clearTimeout(authTimer)
    for (const sub of subscriptions.values()) {
      clearTimeout(sub.retryTimer)
      sub.onWire = false
      // Still wanted: it is re-subscribed after the next `welcome`.
      if (sub.state === 'subscribed') sub.setState('subscribing')
    }
    if (event.code === CloseCode.Unauthorized) {
      emitError('UNAUTHORIZED', `the server refused the credentials (${event.reason || 'unauthorized'})`)
      // Reconnecting with the same fixed credentials would be refused again.
      if (typeof options.auth !== 'function') stopAfterClose = true
    }
    if (stopAfterClose || closed) {
      socket?.close()
      setState('disconnected')
      return
    }
    setState(offline ? 'disconnected' : 'connecting')
    if (waking && !offline) queueMicrotask(() => reconnectNow())
  }

  /**
   * The page is back (visible, shown, online, resumed). A socket that died while it slept would
   * be noticed only by the idle timeout (twice the heartbeat), and one waiting out a backoff only
   * when the wait ends: check now. Waiting: connect now. Open (or connecting): a `ping` when
   * welcomed, and reconnect if no frame comes within `wakeCheckTimeoutMs`.
   */
  function onWake(): void {
    if (closed || stopAfterClose || !browserOnline()) return
    offline = false
    // A lazy client not connected yet: only the state to restore.
    if (!socket) return setState('connecting')
    // CLOSING or CLOSED: waiting out a backoff delay. (Wake events come in bunches: only this
    // case replaces the socket, so the next ones do not restart an attempt already under way.)
    if (socket.readyState >= 2) return reconnectNow()
    if (state === 'disconnected') setState('connecting')
    if (wakeCheck !== undefined) return
    wakeCheck = setTimeout(() => {
      wakeCheck = undefined
      reconnectNow(CloseCode.HeartbeatTimeout, 'no answer after wake')
    }, options.wakeCheckTimeoutMs ?? 2000)
    unref(wakeCheck)
    if (welcomed) send({ type: 'ping', id: ++nextId })
  }

  function onOffline(): void {
    if (closed || stopAfterClose) return
    offline = true
    // Said at once, so the page does not show stale data as live; the socket is kept (a short
    // cut may not have broken it) and checked when the network is back.
    setState('disconnected')
  }

  const stopWatchingPage = options.wakeCheckTimeoutMs === 0 ? () => undefined : watchPageLifecycle({ wake: onWake, offline: onOffline })

  function connect(): void {
    if (socket || closed) return
    const r = options.reconnect ?? {}
    socket = new ReconnectingWebSocket(options.url as string | (() => Promise<string>), [], {
      WebSocket: WebSocketImpl,
      minReconnectionDelay: (r.minDelayMs ?? 500) * (1 + Math.random() * 0.5),
      maxReconnectionDelay: r.maxDelayMs ?? 10_000,
      reconnectionDelayGrowFactor: r.growFactor ?? 1.5,
      connectionTimeout: 10_000,
      maxRetries: r.maxRetries ?? Infinity,
    })
    socket.addEventListener('open', onOpen)
    socket.addEventListener('message', onMessage as never)
    socket.addEventListener('close', onClose as never)
    // Errors show up as closes too; the listener keeps them from being thrown in some runtimes.
    socket.addEventListener('error', ignore)
  }

  /**
   * Reconnects now, whatever the socket is doing. An open socket is dropped and reconnected at
   * once by reconnecting-websocket itself; one waiting out a backoff delay cannot be: it holds a
   * connect lock until the wait ends. That one is closed for good (its pending wait then creates
   * nothing) and replaced by a fresh socket, which connects with no delay.
   */
  function reconnectNow(code?: number, reason?: string): void {
    if (closed) return
    clearTimeout(wakeCheck)
    wakeCheck = undefined
    if (socket && socket.readyState === 1) return socket.reconnect(code, reason)
    const old = socket
    socket = undefined
    if (old) {
      old.removeEventListener('open', onOpen)
      old.removeEventListener('message', onMessage as never)
      old.removeEventListener('close', onClose as never)
      old.removeEventListener('error', ignore)
      old.close()
    }
    stopAfterClose = false
    setState(offline ? 'disconnected' : 'connecting')
    connect()
  }

  function flushUnsubscribes(): void {
    for (const topic of pendingUnsubscribe) {
      const sub = subscriptions.get(topic)
      if (!sub || sub.refs > 0) continue
      if (sub.onWire && welcomed) send({ type: 'unsubscribe', id: ++nextId, topic })
      forget(sub)
    }
    pendingUnsubscribe.clear()
  }

  /** Ends a subscription with no references: a later subscribe starts afresh (no `since`). */
  function forget(sub: TopicSubscription): void {
    clearTimeout(sub.retryTimer)
    sub.onWire = false
    sub.position = undefined
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
        if (welcomed && !sub.onWire) sendSubscribe(sub)
      }
      connect()
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

  if (!options.lazy) connect()

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
      emitter.on(event, listener as never)
      return () => {
        emitter.off(event, listener as never)
      }
    },
    off(event, listener) {
      emitter.off(event, listener as never)
    },
    position(topic) {
      return subscriptions.get(topic)?.position
    },
    subscriptionState(topic) {
      return subscriptions.get(topic)?.state ?? 'unsubscribed'
    },
    topics() {
      return [...subscriptions.values()].filter((s) => s.refs > 0).map((s) => s.topic as TopicName<T>)
    },
    get state() {
      return state
    },
    get connectionId() {
      return connectionId
    },
    reconnect() {
      reconnectNow()
    },
    close() {
      if (closed) return
      closed = true
      stopWatchingPage()
      clearTimeout(wakeCheck)
      clearTimeout(idleTimer)
      clearInterval(pingTimer)
      clearTimeout(authTimer)
      for (const sub of subscriptions.values()) {
        clearTimeout(sub.retryTimer)
        sub.setState('unsubscribed')
      }
      socket?.close(CloseCode.Normal, 'client closed')
      setState('disconnected')
    },
  }
  return client
}

/**
 * Node's `ws` emits 'error' as an EventEmitter event when a socket still connecting is closed
 * (reconnecting-websocket does that on a reconnect); with no `on('error')` listener that would
 * throw. Browsers' WebSocket has no `on` and needs nothing.
 */
function withErrorGuard(Impl: WebSocketLike | undefined): WebSocketLike {
  if (!Impl) throw new TypeError('No WebSocket implementation: pass `WebSocket` (e.g. from the "ws" package) in Node')
  if (typeof (Impl.prototype as { on?: unknown } | undefined)?.on !== 'function') return Impl
  const Base = Impl as new (url: string, protocols?: string | string[]) => { on(event: string, fn: () => void): void }
  return class GuardedWebSocket extends Base {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols)
      this.on('error', () => undefined)
    }
  }
}

function ignore(): void {}

function unref(timer: unknown): void {
  ;(timer as { unref?: () => void }).unref?.()
}
