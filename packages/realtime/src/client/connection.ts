import ReconnectingWebSocket from 'reconnecting-websocket'
import type { RealtimeErrorCode } from '../errors.js'
import { CloseCode, PROTOCOL_VERSION, parseServerFrame, type ClientFrame, type ServerFrame } from '../protocol.js'
import type { ConnectionState, RealtimeClientOptions, WebSocketLike } from './client.js'
import { browserOnline, watchPageLifecycle } from './lifecycle.js'

/** What a connection tells its client. */
export interface ConnectionEvents {
  /** `welcome` came: frames may be sent, subscriptions (re)made. */
  welcome(): void
  /** A server frame about topics: everything but `welcome`, `authenticated` and `pong`. */
  frame(frame: ServerFrame): void
  /** The socket closed: what was on the wire is gone until the next `welcome`. */
  closed(): void
  state(state: ConnectionState): void
  error(code: RealtimeErrorCode, message: string): void
}

/**
 * A client's link to the server: the socket, the handshake, the heartbeat, credentials renewal
 * and the page-lifecycle checks. The client keeps the subscriptions on top of it.
 */
export interface Connection {
  readonly state: ConnectionState
  /** Id the server gave the connection (from `welcome`). */
  readonly connectionId: string | undefined
  /** Whether `welcome` came on the current socket. */
  readonly welcomed: boolean
  /** A request id for a frame to send. */
  nextId(): number
  /** Sends a frame if the socket is open; false if it is not. */
  send(frame: ClientFrame): boolean
  /** Opens the socket if it is not open yet. */
  connect(): void
  /** Drops the socket now and reconnects. */
  reconnect(code?: number, reason?: string): void
  close(): void
}

/** Opens (on `connect()`) and keeps a WebSocket to the server, reconnecting with backoff. */
export function createConnection(options: RealtimeClientOptions, events: ConnectionEvents): Connection {
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
  let heartbeatMs = 25_000

  const WebSocketImpl = withErrorGuard(options.WebSocket ?? (globalThis as { WebSocket?: WebSocketLike }).WebSocket)

  function setState(next: ConnectionState): void {
    if (state === next) return
    state = next
    events.state(next)
  }

  function send(frame: ClientFrame): boolean {
    if (!socket || socket.readyState !== 1) return false
    socket.send(JSON.stringify(frame))
    return true
  }

  async function resolveAuth(): Promise<unknown> {
    return typeof options.auth === 'function' ? await (options.auth as () => unknown)() : options.auth
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
        events.error('UNAUTHORIZED', `auth() failed: ${error instanceof Error ? error.message : String(error)}`)
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
      case 'welcome':
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
        events.welcome()
        return
      case 'authenticated':
        scheduleReauth(frame.expiresAt)
        return
      case 'pong':
        return
      default:
        events.frame(frame)
    }
  }

  function onMessage(event: { data: unknown }): void {
    touch()
    // The answer to a wake check after `online`: the kept socket survived the cut.
    if (welcomed && !offline) setState('connected')
    if (typeof event.data !== 'string') return
    const parsed = parseServerFrame(event.data)
    if (!parsed.ok) {
      events.error('BAD_REQUEST', `unreadable frame from server: ${parsed.message}`)
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
    events.closed()
    if (event.code === CloseCode.Unauthorized) {
      events.error('UNAUTHORIZED', `the server refused the credentials (${event.reason || 'unauthorized'})`)
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
    // Moved by a draining or rebalancing server, which paces these closes: reconnect after 0-100 ms
    // of jitter, not after the backoff (unless an attempt is already under way by then).
    else if (event.code === CloseCode.Reconnect) setTimeout(() => socket!.readyState > 1 && reconnectNow(), Math.random() * 100)
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
      // A getter, read for every attempt: the jitter is drawn per attempt, so clients closed
      // together do not retry together (drawn once per client, a mass close came back as a wave).
      get minReconnectionDelay() {
        return (r.minDelayMs ?? 500) * (1 + Math.random() * 0.5)
      },
      maxReconnectionDelay: r.maxDelayMs ?? 10_000,
      reconnectionDelayGrowFactor: r.growFactor ?? 1.5,
      connectionTimeout: 10_000,
      maxRetries: r.maxRetries ?? Infinity,
    })
    // The `on…` properties rather than listeners: a replaced socket is silenced in one line.
    socket.onopen = onOpen
    socket.onmessage = onMessage as never
    socket.onclose = onClose as never
    // Errors show up as closes too; the listener keeps them from being thrown in some runtimes.
    socket.onerror = ignore
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
      old.onopen = old.onmessage = old.onclose = null
      old.close()
    }
    stopAfterClose = false
    setState(offline ? 'disconnected' : 'connecting')
    connect()
  }

  return {
    get state() {
      return state
    },
    get connectionId() {
      return connectionId
    },
    get welcomed() {
      return welcomed
    },
    nextId: () => ++nextId,
    send,
    connect,
    reconnect: reconnectNow,
    close() {
      if (closed) return
      closed = true
      stopWatchingPage()
      clearTimeout(wakeCheck)
      clearTimeout(idleTimer)
      clearInterval(pingTimer)
      clearTimeout(authTimer)
      socket?.close(CloseCode.Normal, 'client closed')
      setState('disconnected')
    },
  }
}

/**
 * Node's `ws` emits 'error' as an EventEmitter event when a socket still connecting is closed
 * (reconnecting-websocket does that on a reconnect); with no `on('error')` listener that would
 * throw. Browsers' WebSocket has no `on` and needs nothing.
 */
function withErrorGuard(Impl: WebSocketLike | undefined): WebSocketLike {
  if (!Impl) throw new TypeError('No WebSocket implementation: pass `WebSocket` (from "ws") in Node')
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

/** Lets Node exit while a timer is pending (a no-op in browsers). */
export function unref(timer: unknown): void {
  ;(timer as { unref?: () => void }).unref?.()
}
