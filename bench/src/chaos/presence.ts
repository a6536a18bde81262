/**
 * Presence under chaos (issue 15): 3 instances in their own processes on one Redis, 100 users × 3
 * tabs joining and leaving at random for 30 s, then a SIGKILL of an instance, then a reconnect
 * storm of 1,000 members (see `packages/realtime/test/utils/presence-chaos.ts`). Runnable alone:
 * `npx tsx bench/src/chaos/presence.ts [--quick]`.
 */
import { presenceChaos } from '../../../packages/realtime/test/utils/presence-chaos.js'
import { OwnRedisServer } from '../../../packages/realtime/test/utils/redis.js'
import type { ChaosOptions, ChaosRow } from './types.js'

const PRESENCE_TTL_MS = 10_000
const LEAVE_DELAY_MS = 2000

export async function run(options: ChaosOptions = {}): Promise<ChaosRow[]> {
  const quick = options.quick === true
  const users = quick ? 20 : 100
  const tabs = 3
  const storm = quick ? 200 : 1000
  const redis = await OwnRedisServer.start()
  const result = await presenceChaos({
    redisUrl: redis.url,
    seconds: options.seconds ?? (quick ? 6 : 30),
    users,
    tabs,
    stormClients: storm,
    presenceTtlMs: PRESENCE_TTL_MS,
    leaveDelayMs: LEAVE_DELAY_MS,
    stormReconnectMs: 1000,
    log: (line) => console.log(`  presence: ${line}`),
  }).finally(() => redis.stop())
  const base = { published: 0, confirmed: 0, rejected: 0, silentGaps: 0, duplicates: 0, resyncs: 0 }
  const stormBound = 2 * 2 * result.stormSlow
  return [
    {
      scenario: 'presence: join/leave churn',
      clients: users * tabs + 3,
      ...base,
      notes: `${result.churnOps} tab opens/closes; ${result.trueMembers} members at the end; ${result.churnMismatches} watcher lists or members replies differ from the true set`,
      pass: result.churnMismatches === 0,
    },
    {
      scenario: 'presence: SIGKILL of an instance',
      clients: result.killedMembers + 2,
      ...base,
      notes: `its ${result.killedMembers} members left every list after ${result.killLeaveMs} ms (bound: presenceTtlMs ${PRESENCE_TTL_MS})`,
      pass: result.killLeaveMs <= PRESENCE_TTL_MS + 500,
    },
    {
      scenario: 'presence: reconnect storm',
      clients: storm + 2,
      ...base,
      notes:
        `${storm} members reconnected to another instance within 1 s: ${result.stormEntries} join/leave entries in ${result.stormFrames} frames ` +
        `(bound ${stormBound}: 2 per watcher per member slower than the ${LEAVE_DELAY_MS} ms leave delay, ${result.stormSlow} were; slowest ${result.stormSlowestMs} ms); ` +
        `${result.finalMismatches} lists wrong at the end`,
      pass: result.stormEntries <= stormBound && result.finalMismatches === 0,
    },
  ]
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await run({ quick: process.argv.includes('--quick') })
  for (const row of rows) console.log(`${row.pass ? 'PASS' : 'FAIL'} ${row.scenario}: ${row.notes}`)
}
