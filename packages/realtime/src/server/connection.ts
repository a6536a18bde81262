import type { IncomingMessage } from 'node:http'
import { CloseCode, ErrorCode, PROTOCOL_VERSION, parseClientFrame, type ErrorFrame, type FrameId, type ServerFrame } from '../protocol.js'
import { Handshake, type HandshakeContext, type Phase } from './handshake.js'
import { TokenBucket, bucketClockMs, takeToken } from './limits.js'
import type { PeerSocket, SocketEvents } from './socket.js'
import { count } from './stats.js'
import { Subscriber, type SubscriberContext } from './subscriptions.js'
import type { Principal } from './types.js'

export type { ConnectionSubscription } from './subscriptions.js'

/** What a connection needs from its server. */
export interface ConnectionContext<P> extends SubscriberContext<P> {
  readonly heartbeatMs: number
  /** Set when the server has `authenticate`: connections then need `hello`. */
  readonly handshake: HandshakeContext<P> | undefined
  onClosed(connection: Connection<P>): void
}

/** How long a closing socket may take to flush its close frame before it is destroyed. */
const CLOSE_GRACE_MS = 1000

/** Error codes that count toward the bad-frame budget (closing 4000 when it runs out). */
const ABUSIVE = new Set<ErrorCode>([
  ErrorCode.BAD_REQUEST,
  ErrorCode.UNKNOWN_TYPE,
  ErrorCode.INVALID_TOPIC,
  ErrorCode.RATE_LIMITED,
  ErrorCode.UNSUPPORTED_VERSION,
])

let nextConnectionNumber = 0
/** Makes connection ids unique across processes (instances, restarts); the number, within one. */
const CONNECTION_ID_PREFIX = Math.random().toString(36).slice(2, 8)

/**
 * What only some connections need (those of a server with `authenticate`, those that sent a bad
 * frame, those closing), made at the first need: an idle connection does not carry these fields.
 */
interface ConnectionExtras<P> {
  handshake: Handshake<P> | undefined
  /** The bad-frame budget, made at the first bad frame (most connections never send one). */
  badFrames: TokenBucket | undefined
  closeTimer: ReturnType<typeof setTimeout> | undefined
  /** The close code counted for this connection (what the server sent, or what ended the socket). */
  closeCode: number | undefined
}

/**
 * One client connection: the protocol on top of its outbound path. Parses its frames, hands
 * `hello`/`auth` to its handshake, subscribes (authorize, join, history, catch-up) and
 * unsubscribes it. Knows its socket only as a `PeerSocket`; `socket.ts` binds it to `ws`.
 */
export class Connection<P = Principal> extends Subscriber<P> implements SocketEvents {
  phase: Phase
  /** Cleared by each heartbeat, set by every pong and frame. */
  alive = true
  /** This connection's number in the process; `id` is made from it when asked for. */
  private readonly number: number
  /** The frame budget (`frameBurst` tokens refilled at `framesPerSecond`) as one number: see `takeToken`. */
  private framesFullAt: number
  private extras: ConnectionExtras<P> | undefined = undefined
  declare protected readonly ctx: ConnectionContext<P>

  constructor(
    socket: PeerSocket,
    request: IncomingMessage,
    /** The client's address, as the connection caps count it. */
    readonly address: string,
    ctx: ConnectionContext<P>,
  ) {
    super(socket, ctx)
    this.number = ++nextConnectionNumber
    this.framesFullAt = bucketClockMs()
    this.phase = 'awaitingHello'
    if (ctx.handshake) this.more().handshake = new Handshake(this, request, ctx.handshake)
  }

  /** The connection's id, for logs and `welcome`: not stored, so an idle connection keeps no string for it. */
  get id(): string {
    return `${CONNECTION_ID_PREFIX}-${this.number.toString(36)}`
  }

  /** @internal Sends `welcome` (with the credentials' expiry, when they have one). */
  welcome(expiresAt: number | undefined): void {
    const frame: ServerFrame = { type: 'welcome', v: PROTOCOL_VERSION, connectionId: this.id, heartbeatMs: this.ctx.heartbeatMs }
    if (expiresAt !== undefined) frame.expiresAt = expiresAt
    this.send(frame)
  }

  /**
   * What `authenticate` returned (without its expiry). Undefined only on a server without
   * `authenticate`, whose principal type is `unknown`.
   */
  get principal(): P {
    return this.extras?.handshake?.principal as P
  }

  /** The close code counted for this connection (what the server sent, or what ended the socket). */
  get closeCode(): number | undefined {
    return this.extras?.closeCode
  }

  protected get closed(): boolean {
    return this.phase === 'closed'
  }

  private more(): ConnectionExtras<P> {
    return (this.extras ??= { handshake: undefined, badFrames: undefined, closeTimer: undefined, closeCode: undefined })
  }

  /** Whether subscribe/unsubscribe may run: after `welcome`, or at once on a server without `authenticate`. */
  private get mayAct(): boolean {
    return this.phase === 'open' || (this.phase === 'awaitingHello' && this.extras?.handshake === undefined)
  }

