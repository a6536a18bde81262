/**
 * The test harness: servers, library clients and raw clients that close themselves when the
 * running test finishes (pass or fail), so a test file keeps no arrays of them and no `afterEach`
 * closing them. Call these inside a test (or a `beforeEach`); for what a whole file shares, start
 * it in `beforeAll` with `startServer` and close it in `afterAll`.
 */
import { TestRunner, onTestFinished } from 'vitest'
import type { RealtimeClient, RealtimeClientOptions } from '../../src/client/index.js'
import type { TopicMap } from '../../src/topics.js'
import { RawClient } from './raw-client.js'
import { connectClient, startServer, type TestServer, type TestServerOptions } from './server.js'

type Close = () => unknown

/** What each running test has left open, newest last. */
const openByTest = new WeakMap<object, Set<Close>>()

/**
 * Runs `close` when the running test finishes, after its `afterEach` hooks: the newest first (so
 * clients close before their server), each awaited, every one run even when one throws. Returns
 * a function that forgets it (for what closed itself before the end of the test).
 */
export function closeAfterTest(close: Close): () => void {
  const test = TestRunner.getCurrentTest()
  if (!test) throw new Error('closeAfterTest() runs inside a test: start what a whole file shares in beforeAll and close it in afterAll')
  let open = openByTest.get(test)
  if (!open) {
    const closes = new Set<Close>()
    open = closes
    openByTest.set(test, closes)
    onTestFinished(async () => {
      openByTest.delete(test)
      const errors: unknown[] = []
      for (const each of [...closes].reverse()) {
        try {
          await each()
        } catch (error) {
          errors.push(error)
        }
      }
      closes.clear()
      if (errors.length > 0) throw errors.length === 1 ? errors[0] : new AggregateError(errors, 'teardown failed')
    })
  }
  const closes = open
  closes.add(close)
  return () => void closes.delete(close)
}

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
