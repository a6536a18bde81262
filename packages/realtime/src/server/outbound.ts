import type { ServerFrame } from '../protocol.js'
import { CloseCode } from '../protocol.js'
import { uncorkAtEndOfTick, type CorkedForTick } from './cork.js'
import { textFrame, type PeerSocket } from './socket.js'
import { count, type StatsCounters } from './stats.js'
import type { Limits } from './types.js'

/** How long a paced write (a history replay) waits for a peer that stopped reading before closing it 4008. */
export const REPLAY_DRAIN_TIMEOUT_MS = 10_000

/** What the outbound path needs from its server. */
export interface OutboundContext {
  readonly limits: Required<Limits>
  readonly stats: StatsCounters
}

/**
 * The one way frames leave for a client: the writable check, the per-tick cork, pacing and the
 * slow-consumer cut (4008). Live patches (`sendPatch`, framed once for every subscriber) and
 * everything else (`send`, `sendText`, history replay) go through `writable`, so every frame is
 * held to the same buffer limit and leaves in the same tick's write.
 *
 * The base class of `Connection` (not an object of its own, so an idle connection carries no
 * second object): a connection is an outbound path plus the protocol on top of it.
 */
export abstract class Outbound implements CorkedForTick {
  /** Whether the socket is corked until the end of this tick. */
  private corked = false

  protected constructor(
    readonly socket: PeerSocket,
    protected readonly ctx: OutboundContext,
  ) {}

  /** True once the connection is closing or closed: nothing more is written. */
  protected abstract get closed(): boolean

  /** Closes the connection with `code` (the outbound path closes slow consumers with 4008). */
  abstract close(code: number, reason: string): void

  /**
   * @internal Ends the tick's cork: the frames of the tick leave in one write. Also called early
   * when the corked frames pass the buffer limit or before a paced wait; a later call is a no-op.
   */
  uncorkTick(): void {
    if (!this.corked) return
    this.corked = false
    this.socket.uncork()
  }

  /**
   * Whether a frame may be written now: the connection is open and its peer not too far behind
   * (else it is closed 4008). Corks the socket for the rest of the tick at its first frame.
   */
  private writable(): boolean {
    const socket = this.socket
    if (this.closed || !socket.isOpen) return false
    const max = this.ctx.limits.maxBufferedBytes
    if (socket.bufferedAmount > max) {
      // Part of it may only be this tick's corked frames: hand them to the kernel first, and
      // call the peer slow only if they do not fit there either.
      this.uncorkTick()
      if (socket.bufferedAmount > max) {
        this.slow()
        return false
      }
    }
    if (!this.corked) {
      this.corked = true
      socket.cork()
      uncorkAtEndOfTick(this)
    }
    return true
  }

  /** Sends one protocol frame. */
  send(frame: ServerFrame): void {
    this.sendText(JSON.stringify(frame))
  }

  /** Sends one text message unless the peer is too far behind, in which case it is closed 4008. */
  sendText(text: string): void {
    if (!this.writable()) return
    this.socket.sendText(text)
    const stats = this.ctx.stats
    stats.messagesOut++
    stats.bytesOut += text.length
  }

  /**
   * Sends a patch already framed (`textFrame`): the same buffer for every subscriber of a live
   * message, written to the TCP stream as is. `payloadBytes` is the size of its text.
   */
  sendPatch(frame: Buffer, payloadBytes: number): void {
    if (!this.writable()) return
    this.socket.sendFramed(frame)
    const stats = this.ctx.stats
    stats.messagesOut++
    stats.bytesOut += payloadBytes
  }

  /** Frames and sends the text of one patch (sent to this peer only: a history replay). */
  sendPatchText(text: string): void {
    const bytes = Buffer.byteLength(text)
    this.sendPatch(textFrame(text, bytes), bytes)
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
   * For writes that may be far larger than the buffer limit (a history replay after a long
   * outage): `true` at once while the send buffer is under half of `maxBufferedBytes` (no timer,
   * no promise), else a promise of the socket's `drained` — false when the connection closed
   * meanwhile, or was closed 4008 for not reading within `REPLAY_DRAIN_TIMEOUT_MS`.
   */
  protected paced(): boolean | Promise<boolean> {
    if (this.closed) return false
    const highWater = this.ctx.limits.maxBufferedBytes / 2
    if (this.socket.bufferedAmount <= highWater) return true
    // Corked bytes never drain: hand them to the kernel before waiting.
    this.uncorkTick()
    return this.socket.drained(highWater, REPLAY_DRAIN_TIMEOUT_MS).then((result) => {
      if (result === 'timeout') this.slow()
      return result === 'drained' && !this.closed
    })
  }
}
