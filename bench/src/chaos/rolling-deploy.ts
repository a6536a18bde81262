/**
 * Chaos scenario "rolling deploy": 3 instances in their own processes on one Redis of its own,
 * 300 clients of the project's client behind a round-robin balancer over the instances in
 * rotation, ~1,000 numbered messages/s on 5 topics for 60 s, and every 10 s the next instance taken
 * out of rotation, drained (`close()` over 5 s) and replaced. Must show: no gap, no duplicate,
 * 0 resyncs; the peak reconnect rate per instance (1-s buckets) within 2× of the drain pace
 * (clients per instance ÷ drainMs); at the end no instance above 1.5× or below 0.5× of an even
 * share (with `rebalance`). `--quick`: 90 clients, 300/s, 25 s, a restart every 8 s.
 */
import { rollingDeploy } from '../../../packages/realtime/test/utils/rolling-deploy.js'
import type { ChaosOptions, ChaosRow } from './types.js'

export async function run(options: ChaosOptions): Promise<ChaosRow[]> {
  const quick = options.quick === true
  const seconds = options.seconds ?? (quick ? 25 : 60)
  const drainMs = quick ? 3000 : 5000
  const result = await rollingDeploy({
    clients: quick ? 90 : 300,
    rate: quick ? 300 : 1000,
    seconds,
    restartEveryMs: quick ? 8000 : 10_000,
    drainMs,
    rebalance: { intervalMs: 2000, tolerance: 0.1, maxPerInterval: 25 },
    settleMs: 20_000,
    log: (line) => console.log(`  rolling deploy: ${line}`),
  })
  const limit = 2 * result.drainRate
  const even = result.finalCounts.every((c) => c <= 1.5 * result.evenShare && c >= 0.5 * result.evenShare)
  const pass =
    result.silentGaps === 0 &&
    result.duplicates === 0 &&
    result.outOfOrder === 0 &&
    result.unsettled === 0 &&
    result.resyncs === 0 &&
    result.peakReconnectsPerSecond <= limit &&
    even
  return [
    {
      scenario: 'rolling deploy',
      clients: result.clients,
      published: result.published,
      confirmed: result.confirmed,
      rejected: result.rejected,
      silentGaps: result.silentGaps,
      duplicates: result.duplicates,
      resyncs: result.resyncs,
      ...(result.resyncs > 0 ? { resyncReason: 'history did not cover a client between two instances' } : {}),
      notes:
        `${result.restarts} restarts (drain ${drainMs / 1000} s each), publishes attempted at ${result.achievedRate}/s, ` +
        `confirmed at ${Math.round(result.confirmed / seconds)}/s; ` +
        `peak reconnects/s per instance ${result.peakReconnectsPerSecond} (limit ${limit}); ` +
        `moved ${result.moved.drain} by drains, ${result.moved.rebalance} by rebalance; ` +
        `connections at the end ${result.finalCounts.join('/')} (even share ${Math.round(result.evenShare)}` +
        `${result.settledAfterMs === undefined ? ', not even within the settle time' : `, even ${(result.settledAfterMs / 1000).toFixed(1)} s after the last publish`})` +
        (result.outOfOrder > 0 ? `; ${result.outOfOrder} out of order` : '') +
        (result.unsettled > 0 ? `; ${result.unsettled} publishes never settled` : ''),
      pass,
    },
  ]
}
