import { describe, expect, it } from 'vitest'
import { rollingDeploy } from './utils/rolling-deploy.js'

// The bounded version of the chaos runner's rolling deploy (`npm run chaos -w bench`): three
// instances in their own processes on a Redis of the test's own, each drained and replaced in turn
// while numbered messages flow.
describe('a rolling deploy', () => {
  it('moves every client with no gap, no duplicate and no resync, at the drain pace, and evens out the load after', { timeout: 60_000 }, async () => {
    const result = await rollingDeploy({
      clients: 60,
      rate: 200,
      seconds: 13,
      restartEveryMs: 4000,
      drainMs: 2000,
      rebalance: { intervalMs: 1000, tolerance: 0.2, maxPerInterval: 10 },
      settleMs: 10_000,
      log: (line) => console.log(`rolling deploy: ${line}`),
    })
    console.log('rolling deploy:', JSON.stringify(result))
    expect(result.restarts).toBe(3)
    expect(result.rejected).toBe(0)
    expect(result.confirmed).toBe(result.published)
    expect(result.silentGaps).toBe(0)
    expect(result.duplicates).toBe(0)
    expect(result.outOfOrder).toBe(0)
    expect(result.unsettled).toBe(0)
    expect(result.resyncs).toBe(0)
    // Each drain moves its 20 clients over 2 s (10/s, over two receivers); rebalance moves a few more.
    expect(result.peakReconnectsPerSecond).toBeLessThanOrEqual(2 * result.drainRate)
    expect(result.settledAfterMs).toBeDefined()
    for (const count of result.finalCounts) {
      expect(count).toBeLessThanOrEqual(1.5 * result.evenShare)
      expect(count).toBeGreaterThanOrEqual(0.5 * result.evenShare)
    }
  })
})