  /** Marks the connection closed, counts its close code, leaves every topic and stops every timer. */
  private markClosed(code: number): void {
    this.phase = 'closed'
    const extras = this.more()
    extras.closeCode = code
    count(this.ctx.stats.closes, code)
    this.leaveAll()
    extras.handshake?.stop()
  }

  /** Closes with a code; a peer that does not complete the close in time is destroyed. */
  close(code: number, reason: string): void {
    if (this.closed) return
    this.markClosed(code)
    try {
      this.socket.close(code, reason)
    } catch {
      this.socket.terminate()
    }
    const closeTimer = setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS)
    closeTimer.unref?.()
    this.more().closeTimer = closeTimer
  }

  /** Called by the heartbeat: a peer that has not answered since the last beat is closed 4009. */
  heartbeat(): void {
    if (this.closed) return
    if (!this.alive) {
      this.close(CloseCode.HeartbeatTimeout, 'heartbeat timeout')
      return
    }
    this.alive = false
    try {
      this.socket.ping()
    } catch {
      // The socket is closing; its 'close' event cleans up.
    }
  }

  /** @internal */
  onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed) return
    this.alive = true
    const { stats, limits } = this.ctx
    stats.messagesIn++
    if (isBinary) {
      this.reject({ code: ErrorCode.BAD_REQUEST, message: 'binary frames are not supported; send JSON text' })
      return
    }
    const framesFullAt = takeToken(this.framesFullAt, bucketClockMs(), limits.frameBurst, limits.framesPerSecond)
    if (framesFullAt === -Infinity) {
      count(stats.drops, 'rate_limited')
      this.reject({ code: ErrorCode.RATE_LIMITED, message: 'too many frames; slow down' })
      return
    }
    this.framesFullAt = framesFullAt
    const text = data.toString('utf8')
    // Frames after a pending hello wait for it, so a client may pipeline hello and subscribes.
    if (this.phase === 'authenticating') {
      if (!this.extras?.handshake?.queue(text, data.length)) {
        count(stats.drops, 'queue_full')
        this.reject({ code: ErrorCode.RATE_LIMITED, message: 'too many frames before "welcome"' })
      }
      return
    }
    this.handle(text)
  }

  /** @internal Handles one frame (also a frame that waited for `welcome`). */
  handle(text: string): void {
    const parsed = parseClientFrame(text)
    if (!parsed.ok) {
      this.reject(parsed)
      return
    }
    const frame = parsed.frame
    const handshake = this.extras?.handshake
    switch (frame.type) {
      case 'hello':
        // One rule with or without `authenticate`: the first `hello` is answered `welcome`, a
        // second one BAD_REQUEST (credentials are renewed with `auth`).
        if (this.phase !== 'awaitingHello') {
          this.reject({ code: ErrorCode.BAD_REQUEST, message: '"hello" was already accepted; use "auth" to renew credentials', id: frame.id })
        } else if (handshake) {
          void handshake.hello(frame)
        } else {
          this.phase = 'open'
          this.welcome(undefined)
        }
        return
      case 'auth':
        // Without `authenticate` there is nothing to renew: accepted as it is.
        if (!handshake) this.send(frame.id === undefined ? { type: 'authenticated' } : { type: 'authenticated', id: frame.id })
        else if (this.phase !== 'open') this.reject({ code: ErrorCode.UNAUTHORIZED, message: 'send "hello" first', id: frame.id })
        else void handshake.auth(frame)
        return
      case 'ping':
        this.send(frame.id === undefined ? { type: 'pong' } : { type: 'pong', id: frame.id })
        return
      case 'subscribe':
      case 'unsubscribe':
      case 'members':
        if (!this.mayAct) this.reject({ code: ErrorCode.UNAUTHORIZED, message: 'send "hello" with credentials first', id: frame.id, topic: frame.topic })
        else if (frame.type === 'subscribe') void this.subscribe(frame)
        else if (frame.type === 'members') void this.members(frame)
        else this.unsubscribe(frame)
        return
    }
  }

  /** @internal Sends an `error` frame; a connection that keeps sending bad frames is closed 4000. */
  reject(error: { code: ErrorCode; message: string; id?: FrameId; topic?: string }): void {
    count(this.ctx.stats.errors, error.code)
    const frame: ErrorFrame = { type: 'error', code: error.code, message: error.message }
    if (error.id !== undefined) frame.id = error.id
    if (error.topic !== undefined) frame.topic = error.topic
    this.send(frame)
    if (!ABUSIVE.has(error.code)) return
    const extras = this.more()
    if (!(extras.badFrames ??= new TokenBucket(this.ctx.limits.maxBadFrames, 1)).take()) this.close(CloseCode.ProtocolAbuse, 'too many bad frames')
  }

  /** @internal */
  onPong(): void {
    this.alive = true
  }

  /** @internal `ws` closed the socket for a bad frame (and reports 1006): count the code it sent. */
  onSocketError(error: Error, closeCode: number | undefined): void {
    this.ctx.logger.debug?.({ err: error, connectionId: this.id }, 'realtime: socket error')
    if (closeCode === undefined || this.closed) return
    this.markClosed(closeCode)
  }

  /** @internal */
  onClose(code: number): void {
    clearTimeout(this.extras?.closeTimer)
    if (!this.closed) this.markClosed(code)
    this.ctx.onClosed(this)
  }
}
