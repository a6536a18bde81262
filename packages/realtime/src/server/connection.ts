import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocket } from 'ws'
import { compareOffsets, type Bus, type BusMessage } from '../bus/types.js'
import {
  CloseCode,
  ErrorCode,
  PROTOCOL_VERSION,
  parseClientFrame,
  type AuthFrame,
  type ErrorFrame,
  type FrameId,
  type HelloFrame,
  type ServerFrame,
  type SubscribeFrame,
  type UnsubscribeFrame,
} from '../protocol.js'
import { uncorkAtEndOfTick } from './cork.js'
import { TokenBucket, bucketClockMs, takeToken } from './limits.js'
import { count, type StatsCounters } from './stats.js'
import type { LocalTopics, Subscription } from './topics.js'
import type { ExpiringPrincipal, Limits, Logger, Principal, RealtimeServerOptions } from './types.js'

/** What a connection needs from its server. */
export interface ConnectionContext {
  bus: Bus
  topics: LocalTopics
  stats: StatsCounters
  limits: Required<Limits>
  logger: Logger
  heartbeatMs: number
  authenticate: RealtimeServerOptions['authenticate']
  authorize: RealtimeServerOptions['authorize']
  onClosed(connection: Connection): void
}

const SEND_OPTIONS = { binary: false, compress: false } as const
/** How long a closing socket may take to flush its close frame before it is destroyed. */
const CLOSE_GRACE_MS = 1000
/** Frames (and their bytes) held while `hello` is being authenticated. */
const MAX_QUEUED_FRAMES = 256
const MAX_QUEUED_BYTES = 1024 * 1024
/** How long a history replay waits for a peer that stopped reading before closing it 4008. */
const REPLAY_DRAIN_TIMEOUT_MS = 10_000

/** The close code `ws` sends for each error of a peer's frames. */
const WS_ERROR_CLOSE_CODES: Record<string, number> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: CloseCode.MessageTooBig,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: CloseCode.MessageTooBig,
  WS_ERR_TOO_MANY_BUFFERED_PARTS: CloseCode.PolicyViolation,
  WS_ERR_INVALID_UTF8: CloseCode.InvalidFramePayload,
  WS_ERR_INVALID_OPCODE: CloseCode.ProtocolError,
  WS_ERR_INVALID_CLOSE_CODE: CloseCode.ProtocolError,
  WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH: CloseCode.ProtocolError,
  WS_ERR_EXPECTED_FIN: CloseCode.ProtocolError,
  WS_ERR_EXPECTED_MASK: CloseCode.ProtocolError,
  WS_ERR_UNEXPECTED_MASK: CloseCode.ProtocolError,
  WS_ERR_UNEXPECTED_RSV_1: CloseCode.ProtocolError,
  WS_ERR_UNEXPECTED_RSV_2_3: CloseCode.ProtocolError,
}

function isExpiring(value: unknown): value is ExpiringPrincipal {
  return (
    typeof value === 'object' &&
    value !== null &&
    'principal' in value &&
    typeof (value as { expiresAt?: unknown }).expiresAt === 'number'
  )
}

/** A subscription of this connection, with what the protocol needs to answer for it. */
interface ConnectionSubscription extends Subscription {
  /** False once unsubscribed or closed: async steps of a pending subscribe check it. */
  active: boolean
}

let nextConnectionNumber = 0
/** Makes connection ids unique across processes (instances, restarts); the number, within one. */
const CONNECTION_ID_PREFIX = Math.random().toString(36).slice(2, 8)

const CONNECTION = Symbol('realtime.connection')

/**
 * The server's sockets (`WebSocketServer`'s `WebSocket` option): `ws` reports a socket's events by
 * calling its `emit`, which hands the four the connection needs straight to it. So a connection
 * registers no listener, and its socket carries no listener table (a dictionary of four entries,
 * about 250 bytes, on each of thousands of idle sockets). Other events, and events before the
 * connection is attached, go through `EventEmitter` as usual; `close` goes to both.
 */
