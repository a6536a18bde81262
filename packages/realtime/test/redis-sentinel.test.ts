import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ServerFrame } from '../src/protocol.js'
import { RedisBus, type GapReason } from '../src/redis/index.js'
import type { Position } from '../src/topics.js'
import { runFailover, type FailoverRunResult } from './utils/failover-run.js'
import { useClient, useRawClient, useServer } from './utils/harness.js'
import { uniquePrefix } from './utils/redis.js'
import { SentinelSet } from './utils/sentinel.js'
import { waitFor } from './utils/wait.js'

type Topics = Record<string, { n: number }>

/** What every fault must show: nothing confirmed lost without a resync, no duplicate, no reorder. */
function expectNoSilentLoss(result: FailoverRunResult): void {
  // Printed so that the run shows its figures (the report quotes them).
  console.log(JSON.stringify(result))
  expect(result.problems).toEqual([])
  expect(result.silentGaps).toBe(0)
  expect(result.duplicates).toBe(0)
  expect(result.outOfOrder).toBe(0)
  // What the new primary lacks is behind a new epoch: nobody can recover across it.
  expect(result.lostUnfenced).toBe(0)
  if (result.lostFromHistory > 0) expect(result.fenced).toBeGreaterThan(0)
  expect(result.confirmed + result.rejected).toBe(result.published)
  // Rejections are the bus's own, never another error.
  expect(Object.keys(result.rejections).filter((code) => code !== 'BUS_UNAVAILABLE')).toEqual([])
  // Each resync comes from a gap a bus reported.
  if (result.resyncs > 0) expect(result.gaps.history + result.gaps.epoch + result.gaps.failover).toBeGreaterThan(0)
  expect(result.failovers).toBeGreaterThanOrEqual(2)
}

