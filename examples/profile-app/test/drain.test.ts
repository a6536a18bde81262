/**
 * A deploy of the reference app (issue 13 item 1): shutting down (SIGTERM calls `app.close()`)
 * drains the realtime server — `/healthz` answers 503 from the start, so a load balancer takes the
 * instance out, and the open WebSockets are closed 4010 (reconnect elsewhere and recover) over
 * `drainMs`, not all at once.
 */
import { describe, expect, it } from 'vitest'
import { RawClient } from '../../../packages/realtime/test/utils/raw-client.js'
import { waitFor } from '../../../packages/realtime/test/utils/wait.js'
import { sqliteStorage, startApp } from './utils/app.js'

describe('app.close() (SIGTERM)', () => {
  it('answers 503 on /healthz while it drains the WebSockets with 4010 over drainMs', async () => {
    const storage = sqliteStorage()
    const app = await startApp(storage.config, { config: { activityIntervalMs: 0, drainMs: 1500 } })
    try {
      const { token } = await app.signIn('7')
      const url = app.url.replace('http', 'ws') + '/ws'
      const clients = await Promise.all(Array.from({ length: 30 }, () => RawClient.connect(url)))
      await Promise.all(clients.map((c) => c.hello(token)))
      expect((await app.request('GET', '/healthz')).status).toBe(200)

      const closedAt: number[] = []
      const started = performance.now()
      const codes = Promise.all(clients.map((c) => c.closed(10_000).then((code) => (closedAt.push(performance.now() - started), code))))
      const closing = app.close()
      // Readiness fails at once (Fastify itself answers 503 while closing, and so does the route).
      await waitFor(async () => (await fetch(`${app.url}/healthz`).catch(() => undefined))?.status === 503, 1000, '/healthz 503')
      expect(closedAt.length).toBeLessThan(30)
      expect(new Set(await codes)).toEqual(new Set([4010]))
      await closing
      closedAt.sort((a, b) => a - b)
      expect(closedAt[29]! - closedAt[0]!).toBeGreaterThan(1000)
    } finally {
      await app.close()
      await storage.dispose()
    }
  }, 20_000)
})