export class RealtimeSocket extends WebSocket {
  declare [CONNECTION]: Connection | undefined

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const connection = this[CONNECTION]
    if (connection !== undefined) {
      switch (event) {
        case 'message':
          connection.onMessage(args[0] as Buffer, args[1] as boolean)
          return true
        case 'pong':
          connection.alive = true
          return true
        case 'error':
          connection.onSocketError(args[0] as Error)
          return true
        case 'close':
          connection.onClose(args[0] as number)
          super.emit(event, ...args)
          return true
      }
    }
    return super.emit(event, ...args)
  }
}

/** Bits of `Connection.flags`: five booleans in one field. */
const CLOSED = 1
const ALIVE = 2
const CORKED = 4
const AUTHENTICATED = 8
const HELLO_PENDING = 16

/**
 * What only some connections need (those with `authenticate`, a pending `hello`, bad frames, or
 * that are closing), created at the first need: an idle connection does not carry these fields.
 */
interface ConnectionExtras {
  principal: Principal
  /**
   * The upgrade request, kept only where `authenticate` will need it (for `hello` and `auth`):
   * an IncomingMessage held for a connection's lifetime costs kilobytes per idle connection.
   */
  request: IncomingMessage | undefined
  /** Frames that came while `hello` was being authenticated (created only then). */
  queuedFrames: string[] | undefined
  queuedBytes: number
  /** The bad-frame budget, created at the first bad frame (most connections never send one). */
  badFrames: TokenBucket | undefined
  expiryTimer: ReturnType<typeof setTimeout> | undefined
  handshakeTimer: ReturnType<typeof setTimeout> | undefined
  closeTimer: ReturnType<typeof setTimeout> | undefined
  /** The close code counted for this connection (what the server sent, or what ended the socket). */
  closeCode: number | undefined
}
/**
 * One client connection: parses its frames, runs hello/auth, subscribes and unsubscribes it, and
 * sends it frames with backpressure. Written against `ws`' WebSocket, of which it uses `send`,
 * `close`, `terminate`, `ping`, `bufferedAmount` and `readyState`.
 */
export class Connection {
  /** This connection's number in the process; `id` is made from it when asked for. */
  private readonly number: number
  /** CLOSED, ALIVE, CORKED, AUTHENTICATED and HELLO_PENDING. */
  private flags: number
  /** The subscription while the connection has at most one (most do): no Map for it. */
  private one: ConnectionSubscription | undefined = undefined
  /** Every subscription by topic, once a second one came. */
  private many: Map<string, ConnectionSubscription> | undefined = undefined
  /**
   * The frame budget (a token bucket of `frameBurst` tokens refilled at `framesPerSecond`) as one
   * number: when the bucket is full again. See `takeToken`.
   */
  private framesFullAt: number
  private extras: ConnectionExtras | undefined = undefined

  constructor(
    readonly socket: RealtimeSocket,
    /** The TCP socket under `socket`: corked per tick so that a tick's frames go in one write. */
    private readonly raw: Duplex,
    request: IncomingMessage,
    readonly address: string,
    private readonly ctx: ConnectionContext,
  ) {
    this.number = ++nextConnectionNumber
    this.flags = ctx.authenticate ? ALIVE : ALIVE | AUTHENTICATED
    const { limits } = ctx
    this.framesFullAt = bucketClockMs()
    if (ctx.authenticate) {
      const extras = this.more()
      extras.request = request
      extras.handshakeTimer = setTimeout(() => {
        if (!(this.flags & AUTHENTICATED)) this.close(CloseCode.HandshakeTimeout, 'hello timeout')
      }, limits.handshakeTimeoutMs)
    }
    // From here on the socket hands its events (including 'error', which would otherwise crash
    // the process) to this connection.
    socket[CONNECTION] = this
  }

  /** The connection's id, for logs and `welcome`: not stored, so an idle connection does not keep a string for it. */
  get id(): string {
    return `${CONNECTION_ID_PREFIX}-${this.number.toString(36)}`
  }

  private more(): ConnectionExtras {
    return (this.extras ??= {
      principal: undefined,
      request: undefined,
      queuedFrames: undefined,
      queuedBytes: 0,
      badFrames: undefined,
      expiryTimer: undefined,
      handshakeTimer: undefined,
      closeTimer: undefined,
      closeCode: undefined,
    })
  }

