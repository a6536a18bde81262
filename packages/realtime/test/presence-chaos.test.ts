import { beforeAll, describe, expect, it } from 'vitest'
import { presenceChaos } from './utils/presence-chaos.js'
import { REDIS_URL, requireSharedRedis } from './utils/redis.js'

// The bounded version of `npm run chaos -w bench -- --scenario presence` (30 s, 300 tabs, 1,000 in the storm).
describe('presence across 3 instances in their own processes on one Redis', () => {
  beforeAll(requireSharedRedis)
  it('stays exact under churn, forgets a SIGKILLed instance within presenceTtlMs, and a reconnect storm sends nothing', async () => {
    const result = await presenceChaos({
      redisUrl: REDIS_URL,
      seconds: 6,
      users: 20,
      tabs: 3,
      stormClients: 200,
      presenceTtlMs: 3000,
      leaveDelayMs: 1500,
      stormReconnectMs: 500,
      log: (line) => console.log(`presence chaos: ${line}`),
    })
    expect(result.churnOps).toBeGreaterThan(100)
    expect(result.churnMismatches).toBe(0)
    expect(result.killedMembers).toBeGreaterThan(0)
    // The lease runs out 2/3 of the age after its last renewal; reapers look every third of it.
    expect(result.killLeaveMs).toBeLessThanOrEqual(3000 + 500)
    // A member is heard of only if its reconnect took longer than the leave delay: then a leave and a
    // join, to each of the 2 watchers. On a quiet machine every reconnect is faster, and nothing is sent.
    expect(result.stormEntries).toBeLessThanOrEqual(2 * 2 * result.stormSlow)
    expect(result.finalMismatches).toBe(0)
  }, 90_000)
})
