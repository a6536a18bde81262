import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { createRealtimeServer, type RealtimeServer, type RealtimeServerOptions } from '../../src/server/index.js'
import { createRealtimeClient, type RealtimeClient, type RealtimeClientOptions } from '../../src/client/index.js'
import type { ServerFrame } from '../../src/protocol.js'
import type { TopicMap } from '../../src/topics.js'

/** A realtime server on a real HTTP server listening on a free loopback port. */
export interface TestServer<T extends TopicMap = TopicMap> {
  http: Server
  realtime: RealtimeServer<T>
  url: string
  port: number
  close(): Promise<void>
}

export async function startServer<T extends TopicMap = TopicMap>(
  options: Omit<RealtimeServerOptions, 'server'> = {},
): Promise<TestServer<T>> {
  const http = createServer((_req, res) => {
    res.statusCode = 404
    res.end()
  })
  const realtime = createRealtimeServer<T>({ ...options, server: http })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const { port } = http.address() as AddressInfo
  return {
    http,
    realtime,
    port,
    url: `ws://127.0.0.1:${port}${options.path ?? '/ws'}`,
    async close() {
      await realtime.close()
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    },
  }
}

/**
 * A raw protocol client over a real WebSocket: sends frames as text and collects every server
 * frame, so tests speak the wire protocol exactly as a third-party client would.
 */
export class RawClient {
  readonly frames: ServerFrame[] = []
  closeCode: number | undefined
  closeReason = ''
  private waiters: { match: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void }[] = []
  private closeWaiters: ((code: number) => void)[] = []

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as ServerFrame
      this.frames.push(frame)
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(frame)) return true
        w.resolve(frame)
        return false
      })
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

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** Resolves with the first frame (already received or to come) that matches. */
  next<F extends ServerFrame = ServerFrame>(match: (frame: ServerFrame) => boolean, timeoutMs = 5000): Promise<F> {
    const seen = this.frames.find(match)
    if (seen) {
      this.frames.splice(this.frames.indexOf(seen), 1)
      return Promise.resolve(seen as F)
    }
    return new Promise<F>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`)), timeoutMs)
      this.waiters.push({
        match,
        resolve: (frame) => {
          clearTimeout(timer)
          this.frames.splice(this.frames.indexOf(frame), 1)
          resolve(frame as F)
        },
      })
    })
  }

  /** The next frame of a type (and id, when given). */
  nextOf<K extends ServerFrame['type']>(type: K, id?: number | string, timeoutMs?: number): Promise<Extract<ServerFrame, { type: K }>> {
    return this.next((f) => f.type === type && (id === undefined || (f as { id?: unknown }).id === id), timeoutMs)
  }

  /** Sends a frame and waits for the reply with the same id. */
  async request(frame: { id: number | string } & Record<string, unknown>): Promise<ServerFrame> {
    this.send(frame)
    return this.next((f) => (f as { id?: unknown }).id === frame.id)
  }

  closed(timeoutMs = 5000): Promise<number> {
    if (this.closeCode !== undefined) return Promise.resolve(this.closeCode)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('socket did not close in time')), timeoutMs)
      this.closeWaiters.push((code) => {
        clearTimeout(timer)
        resolve(code)
      })
    })
  }

  close(): void {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate()
  }
}

/** A library client on Node's `ws`, with fast reconnects for tests. */
export function connectClient<T extends TopicMap = TopicMap>(
  url: string,
  options: Partial<RealtimeClientOptions> = {},
): RealtimeClient<T> {
  return createRealtimeClient<T>({
    url,
    WebSocket: WebSocket as never,
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    ...options,
  })
}

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now()
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