  /** What `authenticate` returned (without its expiry); undefined without `authenticate`. */
  get principal(): Principal {
    return this.extras?.principal
  }

  /** The upgrade request, kept only where `authenticate` will need it. */
  get request(): IncomingMessage | undefined {
    return this.extras?.request
  }

  /** The close code counted for this connection (what the server sent, or what ended the socket). */
  get closeCode(): number | undefined {
    return this.extras?.closeCode
  }

  /** Cleared by each heartbeat, set by every pong and frame. */
  get alive(): boolean {
    return (this.flags & ALIVE) !== 0
  }

  set alive(value: boolean) {
    this.flags = value ? this.flags | ALIVE : this.flags & ~ALIVE
  }

  private get closed(): boolean {
    return (this.flags & CLOSED) !== 0
  }

  /** Marks the connection closed and counts its close code. */
  private markClosed(code: number): void {
    this.flags |= CLOSED
    this.more().closeCode = code
    count(this.ctx.stats.closes, code)
  }

  private subscription(topic: string): ConnectionSubscription | undefined {
    if (this.many !== undefined) return this.many.get(topic)
    const one = this.one
    return one !== undefined && one.topic === topic ? one : undefined
  }

  private addSubscription(subscription: ConnectionSubscription): void {
    if (this.many !== undefined) this.many.set(subscription.topic, subscription)
    else if (this.one === undefined || this.one.topic === subscription.topic) this.one = subscription
    else {
      this.many = new Map([
        [this.one.topic, this.one],
        [subscription.topic, subscription],
      ])
      this.one = undefined
    }
  }

  /** Removes `subscription` if it is still the connection's subscription to its topic. */
  private removeSubscription(subscription: ConnectionSubscription): void {
    if (this.many !== undefined) {
      if (this.many.get(subscription.topic) !== subscription) return
      this.many.delete(subscription.topic)
      if (this.many.size === 0) this.many = undefined
    } else if (this.one === subscription) this.one = undefined
  }

  private allSubscriptions(): ConnectionSubscription[] {
    if (this.many !== undefined) return [...this.many.values()]
    return this.one === undefined ? [] : [this.one]
  }

  get subscriptionCount(): number {
    return this.many !== undefined ? this.many.size : this.one !== undefined ? 1 : 0
  }

  /**
   * @internal Ends the tick's cork: the frames of the tick leave in one write. Also called early
   * when the corked frames pass the buffer limit; the later call from the tick's flush is then a
   * no-op (uncorking a socket that is not corked does nothing).
   */
  uncorkTick(): void {
    if (!(this.flags & CORKED)) return
    this.flags &= ~CORKED
    this.raw.uncork()
  }

  /**
   * Whether a frame may be written now: the connection is open and its peer not too far behind
   * (else it is closed 4008). Corks the socket for the rest of the tick at its first frame.
   */
  private writable(): boolean {
    const socket = this.socket
    if (this.flags & CLOSED || socket.readyState !== 1) return false
    if (socket.bufferedAmount > this.ctx.limits.maxBufferedBytes) {
      // Part of it may only be this tick's corked frames: hand them to the kernel first, and
      // call the peer slow only if they do not fit there either.
      this.uncorkTick()
      if (socket.bufferedAmount > this.ctx.limits.maxBufferedBytes) {
        this.slow()
        return false
      }
    }
    if (!(this.flags & CORKED)) {
      this.flags |= CORKED
      this.raw.cork()
      uncorkAtEndOfTick(this)
    }
    return true
  }

  /** Sends one text frame unless the peer is too far behind, in which case it is closed 4008. */
  sendFrame(frame: Buffer | string): void {
    if (!this.writable()) return
    this.socket.send(frame, SEND_OPTIONS)
    const stats = this.ctx.stats
    stats.messagesOut++
    stats.bytesOut += frame.length
  }

