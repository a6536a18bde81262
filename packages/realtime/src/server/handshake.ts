import type { IncomingMessage } from 'node:http'
import { CloseCode, ErrorCode, type AuthFrame, type FrameId, type HelloFrame, type ServerFrame } from '../protocol.js'
import { count, type StatsCounters } from './stats.js'
import type { ExpiringPrincipal, Limits, Logger, RealtimeServerOptions } from './types.js'

/**
 * A connection's phase. Without `authenticate` a connection is `open` from the start (`hello` is
 * optional); with it, it waits for `hello` (`awaitingHello`), runs `authenticate`
 * (`authenticating`: later frames queue), then is `open`. `closed` is final.
 */
export type Phase = 'awaitingHello' | 'authenticating' | 'open' | 'closed'

/** Frames (and their bytes) held while `hello` is being authenticated. */
const MAX_QUEUED_FRAMES = 256
const MAX_QUEUED_BYTES = 1024 * 1024

/** What the handshake needs from its connection. */
export interface HandshakeHost {
  readonly id: string
  phase: Phase
  send(frame: ServerFrame): void
  /** Sends `welcome`, with the credentials' expiry when they have one. */
  welcome(expiresAt: number | undefined): void
  /** Sends an `error` frame for a bad frame (counted toward the bad-frame budget where it is abuse). */
  reject(error: { code: ErrorCode; message: string; id?: FrameId; topic?: string }): void
  close(code: number, reason: string): void
  /** Handles one frame that waited for `welcome`. */
  handle(text: string): void
  /** The principal changed: drop the subscriptions it may no longer have. */
  reauthorize(): Promise<void>
}

/** What the handshake needs from its server. */
export interface HandshakeContext<P> {
  readonly authenticate: NonNullable<RealtimeServerOptions<P>['authenticate']>
  readonly limits: Required<Limits>
  readonly stats: StatsCounters
  readonly logger: Logger
}

function isExpiring<P>(value: unknown): value is ExpiringPrincipal<P> {
  return (
    typeof value === 'object' &&
    value !== null &&
    'principal' in value &&
    typeof (value as { expiresAt?: unknown }).expiresAt === 'number'
  )
}

/** Read through a call: after an `await`, the phase may have changed under the handshake. */
function isClosed(host: HandshakeHost): boolean {
  return host.phase === 'closed'
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * The authentication of one connection on a server with `authenticate` (made only there, so a
 * connection of a server without it carries none of this): `hello` and the frames queued behind
 * it, the handshake timeout (4002), the principal and its expiry (4001), renewal with `auth`.
 */
export class Handshake<P> {
  /** What `authenticate` returned (without its expiry). */
  principal: P | undefined = undefined
  /**
   * The upgrade request, for `authenticate` (at `hello` and `auth`). Kept only where there is an
   * `authenticate`: an IncomingMessage held for a connection's lifetime costs kilobytes.
   */
  private readonly request: IncomingMessage
  /** Frames that came while `hello` was being authenticated (created only then). */
  private queued: string[] | undefined = undefined
  private queuedBytes = 0
  private expiryTimer: ReturnType<typeof setTimeout> | undefined = undefined
  private timeoutTimer: ReturnType<typeof setTimeout> | undefined

  constructor(
    private readonly host: HandshakeHost,
    request: IncomingMessage,
    private readonly ctx: HandshakeContext<P>,
  ) {
    this.request = request
    this.timeoutTimer = setTimeout(() => {
      if (host.phase === 'awaitingHello' || host.phase === 'authenticating') host.close(CloseCode.HandshakeTimeout, 'hello timeout')
    }, ctx.limits.handshakeTimeoutMs)
  }

  /** Holds a frame that came while `hello` is being authenticated; false when the queue is full. */
  queue(text: string, bytes: number): boolean {
    const queued = (this.queued ??= [])
    if (queued.length >= MAX_QUEUED_FRAMES || this.queuedBytes + bytes > MAX_QUEUED_BYTES) return false
    queued.push(text)
    this.queuedBytes += bytes
    return true
  }

  async hello(frame: HelloFrame): Promise<void> {
    const host = this.host
    host.phase = 'authenticating'
    let result: P | ExpiringPrincipal<P>
    try {
      result = await this.ctx.authenticate(this.request, frame.auth)
      if (result === undefined || result === null || (result as unknown) === false) throw new Error('authenticate refused')
    } catch (error) {
      this.queued = undefined
      this.queuedBytes = 0
      count(this.ctx.stats.refused, 'unauthorized')
      this.ctx.logger.info({ connectionId: host.id, reason: errorMessage(error) }, 'realtime: authentication refused')
      host.close(CloseCode.Unauthorized, 'unauthorized')
      return
    }
    if (isClosed(host)) return
    host.phase = 'open'
    clearTimeout(this.timeoutTimer)
    this.timeoutTimer = undefined
    const expiresAt = this.adopt(result)
    host.welcome(expiresAt)
    const queued = this.queued ?? []
    this.queued = undefined
    this.queuedBytes = 0
    for (const text of queued) {
      if (host.phase !== 'open') break
      host.handle(text)
    }
  }

  /** Renews the credentials of an open connection; the connection keeps what it may still have. */
  async auth(frame: AuthFrame): Promise<void> {
    const host = this.host
    let result: P | ExpiringPrincipal<P>
    try {
      result = await this.ctx.authenticate(this.request, frame.auth)
      if (result === undefined || result === null || (result as unknown) === false) throw new Error('authenticate refused')
    } catch (error) {
      count(this.ctx.stats.refused, 'unauthorized')
      host.reject({ code: ErrorCode.UNAUTHORIZED, message: `credentials refused: ${errorMessage(error)}`, id: frame.id })
      return
    }
    if (isClosed(host)) return
    const expiresAt = this.adopt(result)
    const reply: ServerFrame = { type: 'authenticated' }
    if (frame.id !== undefined) reply.id = frame.id
    if (expiresAt !== undefined) reply.expiresAt = expiresAt
    host.send(reply)
    await host.reauthorize()
  }

  /** Takes the principal (and expiry) that `authenticate` returned; returns the expiry. */
  private adopt(result: P | ExpiringPrincipal<P>): number | undefined {
    clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
    if (!isExpiring<P>(result)) {
      this.principal = result as P
      return undefined
    }
    this.principal = result.principal
    const delay = Math.max(0, result.expiresAt - Date.now())
    // setTimeout overflows past 2^31-1 ms; such a long expiry is as good as none.
    if (delay < 2 ** 31 - 1) {
      this.expiryTimer = setTimeout(() => {
        count(this.ctx.stats.refused, 'expired')
        this.host.close(CloseCode.Unauthorized, 'credentials expired')
      }, delay)
    }
    return result.expiresAt
  }

  /** Stops the timers and drops the queue (the connection closed). */
  stop(): void {
    this.queued = undefined
    this.queuedBytes = 0
    clearTimeout(this.expiryTimer)
    clearTimeout(this.timeoutTimer)
  }
}
