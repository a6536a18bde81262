import WebSocket from 'ws'

/**
 * A raw protocol client (the wire frames of docs/PROTOCOL.md, no library client): no reconnects,
 * no hidden frames, so a test knows exactly which frames crossed the socket.
 */
export class WireClient {
  readonly frames: any[] = []
  /** Bytes of the text frames received. */
  bytesIn = 0
  private waiters: { match: (frame: any) => boolean; resolve: (frame: any) => void }[] = []
  readonly closed: Promise<number>

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => {
      this.bytesIn += data.length
      const frame = JSON.parse(data.toString())
      this.frames.push(frame)
      const index = this.waiters.findIndex((w) => w.match(frame))
      if (index >= 0) this.waiters.splice(index, 1)[0]!.resolve(frame)
    })
    socket.on('error', () => {})
    this.closed = new Promise((resolve) => socket.once('close', (code) => resolve(code)))
  }

  static async connect(url: string): Promise<WireClient> {
    const socket = new WebSocket(url)
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('error', reject)
    })
    return new WireClient(socket)
  }

  send(frame: unknown): void {
    this.socket.send(JSON.stringify(frame))
  }

  /** The next frame (already received or coming) that matches, within `timeoutMs`. */
  next(match: (frame: any) => boolean, timeoutMs = 5000): Promise<any> {
    const seen = this.frames.find(match)
    if (seen) {
      this.frames.splice(this.frames.indexOf(seen), 1)
      return Promise.resolve(seen)
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done)
        reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames).slice(0, 500)}`))
      }, timeoutMs)
      const done = (frame: any) => {
        clearTimeout(timer)
        this.frames.splice(this.frames.indexOf(frame), 1)
        resolve(frame)
      }
      this.waiters.push({ match, resolve: done })
    })
  }

  /** Sends `hello` with the token and waits for `welcome`. */
  async hello(token: string): Promise<void> {
    this.send({ type: 'hello', v: 1, auth: token })
    await this.next((f) => f.type === 'welcome')
  }

  async subscribe(id: number, topic: string): Promise<any> {
    this.send({ type: 'subscribe', id, topic })
    return this.next((f) => f.id === id && (f.type === 'subscribed' || f.type === 'error'))
  }

  /** Stops reading the socket: the server's frames pile up in the kernel, then in its send buffer. */
  pauseReading(): void {
    ;(this.socket as unknown as { _socket: { pause(): void } })._socket.pause()
  }

  terminate(): void {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.terminate()
  }
}
