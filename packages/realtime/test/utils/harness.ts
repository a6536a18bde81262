/**
 * The test harness: servers, library clients and raw clients that close themselves when the
 * running test finishes (pass or fail), so a test file keeps no arrays of them and no `afterEach`
 * closing them. Call these inside a test (or a `beforeEach`); for what a whole file shares, start
 * it in `beforeAll` with `startServer` and close it in `afterAll`.
 */
import type { RealtimeClient, RealtimeClientOptions } from '../../src/client/index.js'
import type { TopicMap } from '../../src/topics.js'
import { RawClient } from './raw-client.js'
import { closeAfterTest } from './teardown.js'
import { connectClient, startServer, type TestServer, type TestServerOptions } from './server.js'

export { closeAfterTest }

/** `startServer`, closed when the test finishes. */
export async function useServer<T extends TopicMap = TopicMap>(options: TestServerOptions = {}): Promise<TestServer<T>> {
  const server = await startServer<T>(options)
  closeAfterTest(() => server.close())
  return server
}

/**
 * `RawClient.connect`, closed when the test finishes. It is forgotten once its socket closes, so
 * that a test measuring memory can drop the clients it closed.
 */
export async function useRawClient(url: string, options?: Parameters<typeof RawClient.connect>[1]): Promise<RawClient> {
  const client = await RawClient.connect(url, options)
  const forget = closeAfterTest(() => client.close())
  client.socket.once('close', forget)
  return client
}

/** `connectClient` (a library client), closed when the test finishes. */
export function useClient<T extends TopicMap = TopicMap>(url: string, options: Partial<RealtimeClientOptions> = {}): RealtimeClient<T> {
  const client = connectClient<T>(url, options)
  closeAfterTest(() => client.close())
  return client
}
