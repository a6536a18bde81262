import type { Socket } from 'node:net'
import WebSocket from 'ws'
import type { ClientFrame, FrameId, ServerFrame, WelcomeFrame } from '../../src/protocol.js'
import type { Position } from '../../src/topics.js'

/**
 * A client frame as a test sends it: one of the protocol's frames, where extra fields are allowed
 * (padding, keys a server must ignore). A string is sent as it is (deliberately broken frames).
 */
export type OutgoingFrame = ClientFrame & Record<string, unknown>

/**
 * A raw protocol client over a real WebSocket (the wire frames of docs/PROTOCOL.md, no library
 * client): no reconnects, no hidden frames, so a test knows exactly which frames crossed the
 * socket. The one raw client of both packages' tests (the app's tests import it from here).
 */
export class RawClient {
  /** Frames received and not yet taken by `next` (or one of its shorthands). */
  readonly frames: ServerFrame[] = []
  /** Bytes of the text frames received. */
  bytesIn = 0
  closeCode: number | undefined
  closeReason = ''
  private waiters: { match: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void }[] = []
  private closeWaiters: ((code: number) => void)[] = []

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => {
      this.bytesIn += data.length
      const frame = JSON.parse(data.toString()) as ServerFrame
      // A frame goes to the first waiter it matches, else it waits in `frames`.
      const waiter = this.waiters.find((w) => w.match(frame))
      if (waiter) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        waiter.resolve(frame)
      } else {
        this.frames.push(frame)
      }
    })
    socket.on('close', (code, reason) => {
      this.closeCode = code
      this.closeReason = reason.toString()
      for (const waiter of this.closeWaiters.splice(0)) waiter(code)
    })
    socket.on('error', () => {})
  }

  static connect(url: string, options: WebSocket.ClientOptions = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, options)
      socket.once('open', () => resolve(new RawClient(socket)))
      socket.once('error', reject)
    })
  }

  /** The TCP socket under the WebSocket: to pause reading, or to write below the WebSocket layer. */
  get tcp(): Socket {
    return (this.socket as unknown as { _socket: Socket })._socket
  }

  send(frame: OutgoingFrame | string): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** Takes the first frame (already received or to come) that matches. */
  next<F extends ServerFrame = ServerFrame>(match: (frame: ServerFrame) => boolean, timeoutMs = 5000): Promise<F> {
    const seen = this.frames.find(match)
    if (seen) {
      this.frames.splice(this.frames.indexOf(seen), 1)
      return Promise.resolve(seen as F)
    }
    return new Promise<F>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (frame: ServerFrame) => {
          clearTimeout(timer)
          resolve(frame as F)
        },
      }
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter)
        reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`))
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  /** The next frame of a type (and id, when given). */
  nextOf<K extends ServerFrame['type']>(type: K, id?: FrameId, timeoutMs?: number): Promise<Extract<ServerFrame, { type: K }>> {
    return this.next((f) => f.type === type && (id === undefined || (f as { id?: unknown }).id === id), timeoutMs)
  }

  /** Sends a frame and waits for the reply with the same id. */
  async request(frame: OutgoingFrame & { id: FrameId }): Promise<ServerFrame> {
    this.send(frame)
    return this.next((f) => (f as { id?: unknown }).id === frame.id)
  }

  /** Sends `hello` (with `auth` when given) and waits for `welcome`. */
  async hello(auth?: unknown): Promise<WelcomeFrame> {
    this.send({ type: 'hello', v: 1, auth })
    return this.nextOf('welcome')
  }

  /** Subscribes and waits for the reply (`subscribed`, or an `error` with the same id). */
  subscribe(id: FrameId, topic: string, since?: Position): Promise<ServerFrame> {
    return this.request({ type: 'subscribe', id, topic, since })
  }

  /** Stops reading the socket: the server's frames pile up in the kernel, then in its send buffer. */
  pauseReading(): void {
    this.tcp.pause()
  }

  /** Resolves with the close code once the socket closed. */
  closed(timeoutMs = 5000): Promise<number> {
    if (this.closeCode !== undefined) return Promise.resolve(this.closeCode)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket did not close within ${timeoutMs} ms`)), timeoutMs)
      this.closeWaiters.push((code) => {
        clearTimeout(timer)
        resolve(code)
      })
    })
  }

  /** Ends the connection at once (no closing handshake); does nothing once it is closed. */
  close(): void {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate()
  }
}
