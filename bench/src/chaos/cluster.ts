/**
 * Chaos scenario "cluster": a Redis Cluster of its own (3 primaries, 3 replicas on free ports), two
 * server instances on `RedisBus({ cluster })`, the project's clients on both subscribed to topics on
 * every shard, numbered messages published mid-stream through two faults of one shard's primary:
 * `CLUSTER FAILOVER` on its replica, then a SIGKILL of the primary. Each row counts what the clients
 * got against what the publisher was told.
 *
 * Standalone: `npx tsx bench/src/chaos/cluster.ts [--quick]` (prints the rows as a table).
 * It reuses the test helpers of `packages/realtime/test/utils/` (the same stream the test runs).
 */
import { pathToFileURL } from 'node:url'
import { OwnRedisCluster } from '../../../packages/realtime/test/utils/cluster.js'
import { streamThroughFault, type StreamOutcome } from '../../../packages/realtime/test/utils/cluster-stream.js'
import { waitFor } from '../../../packages/realtime/test/utils/wait.js'
import type { ChaosOptions, ChaosRow } from './types.js'

function row(scenario: string, outcome: StreamOutcome, expectRejections: boolean): ChaosRow {
  const shardTopics = outcome.faultTopics.join(', ')
  const resyncTopics = Object.keys(outcome.resyncsByTopic)
  return {
    scenario,
    clients: outcome.clients,
    published: outcome.published,
    confirmed: outcome.confirmed,
    rejected: outcome.rejected,
    silentGaps: outcome.silentGaps,
    duplicates: outcome.duplicates,
    resyncs: outcome.resyncs,
    resyncReason:
      outcome.resyncs === 0
        ? undefined
        : `topics ${resyncTopics.join(', ')}: the bus reported a gap (${JSON.stringify(outcome.gaps)}), the history did not cover the subscriber's outage`,
    notes: `shard hit serves ${shardTopics}; publishes rejected (BUS_UNAVAILABLE) for ${outcome.outageMs} ms; out-of-order ${outcome.disorder}`,
    pass: outcome.silentGaps === 0 && outcome.duplicates === 0 && outcome.disorder === 0 && (!expectRejections || outcome.rejected > 0),
  }
}

export async function run(options: ChaosOptions = {}): Promise<ChaosRow[]> {
  const afterMs = Math.max(2000, (options.seconds ?? (options.quick ? 3 : 6)) * 1000)
  const clientsPerInstance = options.quick ? 5 : 25
  const cluster = await OwnRedisCluster.start()
  try {
    const rows: ChaosRow[] = []
    const failover = await streamThroughFault({
      cluster,
      clientsPerInstance,
      afterMs,
      fault: async (primary) => {
        const replica = await cluster.replicaOf(primary)
        await cluster.command(replica, 'CLUSTER', 'FAILOVER')
        await waitFor(async () => (await cluster.primaries()).some((n) => n.port === replica), 10_000, 'the replica promoted')
      },
    })
    rows.push(row('cluster: CLUSTER FAILOVER', failover, false))
    await cluster.waitUntilOk()
    let killed = 0
    const sigkill = await streamThroughFault({
      cluster,
      clientsPerInstance,
      afterMs: afterMs + 2000,
      fault: async (primary) => {
        killed = primary
        const replica = await cluster.replicaOf(primary)
        await cluster.server(primary).stop('SIGKILL')
        await waitFor(async () => (await cluster.primaries()).some((n) => n.port === replica), 15_000, 'the replica promoted')
      },
    })
    rows.push(row('cluster: SIGKILL of a primary', sigkill, true))
    if (killed) await cluster.server(killed).start()
    return rows
  } finally {
    await cluster.stop()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const rows = await run({ quick: process.argv.includes('--quick') })
  console.table(rows)
  process.exit(rows.every((r) => r.pass) ? 0 : 1)
}
