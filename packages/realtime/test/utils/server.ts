import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { createRealtimeServer, type CloseOptions, type RealtimeServer, type RealtimeServerOptions } from '../../src/server/index.js'
import { createRealtimeClient, type RealtimeClient, type RealtimeClientOptions } from '../../src/client/index.js'
import type { TopicMap } from '../../src/topics.js'

// The raw protocol client and the waits live in files of their own (no import of the library's
// code), so that the app's tests import them too; they stay importable from here.
export { RawClient, type OutgoingFrame } from './raw-client.js'
export { sleep, waitFor } from './wait.js'

/** A realtime server on a real HTTP server listening on a free loopback port. */
export interface TestServer<T extends TopicMap = TopicMap> {
  http: Server
  realtime: RealtimeServer<T>
  url: string
  port: number
  /** Closes the realtime server (with `options`, e.g. `{ drainMs: 0 }`) and then the HTTP server. */
  close(options?: CloseOptions): Promise<void>
}

/** The options of `createRealtimeServer` but its HTTP server (`startServer` makes one). */
export type TestServerOptions = Omit<RealtimeServerOptions, 'server'>

export async function startServer<T extends TopicMap = TopicMap>(options: TestServerOptions = {}): Promise<TestServer<T>> {
  const http = createServer((_req, res) => {
    res.statusCode = 404
    res.end()
  })
  const realtime = createRealtimeServer<T>({ ...options, server: http })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const { port } = http.address() as AddressInfo
  let closing: Promise<void> | undefined
  const server: TestServer<T> = {
    http,
    realtime,
    port,
    url: `ws://127.0.0.1:${port}${options.path ?? '/ws'}`,
    // Once, however often it is called; and the realtime server it has now (a test may replace
    // it with a new one on the same HTTP server, as a restarted process).
    close(options?: CloseOptions) {
      closing ??= (async () => {
        await server.realtime.close(options)
        http.closeAllConnections()
        await new Promise<void>((resolve) => http.close(() => resolve()))
      })()
      return closing
    },
  }
  return server
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
