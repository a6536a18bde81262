import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocket } from 'ws'
import { CloseCode } from '../protocol.js'

/**
 * The seam between the server core and `ws`: the only file of the server that knows `ws` and the
 * TCP stream under it. The rest of the server talks to a `PeerSocket` and is told of the socket's
 * events through `SocketEvents`.
 */

/** What the server core does with a client's socket. */
export interface PeerSocket {
  /** Bytes written and not yet handed to the kernel (including this tick's corked frames). */
  readonly bufferedAmount: number
  /** Whether frames can still be written (the WebSocket is open). */
  readonly isOpen: boolean
  /** Sends one WebSocket text message. */
  sendText(text: string): void
  /** Writes a whole, already framed WebSocket message (`textFrame`): the same buffer for many sockets. */
  sendFramed(frame: Buffer): void
  /** Holds writes back until `uncork` (one kernel write for a tick's frames). */
  cork(): void
  uncork(): void
  /**
   * Resolves once `bufferedAmount` is at most `below` (`'drained'`), the socket closed
   * (`'closed'`), or `timeoutMs` passed first (`'timeout'`). Waits on the stream's own events: no
   * polling.
   */
  drained(below: number, timeoutMs: number): Promise<'drained' | 'closed' | 'timeout'>
  ping(): void
  /** Starts the closing handshake. */
  close(code: number, reason: string): void
  /** Destroys the socket at once. */
  terminate(): void
}

/** What a socket tells the connection on it. */
export interface SocketEvents {
  onMessage(data: Buffer, isBinary: boolean): void
  onPong(): void
  /**
   * The socket failed. `closeCode` is set when `ws` itself closed it for a frame it cannot accept
   * (too large: 1009, not UTF-8: 1007, broken framing: 1002); `ws` then reports the close as 1006.
   */
  onSocketError(error: Error, closeCode: number | undefined): void
  onClose(code: number): void
}

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

const SEND_OPTIONS = { binary: false, compress: false } as const
const EVENTS = Symbol('realtime.events')
const EMPTY = Buffer.alloc(0)

/**
 * The server's sockets (`WebSocketServer`'s `WebSocket` option). `ws` reports a socket's events by
 * calling its `emit`, which hands the four the connection needs straight to it: a connection
 * registers no listener, and its socket carries no listener table (about 250 bytes on each of
 * thousands of idle sockets). Other events, and events before `attach`, go through `EventEmitter`
 * as usual; `close` goes to both.
 */
export class RealtimeSocket extends WebSocket implements PeerSocket {
  declare [EVENTS]: SocketEvents | undefined
  /**
   * The TCP stream under the WebSocket (corked per tick, and written pre-framed patches): `ws`'
   * own reference to it, set when the upgrade completes. Read, not copied, so that an idle
   * socket does not carry a second pointer to it.
   */
  declare private readonly _socket: Duplex

  /**
   * Hands the socket's events to `events` from now on (including `'error'`, which would otherwise
   * crash the process).
   */
  attach(events: SocketEvents): void {
    this[EVENTS] = events
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const events = this[EVENTS]
    if (events !== undefined) {
      switch (event) {
        case 'message':
          events.onMessage(args[0] as Buffer, args[1] as boolean)
          return true
        case 'pong':
          events.onPong()
          return true
        case 'error': {
          const error = args[0] as Error & { code?: string }
          events.onSocketError(error, error.code === undefined ? undefined : WS_ERROR_CLOSE_CODES[error.code])
          return true
        }
        case 'close':
          events.onClose(args[0] as number)
          super.emit(event, ...args)
          return true
      }
    }
    return super.emit(event, ...args)
  }

  get isOpen(): boolean {
    return this.readyState === WebSocket.OPEN
  }

  sendText(text: string): void {
    this.send(text, SEND_OPTIONS)
  }

  /**
   * Written to the TCP stream as is. Safe to mix with `ws`' own writes because `ws` never holds
   * frames back here: without permessage-deflate (the server turns it off) and without Blobs, its
   * sender writes every frame at once, so frames leave in call order.
   */
  sendFramed(frame: Buffer): void {
    this._socket.write(frame)
  }

  cork(): void {
    this._socket.cork()
  }

  uncork(): void {
    this._socket.uncork()
  }

  drained(below: number, timeoutMs: number): Promise<'drained' | 'closed' | 'timeout'> {
    if (!this.isOpen) return Promise.resolve('closed')
    if (this.bufferedAmount <= below) return Promise.resolve('drained')
    const raw = this._socket
    return new Promise((resolve) => {
      const done = (result: 'drained' | 'closed' | 'timeout') => {
        clearTimeout(timer)
        raw.off('drain', onWritten)
        raw.off('close', onClosed)
        resolve(result)
      }
      const onWritten = () => {
        if (this.bufferedAmount <= below) done('drained')
        else if (!raw.writableNeedDrain) raw.write(EMPTY, onWritten)
      }
      const onClosed = () => done('closed')
      const timer = setTimeout(() => done('timeout'), timeoutMs)
      raw.on('close', onClosed)
      // Over the stream's own high-water mark (the usual case: `below` is hundreds of kilobytes)
      // the stream emits 'drain' once it is empty. Under it, no 'drain' comes: an empty write's
      // callback then tells when everything written before it has gone to the kernel.
      if (raw.writableNeedDrain) raw.on('drain', onWritten)
      else raw.write(EMPTY, onWritten)
    })
  }

}

/**
 * A WebSocket text frame (RFC 6455 §5.2) holding `text` (of `byteLength` UTF-8 bytes): FIN and
 * opcode 1, no mask (a server's frames are never masked), the payload length in 7 bits, or 126 and
 * 16 bits, or 127 and 64 bits, then the payload. The bytes `ws` writes for `send(text)`, in one
 * buffer made once per message instead of a header per receiver.
 */
export function textFrame(text: string, byteLength: number): Buffer {
  const head = byteLength < 126 ? 2 : byteLength < 65_536 ? 4 : 10
  const frame = Buffer.allocUnsafe(head + byteLength)
  frame[0] = 0x81
  if (head === 2) {
    frame[1] = byteLength
  } else if (head === 4) {
    frame[1] = 126
    frame.writeUInt16BE(byteLength, 2)
  } else {
    frame[1] = 127
    // A string's UTF-8 form is far below 2^32 bytes: the high half of the 64-bit length is 0.
    frame.writeUInt32BE(0, 2)
    frame.writeUInt32BE(byteLength, 6)
  }
  frame.write(text, head, 'utf8')
  return frame
}

/**
 * The address of a TCP peer, read without leaving Node's cache of it behind: `remoteAddress`
 * stores `{ address, family, port }` on the socket (`_peername`) for the socket's life, about 80
 * bytes on each of thousands of idle connections, for a value the server reads once per upgrade.
 * The cache is only an optimization of Node's (a later `remoteAddress` reads the peer again), so
 * dropping it changes nothing else.
 */
export function peerAddress(socket: Socket): string | undefined {
  const address = socket.remoteAddress
  const cached = socket as Socket & { _peername?: unknown }
  if (cached._peername !== undefined) cached._peername = undefined
  return address
}