  /**
   * Sends a patch of the live fanout, already framed (`textFrame`): written to the TCP socket as
   * is, the same buffer for every subscriber, where `ws` would frame the payload again for each
   * socket and write a header and the payload. The bytes on the wire are the same. Safe to mix
   * with `ws`' own writes because `ws` never holds frames back here: without permessage-deflate
   * (the server turns it off) and without Blobs, its sender writes every frame at once, so frames
   * leave in call order.
   */
  sendPatch(frame: Buffer, payloadBytes: number): void {
    if (!this.writable()) return
    this.raw.write(frame)
    const stats = this.ctx.stats
    stats.messagesOut++
    stats.bytesOut += payloadBytes
  }

  send(frame: ServerFrame): void {
    this.sendFrame(JSON.stringify(frame))
  }

  /** Closes with a code; a peer that does not complete the close in time is destroyed. */
  close(code: number, reason: string): void {
    if (this.closed) return
    this.markClosed(code)
    this.detach()
    try {
      this.socket.close(code, reason)
    } catch {
      this.socket.terminate()
    }
    const closeTimer = setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS)
    closeTimer.unref?.()
    this.more().closeTimer = closeTimer
  }

  /**
   * Closes a peer that cannot keep up: its send buffer passed `maxBufferedBytes`, or a catch-up
   * (history replay) fell too far behind the live messages held for it.
   */
  slow(): void {
    if (this.closed) return
    count(this.ctx.stats.drops, 'slow_consumer')
    this.close(CloseCode.SlowConsumer, 'slow consumer')
  }

  /**
   * Waits, when the send buffer is over half of `maxBufferedBytes`, until the peer has read it
   * down. False when the connection closed meanwhile, or was closed 4008 for not reading within
   * `REPLAY_DRAIN_TIMEOUT_MS`. Costs nothing (no timer, no promise tick) when the buffer is low.
   */
  private paced(): boolean | Promise<boolean> {
    if (this.closed) return false
    const highWater = this.ctx.limits.maxBufferedBytes / 2
    if (this.socket.bufferedAmount <= highWater) return true
    return (async () => {
      const deadline = Date.now() + REPLAY_DRAIN_TIMEOUT_MS
      let delay = 1
      while (this.socket.bufferedAmount > highWater) {
        if (this.closed) return false
        if (Date.now() > deadline) {
          this.slow()
          return false
        }
        await new Promise((resolve) => setTimeout(resolve, delay))
        delay = Math.min(delay * 2, 50)
      }
      return !this.closed
    })()
  }

  /** Called by the heartbeat: a peer that has not answered since the last beat is closed 4009. */
  heartbeat(): void {
    if (this.closed) return
    if (!(this.flags & ALIVE)) {
      this.close(CloseCode.HeartbeatTimeout, 'heartbeat timeout')
      return
    }
    this.flags &= ~ALIVE
    try {
      this.socket.ping()
    } catch {
      // The socket is closing; its 'close' event cleans up.
    }
  }

  /** Removes this connection's subscription to `topic`, telling the client why. */
  revoke(topic: string, reason: string): boolean {
    const subscription = this.subscription(topic)
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
    const subscription = this.subscription(topic)
    if (!subscription || subscription.pending) return
    try {
      const { position } = await this.ctx.bus.history(topic)
      if (!subscription.active || this.subscription(topic) !== subscription) return
      this.send({ type: 'subscribed', topic, epoch: position.epoch, offset: position.offset, recovered: false })
    } catch (error) {
      this.ctx.logger.warn({ err: error, topic, connectionId: this.id }, 'realtime: resync after a bus gap failed')
    }
  }

  /** @internal */
  onMessage(data: Buffer, isBinary: boolean): void {
    if (this.flags & CLOSED) return
    this.flags |= ALIVE
    this.ctx.stats.messagesIn++
    if (isBinary) {
      this.reject({ code: ErrorCode.BAD_REQUEST, message: 'binary frames are not supported; send JSON text' })
      return
    }
    const { limits } = this.ctx
    const framesFullAt = takeToken(this.framesFullAt, bucketClockMs(), limits.frameBurst, limits.framesPerSecond)
    if (framesFullAt === -Infinity) {
      count(this.ctx.stats.drops, 'rate_limited')
      this.reject({ code: ErrorCode.RATE_LIMITED, message: 'too many frames; slow down' })
      return
    }
    this.framesFullAt = framesFullAt
    const text = data.toString('utf8')
    // Frames after a pending hello wait for it, so a client may pipeline hello and subscribes.
    if (this.flags & HELLO_PENDING) {
      const extras = this.more()
      const queued = (extras.queuedFrames ??= [])
      if (queued.length >= MAX_QUEUED_FRAMES || extras.queuedBytes + data.length > MAX_QUEUED_BYTES) {
        count(this.ctx.stats.drops, 'queue_full')
        this.reject({ code: ErrorCode.RATE_LIMITED, message: 'too many frames before "welcome"' })
        return
      }
      queued.push(text)
      extras.queuedBytes += data.length
      return
    }
    this.handle(text)
  }

  private handle(text: string): void {
    const parsed = parseClientFrame(text)
    if (!parsed.ok) {
      this.reject(parsed)
      return
    }
    const frame = parsed.frame
    switch (frame.type) {
      case 'hello':
        void this.onHello(frame)
        return
      case 'auth':
        void this.onAuth(frame)
        return
      case 'ping':
        this.send(frame.id === undefined ? { type: 'pong' } : { type: 'pong', id: frame.id })
        return
      case 'subscribe':
        if (!this.requireAuthenticated(frame.id, frame.topic)) return
        void this.onSubscribe(frame)
        return
      case 'unsubscribe':
        if (!this.requireAuthenticated(frame.id, frame.topic)) return
        this.onUnsubscribe(frame)
        return
    }
  }

  /** Sends an `error` frame for a bad frame; a connection that keeps sending them is closed 4000. */
  private reject(error: { code: ErrorCode; message: string; id?: FrameId; topic?: string }): void {
    count(this.ctx.stats.errors, error.code)
    const frame: ErrorFrame = { type: 'error', code: error.code, message: error.message }
    if (error.id !== undefined) frame.id = error.id
    if (error.topic !== undefined) frame.topic = error.topic
    this.send(frame)
    const abusive =
      error.code === ErrorCode.BAD_REQUEST ||
      error.code === ErrorCode.UNKNOWN_TYPE ||
      error.code === ErrorCode.INVALID_TOPIC ||
      error.code === ErrorCode.RATE_LIMITED ||
      error.code === ErrorCode.UNSUPPORTED_VERSION
    if (!abusive) return
    const extras = this.more()
    if (!(extras.badFrames ??= new TokenBucket(this.ctx.limits.maxBadFrames, 1)).take()) this.close(CloseCode.ProtocolAbuse, 'too many bad frames')
  }

  private requireAuthenticated(id: FrameId | undefined, topic: string): boolean {
    if (this.flags & AUTHENTICATED) return true
    this.reject({ code: ErrorCode.UNAUTHORIZED, message: 'send "hello" with credentials first', id, topic })
    return false
  }

  private async onHello(frame: HelloFrame): Promise<void> {
    const authenticate = this.ctx.authenticate
    if (!authenticate) {
      this.flags |= AUTHENTICATED
      this.send({ type: 'welcome', v: PROTOCOL_VERSION, connectionId: this.id, heartbeatMs: this.ctx.heartbeatMs })
      return
    }
    if (this.flags & AUTHENTICATED) {
      this.reject({ code: ErrorCode.BAD_REQUEST, message: '"hello" was already accepted; use "auth" to renew credentials', id: frame.id })
      return
    }
    this.flags |= HELLO_PENDING
    const extras = this.more()
    let result: unknown
    try {
      result = await authenticate(extras.request as IncomingMessage, frame.auth)
      if (result === undefined || result === null || result === false) throw new Error('authenticate refused')
    } catch (error) {
      this.flags &= ~HELLO_PENDING
      extras.queuedFrames = undefined
      extras.queuedBytes = 0
      count(this.ctx.stats.refused, 'unauthorized')
      this.ctx.logger.info({ connectionId: this.id, reason: errorMessage(error) }, 'realtime: authentication refused')
      this.close(CloseCode.Unauthorized, 'unauthorized')
      return
    }
    if (this.closed) return
    this.flags = (this.flags & ~HELLO_PENDING) | AUTHENTICATED
    clearTimeout(extras.handshakeTimer)
    extras.handshakeTimer = undefined
    const expiresAt = this.adopt(result)
    const welcome: ServerFrame = { type: 'welcome', v: PROTOCOL_VERSION, connectionId: this.id, heartbeatMs: this.ctx.heartbeatMs }
    if (expiresAt !== undefined) welcome.expiresAt = expiresAt
    this.send(welcome)
    extras.queuedBytes = 0
    const queued = extras.queuedFrames ?? []
    extras.queuedFrames = undefined
    for (const frame of queued) {
      if (this.flags & (CLOSED | HELLO_PENDING)) break
      this.handle(frame)
    }
  }

  private async onAuth(frame: AuthFrame): Promise<void> {
    const authenticate = this.ctx.authenticate
    if (!authenticate) {
      this.send(frame.id === undefined ? { type: 'authenticated' } : { type: 'authenticated', id: frame.id })
      return
    }
    if (!(this.flags & AUTHENTICATED)) {
      this.reject({ code: ErrorCode.UNAUTHORIZED, message: 'send "hello" first', id: frame.id })
      return
    }
    let result: unknown
    try {
      result = await authenticate(this.request as IncomingMessage, frame.auth)
      if (result === undefined || result === null || result === false) throw new Error('authenticate refused')
    } catch (error) {
      count(this.ctx.stats.refused, 'unauthorized')
      this.reject({ code: ErrorCode.UNAUTHORIZED, message: `credentials refused: ${errorMessage(error)}`, id: frame.id })
      return
    }
    if (this.closed) return
    const expiresAt = this.adopt(result)
    const reply: ServerFrame = { type: 'authenticated' }
    if (frame.id !== undefined) reply.id = frame.id
    if (expiresAt !== undefined) reply.expiresAt = expiresAt
    this.send(reply)
    // The principal may have changed: keep only the subscriptions it may still have.
    const authorize = this.ctx.authorize
    if (!authorize) return
    for (const { topic } of this.allSubscriptions()) {
      let allowed = false
      try {
        allowed = await authorize(this.principal, topic)
      } catch {
        allowed = false
      }
      if (!allowed && !this.closed) this.revoke(topic, 'forbidden')
    }
  }

  /** Takes the principal (and expiry) that `authenticate` returned; returns the expiry. */
  private adopt(result: unknown): number | undefined {
    const extras = this.more()
    clearTimeout(extras.expiryTimer)
    extras.expiryTimer = undefined
    if (!isExpiring(result)) {
      extras.principal = result
      return undefined
    }
    extras.principal = result.principal
    const delay = Math.max(0, result.expiresAt - Date.now())
    // setTimeout overflows past 2^31-1 ms; such a long expiry is as good as none.
    if (delay < 2 ** 31 - 1) {
      extras.expiryTimer = setTimeout(() => {
        count(this.ctx.stats.refused, 'expired')
        this.close(CloseCode.Unauthorized, 'credentials expired')
      }, delay)
    }
    return result.expiresAt
  }

  private async onSubscribe(frame: SubscribeFrame): Promise<void> {
    const { topic, id } = frame
    const { ctx } = this
    const existing = this.subscription(topic)
    if (existing) this.drop(existing)
    else if (this.subscriptionCount >= ctx.limits.maxSubscriptions) {
      count(ctx.stats.drops, 'too_many_subscriptions')
      this.reject({
        code: ErrorCode.TOO_MANY_SUBSCRIPTIONS,
        message: `at most ${ctx.limits.maxSubscriptions} subscriptions per connection`,
        id,
        topic,
      })
      return
    }
    const subscription: ConnectionSubscription = { sink: this, topic, pending: [], active: true }
    // Registered before any await so that the limit counts it and an unsubscribe can cancel it.
    this.addSubscription(subscription)
    try {
      if (ctx.authorize) {
        let allowed: boolean
        try {
          allowed = await ctx.authorize(this.principal, topic)
        } catch (error) {
          ctx.logger.error({ err: error, topic, connectionId: this.id }, 'realtime: authorize threw')
          allowed = false
        }
        if (!subscription.active) return
        if (!allowed) {
          this.removeSubscription(subscription)
          subscription.active = false
          count(ctx.stats.refused, 'forbidden')
          ctx.logger.info({ connectionId: this.id, topic }, 'realtime: subscription forbidden')
          this.reject({ code: ErrorCode.FORBIDDEN, message: `not allowed to subscribe to "${topic}"`, id, topic })
          return
        }
      }
      // Join first, then read history: what is published meanwhile waits in `pending`.
      await ctx.topics.join(subscription)
      if (!subscription.active) return
      const history = await ctx.bus.history(topic, frame.since)
      if (!subscription.active) return
      const { position, recovered } = history
      this.send({ type: 'subscribed', ...(id === undefined ? {} : { id }), topic, epoch: position.epoch, offset: position.offset, recovered })
      let last = recovered && frame.since ? frame.since.offset : position.offset
      // History can be far larger than the send buffer limit (a client back from a long outage):
      // it is sent at the pace the peer reads, while live messages wait in `pending`.
      for (const message of history.messages) {
        const ready = this.paced()
        if ((ready !== true && !(await ready)) || !subscription.active) return
        this.sendFrame(ctx.topics.frameText(topic, message))
        ctx.stats.delivered++
        last = message.offset
      }
      // `pending` may grow while this loop waits for the peer; it is read to its end.
      const pending = subscription.pending ?? []
      for (let i = 0; i < pending.length; i++) {
        const message = pending[i] as BusMessage
        if (message.epoch === position.epoch && compareOffsets(message.offset, last) <= 0) continue
        const ready = this.paced()
        if ((ready !== true && !(await ready)) || !subscription.active) return
        this.sendFrame(ctx.topics.frameText(topic, message))
        ctx.stats.delivered++
        last = message.offset
      }
      subscription.pending = null
    } catch (error) {
      if (!subscription.active) return
      this.drop(subscription)
      ctx.logger.error({ err: error, topic, connectionId: this.id }, 'realtime: subscribe failed')
      count(ctx.stats.errors, ErrorCode.INTERNAL)
      this.send({ type: 'error', ...(id === undefined ? {} : { id }), topic, code: ErrorCode.INTERNAL, message: 'subscribe failed: the bus is unavailable; retry later' })
    }
  }

  private onUnsubscribe(frame: UnsubscribeFrame): void {
    const subscription = this.subscription(frame.topic)
    if (subscription) this.drop(subscription)
    this.send({ type: 'unsubscribed', ...(frame.id === undefined ? {} : { id: frame.id }), topic: frame.topic })
  }

  private drop(subscription: ConnectionSubscription): void {
    subscription.active = false
    subscription.pending = null
    this.removeSubscription(subscription)
    this.ctx.topics.leave(subscription)
  }

  /** Leaves every topic and stops every timer. */
  private detach(): void {
    const subscriptions = this.allSubscriptions()
    this.one = undefined
    this.many = undefined
    for (const subscription of subscriptions) {
      subscription.active = false
      subscription.pending = null
      this.ctx.topics.leave(subscription)
    }
    const extras = this.extras
    if (extras === undefined) return
    extras.queuedFrames = undefined
    extras.queuedBytes = 0
    clearTimeout(extras.expiryTimer)
    clearTimeout(extras.handshakeTimer)
  }

  /**
   * `ws` closes a connection itself on a frame it cannot accept (too large: 1009, not UTF-8: 1007,
   * broken framing: 1002) and then reports the close as 1006: count it under the code it sent.
   */
  /** @internal */
  onSocketError(error: Error & { code?: string }): void {
    this.ctx.logger.debug?.({ err: error, connectionId: this.id }, 'realtime: socket error')
    const code = error.code === undefined ? undefined : WS_ERROR_CLOSE_CODES[error.code]
    if (code === undefined || this.closed) return
    this.markClosed(code)
    this.detach()
  }

  /** @internal */
  onClose(code: number): void {
    clearTimeout(this.extras?.closeTimer)
    if (!this.closed) {
      this.markClosed(code)
      this.detach()
    }
    this.ctx.onClosed(this)
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
