/**
 * Chaos scenario "sentinel": two server instances on a RedisBus through Redis Sentinel (a primary,
 * a replica, three sentinels, all started here on free ports), 100 clients on 5 topics, numbered
 * publishes at 500/s, and one fault per row:
 *
 * 1. `SENTINEL FAILOVER` (the sentinels promote the replica; the old primary is demoted);
 * 2. SIGKILL of the primary (promotion after `down-after-milliseconds`, 1 s here);
 * 3. `SENTINEL FAILOVER` again, with `replicaAck` (a publish is confirmed once the replica has it):
 *    no confirmed message may be missing from the new primary;
 * 4. the replication window: the replica's link is held (it stays "up" but carries nothing), so
 *    what the primary confirms from then on is not replicated; then SIGKILL and promotion. The
 *    messages confirmed meanwhile are lost: the bus must make every client of those topics resync.
 *
 * Each row counts, per client, confirmed messages it never received without a resync after them
 * (silent gaps), duplicates, and resyncs with their cause (the buses' gap reports).
 *
 * Standalone: `npx tsx bench/src/chaos/sentinel.ts [--seconds 30] [--quick] [--faults failover,kill,window]`.
 */
import { pathToFileURL } from 'node:url'
import { runFailover, type FailoverRunResult } from '../../../packages/realtime/test/utils/failover-run.js'
import { SentinelSet } from '../../../packages/realtime/test/utils/sentinel.js'
import type { ChaosOptions, ChaosRow } from './types.js'

const CLIENTS = 100
const TOPICS = 5
const RATE = 500

function row(scenario: string, result: FailoverRunResult, extra: { mustFence?: boolean; mustKeepConfirmed?: boolean; settleMs?: number }): ChaosRow {
  const reasons = Object.entries(result.gaps)
    .filter(([, count]) => count > 0)
    .map(([reason, count]) => `${count} ${reason}`)
  const rejectedOk = Object.keys(result.rejections).every((code) => code === 'BUS_UNAVAILABLE')
  const pass =
    result.silentGaps === 0 &&
    result.duplicates === 0 &&
    result.outOfOrder === 0 &&
    result.lostUnfenced === 0 &&
    rejectedOk &&
    result.confirmed + result.rejected === result.published &&
    (!extra.mustFence || (result.fenced > 0 && result.resyncs > 0)) &&
    (!extra.mustKeepConfirmed || result.lostFromHistory === 0)
  return {
    scenario,
    clients: result.clients,
    published: result.published,
    confirmed: result.confirmed,
    rejected: result.rejected,
    silentGaps: result.silentGaps,
    duplicates: result.duplicates,
    resyncs: result.resyncs,
    resyncReason:
      result.resyncs === 0
        ? 'none: the new primary held every confirmed message'
        : `${result.clientsResynced} clients; gap reports: ${reasons.join(', ')}; ${result.fenced} topics fenced (new primary lacked confirmed messages)`,
    notes:
      `${result.lostFromHistory} confirmed messages missing from the new primary's streams (${result.lostUnfenced} behind an unchanged epoch); ` +
      `publish stall ${result.stallMs} ms; rejected ${JSON.stringify(result.rejections)}; ` +
      `${result.rejectedDelivered} rejected-but-delivered; reordered ${result.outOfOrder}` +
      (extra.settleMs === undefined ? '' : `; sentinels settled in ${extra.settleMs} ms`),
    pass,
  }
}

type Fault = 'failover' | 'kill' | 'failover-ack' | 'window'

export async function run(options: ChaosOptions & { faults?: readonly Fault[] } = {}): Promise<ChaosRow[]> {
  const faults = new Set<Fault>(options.faults ?? ['failover', 'kill', 'failover-ack', 'window'])
  const seconds = options.seconds ?? (options.quick ? 8 : 30)
  const timing = { beforeMs: Math.round(seconds * 400), afterMs: Math.round(seconds * 600) }
  const load = { topics: TOPICS, clientsPerTopic: CLIENTS / TOPICS, ratePerSecond: RATE, publishTimeoutMs: 1000 }
  const rows: ChaosRow[] = []

  const set = faults.has('failover') || faults.has('kill') || faults.has('failover-ack') ? await SentinelSet.start() : undefined
  try {
    if (set && faults.has('failover')) {
      const failover = await runFailover({ set, ...load, ...timing, fault: (s) => s.failover(), label: 'chaos-sentinel-failover' })
      rows.push(row('sentinel: SENTINEL FAILOVER', failover, {}))
      await set.settled()
    }
    if (set && faults.has('kill')) {
      const kill = await runFailover({ set, ...load, ...timing, fault: (s) => s.killPrimary(), label: 'chaos-sentinel-kill' })
      rows.push(row('sentinel: SIGKILL of the primary', kill, { settleMs: set.settleMs.at(-1) }))
      await set.settled()
    }
    if (set && faults.has('failover-ack')) {
      const acked = await runFailover({ set, ...load, ...timing, replicaAck: true, fault: (s) => s.failover(), label: 'chaos-sentinel-ack' })
      rows.push(row('sentinel: SENTINEL FAILOVER, replicaAck', acked, { mustKeepConfirmed: true }))
    }
  } finally {
    await set?.stop()
  }
  if (!faults.has('window')) return rows

  const held = await SentinelSet.start({ holdableLink: true })
  try {
    const window = await runFailover({
      set: held,
      ...load,
      ...timing,
      label: 'chaos-sentinel-window',
      fault: async (s) => {
        s.link?.hold()
        // Half a second of confirmed publishes (about 250) that the replica never gets.
        await new Promise((resolve) => setTimeout(resolve, 500))
        await s.killPrimary({ force: true })
      },
    })
    rows.push(row('sentinel: replication window (link held, SIGKILL)', window, { mustFence: true }))
  } finally {
    await held.stop()
  }
  return rows
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2)
  const at = args.indexOf('--seconds')
  const only = args.indexOf('--faults')
  const rows = await run({
    quick: args.includes('--quick'),
    ...(at >= 0 ? { seconds: Number(args[at + 1]) } : {}),
    ...(only >= 0 ? { faults: String(args[only + 1]).split(',') as Fault[] } : {}),
  })
  console.table(rows.map(({ resyncReason, notes, ...rest }) => rest))
  for (const r of rows) console.log(`${r.scenario}: ${r.resyncReason}; ${r.notes}`)
  console.log(JSON.stringify(rows))
  process.exit(rows.every((r) => r.pass) ? 0 : 1)
}