// Every test starts its own primary, replica and three sentinels; the shared Redis is not touched.
describe('RedisBus on Redis Sentinel', () => {
  describe('failover mid-stream', () => {
    let set: SentinelSet

    beforeAll(async () => {
      set = await SentinelSet.start()
    }, 30_000)
    afterAll(() => set?.stop())

    it('follows SENTINEL FAILOVER: every publish is confirmed and delivered, or rejected; no silent gap', async () => {
      const result = await runFailover({ set, fault: (s) => s.failover(), label: 'sentinel-failover' })
      expectNoSilentLoss(result)
      // Publishes went on after the failover on the new primary.
      expect(result.confirmed).toBeGreaterThan(result.published / 2)
    })

    it('follows a SIGKILL of the primary: publishes meanwhile reject with BUS_UNAVAILABLE, none is lost silently', async () => {
      await set.settled()
      console.log(`sentinels settled in ${set.settleMs.join(', ')} ms`)
      const started = Date.now()
      const result = await runFailover({ set, fault: (s) => s.killPrimary(), label: 'sentinel-kill' })
      console.log(`the run took ${Date.now() - started} ms`)
      expectNoSilentLoss(result)
      // down-after-milliseconds is 1 s: for that long no primary answers, and publishes time out.
      expect(result.rejections.BUS_UNAVAILABLE ?? 0).toBeGreaterThan(0)
      expect(result.stallMs).toBeGreaterThan(900)
      expect(result.confirmed).toBeGreaterThan(result.published / 3)
    })
  })

  describe('the asynchronous replication window', () => {
    let set: SentinelSet

    beforeAll(async () => {
      set = await SentinelSet.start({ holdableLink: true })
    }, 30_000)
    afterAll(() => set?.stop())

    it('makes messages the dead primary confirmed but never replicated visible: resyncs, and no recovery across them', async () => {
      const sentinel = { sentinels: set.addresses, name: set.name }
      const checked = uniquePrefix('window-on')
      const unchecked = uniquePrefix('window-off')
      const gaps: [string, GapReason][] = []
      const servers = []
      for (let i = 0; i < 2; i++) {
        const bus = new RedisBus({ sentinel, prefix: checked, publishTimeoutMs: 1000 })
        bus.onGap((topic, reason) => gaps.push([topic, reason]))
        servers.push(await useServer<Topics>({ bus }))
      }
      const [a, b] = servers as [(typeof servers)[0], (typeof servers)[0]]
      // The control: the same loss without the check, to show what it prevents.
      const control = await useServer<Topics>({ bus: new RedisBus({ sentinel, prefix: unchecked, publishTimeoutMs: 1000, failoverCheck: false }) })
      // With replicaAck a publish is confirmed only once the replica has it.
      const acked = await useServer<Topics>({ bus: new RedisBus({ sentinel, prefix: uniquePrefix('window-ack'), publishTimeoutMs: 1000, replicaAck: { timeoutMs: 300 } }) })

      const clients = [a, b].map((server) => {
        const client = useClient<Topics>(server.url)
        const numbers: number[] = []
        const resyncs: string[] = []
        client.on('patch', (message) => numbers.push(message.payload.n))
        client.on('resync', (topic) => resyncs.push(topic))
        client.subscribe('w')
        return { client, numbers, resyncs }
      })
      await waitFor(() => clients.every((c) => c.client.subscriptionState('w') === 'subscribed'), 10_000, 'clients subscribed')

      // 1..5 replicated; where a client that goes away now would come back from.
      let replicatedAt: Position | undefined
      let controlAt: Position | undefined
      for (let n = 1; n <= 5; n++) {
        replicatedAt = await a.realtime.publishTopic('w', { n })
        controlAt = await control.realtime.publishTopic('w', { n })
        await acked.realtime.publishTopic('w', { n })
      }
      const primary = await set.primary()
      const replica = set.nodes.find((node) => node !== primary)
      const replicaLength = async (prefix: string) => Number(await replica?.command('XLEN', `${prefix}{w}:s`))
      await waitFor(async () => (await replicaLength(checked)) === 5 && (await replicaLength(unchecked)) === 5, 5000, 'the replica to hold 1..5')

      // 6..8: confirmed by the primary and delivered live, never replicated.
      set.link?.hold()
      for (let n = 6; n <= 8; n++) {
        await a.realtime.publishTopic('w', { n })
        await control.realtime.publishTopic('w', { n })
      }
      await waitFor(() => clients.every((c) => c.numbers.length === 8), 5000, 'clients to get 1..8 live')
      expect(await replicaLength(checked)).toBe(5)
      // The replica does not acknowledge: that publish is not confirmed.
      const started = Date.now()
      await expect(acked.realtime.publishTopic('w', { n: 6 })).rejects.toMatchObject({ code: 'BUS_UNAVAILABLE' })
      expect(Date.now() - started).toBeGreaterThanOrEqual(290)

      await set.killPrimary({ force: true, restart: false })

      // Each instance's check finds its last position missing on the new primary: one epoch
      // change for the topic (the second instance's check finds it replaced already, or its notice
      // came first), and every client of the topic resyncs once.
      await waitFor(() => clients.every((c) => c.resyncs.length >= 1), 15_000, 'every client to resync')
      expect(clients.map((c) => c.resyncs)).toEqual([['w'], ['w']])
      // One report per instance: 'failover' where a check (or its notice) replaced the epoch,
      // 'epoch' where the subscriber connection came back after the notice and found the new epoch.
      expect(gaps.filter(([topic]) => topic === 'w').length).toBe(2)
      expect(gaps.map(([, reason]) => reason)).toContain('failover')
      expect(gaps.every(([, reason]) => reason === 'failover' || reason === 'epoch')).toBe(true)

      // New publishes reach them after the resync.
      await b.realtime.publishTopic('w', { n: 9 })
      await waitFor(() => clients.every((c) => c.numbers.at(-1) === 9), 5000, 'clients to get 9')

      // A client that was away since 5 cannot recover across 6..8: recovered false, it resyncs.
      const late = await useRawClient(a.url)
      const reply = (await late.subscribe(1, 'w', replicatedAt)) as Extract<ServerFrame, { type: 'subscribed' }>
      expect(reply.type).toBe('subscribed')
      expect(reply.recovered).toBe(false)
      expect(reply.epoch).not.toBe(replicatedAt?.epoch)

      // Without the check, the same client "recovers" and silently misses 6..8.
      await control.realtime.publishTopic('w', { n: 9 })
      const fooled = await useRawClient(control.url)
      const controlReply = (await fooled.subscribe(1, 'w', controlAt)) as Extract<ServerFrame, { type: 'subscribed' }>
      expect(controlReply.recovered).toBe(true)
      const patch = await fooled.nextOf('patch')
      expect((patch.payload as { n: number }).n).toBe(9)
    }, 45_000)
  })
})
