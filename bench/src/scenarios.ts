/**
 * The scenarios, run on one contender at a time: each spawns its server process(es) on core 0 and
 * its client process(es) on core 1 (one, or for the memory scenario one per `connsPerClient`
 * connections), measures, and stops every process it started.
 */
import { Redis } from 'ioredis'
import { spawnPeer, sleep, type Peer } from './ipc.js'
import { machineBusyUs, waitForQuiet } from './machine.js'
import { isRealtime, type ContenderName } from './contenders/types.js'
import type { PublishPlan } from './server.js'

export interface Settings {
  quick: boolean
  /** The `realtime` contender loads the built package (dist); `realtime@<commit>` never does. */
  fromDist: boolean
  /** The source directory (`packages/realtime/src`) each @app/realtime contender loads. */
  realtimeSrc: Record<string, string>
  /** At most this many sockets per client process (the memory scenario spawns as many as needed). */
  connsPerClient: number
  profile: boolean
  /** Client sockets: 'wire' (the bench's minimal RFC 6455 client) or 'ws' (the ws library). */
  clientImpl: 'wire' | 'ws'
  /** Re-measurements of a phase disturbed by other work on the machine. */
  retries: number
  /** Before each session, wait at most this long for the machine to be quiet. */
  quietWaitMs: number
  redisUrl: string
  fanoutSizes: number[]
  /** per-user: one session per user count. */
  perUserUsers: number[]
  perUserAdmins: number
  crossSubscribers: number
  memoryConnections: number
  recoveryClients: number
  recoveryMissed: number
  /** Upper bound of one publish phase, in ms. */
  phaseMs: number
  /** Deliveries per second of the fixed-rate phase, in thousands: publishes/s = fixedRate × 1000 / subscribers (20/s at 1,000). */
  fixedRate: number
  /** Length of the fixed-rate phase, in ms (at least 10 publishes). */
  fixedRateMs: number
  burst: number
  overloadBurst: number
  overloadEvents: number
}

/** One measured phase of one round of one contender. */
export interface Row {
  scenario: string
  phase: string
  size: number
  contender: ContenderName
  round: number
  [k: string]: unknown
}

const SERVER_CORE = 0
const CLIENT_CORE = 1

interface Session {
  servers: Peer[]
  ports: number[]
  /** The first client process (every scenario but memory has one). */
  client: Peer
  clients: Peer[]
  /** Each server's soft limit of open files. */
  fdLimits: number[]
  prefix: string
  impl: 'wire' | 'ws'
  /** Re-measurements allowed for a phase disturbed by other work. */
  retries: number
  /** Machine busy share (all cores) just before the session. */
  busyBefore: number
}

let sessionCounter = 0

async function withSession<T>(
  s: Settings,
  contender: ContenderName,
  scenario: string,
  opts: { instances?: number; bus?: 'memory' | 'redis'; recovery?: boolean; exposeGc?: boolean; clients?: number },
  fn: (x: Session) => Promise<T>,
): Promise<T> {
  const prefix = `bench:${process.pid}-${Date.now().toString(36)}-${++sessionCounter}:`
  const flags = [opts.recovery ? 'recovery' : '', s.fromDist && contender === 'realtime' ? 'dist' : ''].join(',')
  const src = s.realtimeSrc[contender]
  if (isRealtime(contender) && !src) throw new Error(`no source directory for ${contender}`)
  const servers: Peer[] = []
  const started: Peer[] = []
  const busyBefore = await waitForQuiet(10, s.quietWaitMs)
  try {
    for (let i = 0; i < (opts.instances ?? 1); i++) {
      const nodeArgs = ['--max-old-space-size=4096']
      // The memory scenario: V8's young generation starts at its full size (16 MB semi-spaces) in
      // every contender. Otherwise it grows from whatever start-up left it at (baseline-ws, which
      // imports ioredis, starts at 16 MiB, the realtime server at 8 MiB) to 32 MiB under 10,000
      // connections, and that growth, not the connections, is charged to the per-connection RSS.
      if (opts.exposeGc) nodeArgs.push('--expose-gc', '--min-semi-space-size=16')
      if (s.profile) {
        nodeArgs.push('--cpu-prof', `--cpu-prof-dir=bench/results/profiles/${contender}-${scenario}-server${i}-${Date.now()}`)
      }
      const peer = spawnPeer({
        name: `${contender} server ${i}`,
        script: 'server.ts',
        core: SERVER_CORE,
        args: [contender, opts.bus ?? 'memory', flags],
        nodeArgs,
        env: { BENCH_PREFIX: prefix, BENCH_REDIS_URL: s.redisUrl, ...(src ? { BENCH_REALTIME_SRC: src } : {}) },
      })
      started.push(peer)
      servers.push(peer)
    }
    const clients: Peer[] = []
    for (let i = 0; i < (opts.clients ?? 1); i++) {
      const clientArgs = ['--max-old-space-size=4096']
      if (process.env.BENCH_PROFILE_CLIENTS) clientArgs.push('--cpu-prof', `--cpu-prof-dir=bench/results/profiles/${contender}-${scenario}-clients${i}-${Date.now()}`)
      const client = spawnPeer({ name: `clients ${i}`, script: 'clients.ts', core: CLIENT_CORE, nodeArgs: clientArgs })
      started.push(client)
      clients.push(client)
    }
    const ports: number[] = []
    const fdLimits: number[] = []
    for (const sv of servers) {
      const ev = await sv.waitEvent('listening', 30_000)
      ports.push(ev.port)
      fdLimits.push(ev.fdLimit)
    }
    for (const cl of clients) await cl.waitEvent('ready', 30_000)
    return await fn({ servers, ports, client: clients[0]!, clients, fdLimits, prefix, impl: s.clientImpl, retries: s.retries, busyBefore })
  } finally {
    await Promise.all(started.map((p) => p.stop(s.profile ? 15_000 : 3000)))
    if (opts.bus === 'redis') await cleanRedis(s.redisUrl, prefix)
  }
}

/** Deletes this session's keys (only those under its own prefix) from the shared Redis. */
async function cleanRedis(url: string, prefix: string) {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await r.connect()
    let cursor = '0'
    let rounds = 0
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length) await r.del(...keys)
      cursor = next
    } while (cursor !== '0' && ++rounds < 1000)
  } catch {
    /* best effort */
  } finally {
    r.disconnect()
  }
}

function protoOf(c: ContenderName) {
  return c === 'socket.io' ? 'sio' : 'rt'
}
function urlOf(c: ContenderName, port: number) {
  return c === 'socket.io' ? `ws://127.0.0.1:${port}/socket.io/` : `ws://127.0.0.1:${port}/ws`
}

/**
 * Measures a phase; where other work on the machine took more than `maxForeignPct` of a core during
 * it, waits for a quiet machine and measures it again (at most `retries` times), keeping the
 * quietest attempt.
 */
async function measure(
  x: Session,
  plan: PublishPlan,
  perEvent: number,
  waits: { idleMs: number; timeoutMs: number },
  publisher = 0,
) {
  let best: Awaited<ReturnType<typeof measureOnce>> | undefined
  for (let attempt = 0; attempt <= x.retries; attempt++) {
    if (attempt > 0) await waitForQuiet(10, 10_000)
    const r = await measureOnce(x, { ...plan, firstSeq: (plan.firstSeq ?? 0) + attempt * 1_000_000_000 }, perEvent, waits, publisher)
    r.attempts = attempt + 1
    if (!best || r.foreignCpuPct < best.foreignCpuPct) best = { ...r, attempts: attempt + 1 }
    if (r.foreignCpuPct <= MAX_FOREIGN_PCT) break
  }
  return best!
}

/** A phase during which other processes used more than this share of a core is measured again. */
const MAX_FOREIGN_PCT = 25

/** Runs one publish phase and measures it: server CPU and memory around it, deliveries at the client. */
async function measureOnce(
  x: Session,
  plan: PublishPlan,
  perEvent: number,
  waits: { idleMs: number; timeoutMs: number },
  publisher = 0,
) {
  await Promise.all(x.clients.map((cl) => cl.request('reset')))
  const busy0 = machineBusyUs()
  const before = await Promise.all(x.servers.map((sv) => sv.request('mark')))
  const pub = await x.servers[publisher]!.request('publish', { plan }, plan.maxMs + 60_000)
  const expected = pub.events * perEvent
  const got = await x.client.request('await', { expected, ...waits }, waits.timeoutMs + 10_000)
  const after = await Promise.all(x.servers.map((sv) => sv.request('mark')))
  const busyUs = machineBusyUs() - busy0
  const cpuUs = after.reduce((n, a, i) => n + a.cpuUs - before[i].cpuUs, 0)
  const sysUs = after.reduce((n, a, i) => n + a.sysUs - before[i].sysUs, 0)
  const wallUs = after[0].at - before[0].at
  const spanUs = Math.max(1, got.lastRecv - pub.t0)
  return {
    events: pub.events,
    rejected: pub.rejected,
    multiTopicPath: pub.multiTopicPath as string,
    expected,
    delivered: got.delivered,
    lost: Math.max(0, expected - got.delivered),
    dupes: got.dupes,
    deliveriesPerSec: got.delivered / (spanUs / 1e6),
    serverCpuUs: cpuUs,
    cpuPerDeliveryUs: got.delivered ? cpuUs / got.delivered : NaN,
    kernelShare: cpuUs ? sysUs / cpuUs : NaN,
    serverCpuPct: (100 * cpuUs) / wallUs / x.servers.length,
    perServerCpuPct: after.map((a, i) => (100 * (a.cpuUs - before[i].cpuUs)) / wallUs),
    clientCpuPct: (100 * got.clientCpuUs) / got.clientWallUs,
    clientCpuPerDeliveryUs: got.delivered ? got.clientCpuUs / got.delivered : NaN,
    clientKernelShare: got.clientCpuUs ? got.clientSysUs / got.clientCpuUs : NaN,
    p50Ms: got.latency.p50 / 1000,
    p99Ms: got.latency.p99 / 1000,
    maxMs: got.latency.max / 1000,
    rssMB: Math.max(...after.map((a) => a.rss)) / 2 ** 20,
    peakRssMB: Math.max(...after.map((a) => a.peakRss)) / 2 ** 20,
    unexpectedCloses: got.unexpectedCloses,
    openAfter: got.open,
    // CPU used by anything but the bench's servers and clients (other work on a shared machine),
    // in % of one core: a noisy phase shows here.
    foreignCpuPct: Math.max(0, (100 * (busyUs - cpuUs - got.clientCpuUs)) / wallUs),
    busyBeforePct: x.busyBefore,
    timedOut: got.timedOut,
    attempts: 1,
  }
}

export type ScenarioName = 'fanout' | 'per-user' | 'cross-instance' | 'memory' | 'recovery'
export const SCENARIOS: ScenarioName[] = ['fanout', 'per-user', 'cross-instance', 'memory', 'recovery']

/** The fixed-rate phase: the same deliveries/s at every subscriber count, so latency is not queueing. */
function fixedPlan(s: Settings, n: number) {
  const rate = (s.fixedRate * 1000) / n
  const events = Math.max(10, Math.round((rate * s.fixedRateMs) / 1000))
  return { label: `fixed ${s.fixedRate}k deliveries/s`, rate, events }
}

let seq = 0
const nextSeq = (n: number) => {
  const first = seq
  seq += n + 1
  return first
}

/** Runs one scenario on one contender (one round); returns its rows. */
export async function runScenario(
  s: Settings,
  name: ScenarioName,
  c: ContenderName,
  round: number,
  log: (msg: string) => void,
): Promise<Row[]> {
  const rows: Row[] = []
  const push = (phase: string, size: number, r: Record<string, unknown>) => {
    const row: Row = { scenario: name, phase, size, contender: c, round, ...r }
    rows.push(row)
    log(describe(row))
  }
  const waits = { idleMs: 5000, timeoutMs: s.quick ? 30_000 : 60_000 }

  if (name === 'fanout') {
    for (const n of s.fanoutSizes) {
      await withSession(s, c, name, {}, async (x) => {
        await x.client.request('connect', { url: urlOf(c, x.ports[0]!), proto: protoOf(c), impl: x.impl, groups: [{ n, topic: 'profile' }] }, 120_000)
        await sleep(300)
        const base = { kind: 'fanout', topic: 'profile', maxMs: s.phaseMs } as const
        push('max rate, 1 publish/turn', n, await measure(x, { ...base, mode: 'turn', maxEvents: 100_000, firstSeq: nextSeq(100_000) }, n, waits))
        push(`bursts of ${s.burst}/turn`, n, await measure(x, { ...base, mode: 'burst', burst: s.burst, maxEvents: 100_000, firstSeq: nextSeq(100_000) }, n, waits))
        const fixed = fixedPlan(s, n)
        push(fixed.label, n, await measure(x, { ...base, mode: 'rate', rate: fixed.rate, maxEvents: fixed.events, maxMs: 60_000, firstSeq: nextSeq(fixed.events) }, n, waits))
      })
    }
  } else if (name === 'per-user') {
    const admins = s.perUserAdmins
    // One session per user count (its own server process), as fanout has one per size.
    for (const users of s.perUserUsers) {
      await withSession(s, c, name, {}, async (x) => {
        await x.client.request(
          'connect',
          { url: urlOf(c, x.ports[0]!), proto: protoOf(c), impl: x.impl, groups: [{ n: users, topic: 'user:{i}' }, { n: admins, topic: 'profile' }] },
          120_000,
        )
        await sleep(300)
        // One event = the profile app's write: user:<id> and profile. Whole passes over the users keep
        // every user's expected count equal.
        const plan = { kind: 'per-user', users, mode: 'turn', maxEvents: users * 20, maxMs: s.phaseMs } as const
        const r = await measure(x, { ...plan, firstSeq: nextSeq(users * 20) }, 1 + admins, waits)
        push('max rate, 1 update/turn', users + admins, { ...r, multiTopicPath: r.multiTopicPath })
      })
    }
  } else if (name === 'cross-instance') {
    const n = s.crossSubscribers
    await withSession(s, c, name, { instances: 2, bus: 'redis' }, async (x) => {
      // Subscribers on instance 1, publisher on instance 0.
      await x.client.request('connect', { url: urlOf(c, x.ports[1]!), proto: protoOf(c), impl: x.impl, groups: [{ n, topic: 'profile' }] }, 120_000)
      await sleep(500)
      const base = { kind: 'fanout', topic: 'profile', maxMs: s.phaseMs } as const
      const fixed = fixedPlan(s, n)
      push(fixed.label, n, await measure(x, { ...base, mode: 'rate', rate: fixed.rate, maxEvents: fixed.events, maxMs: 60_000, firstSeq: nextSeq(fixed.events) }, n, waits, 0))
      // Capped in count: a publisher without backpressure would queue minutes of fanout.
      push('paced, 1 publish/turn', n, await measure(x, { ...base, mode: 'turn', maxEvents: s.overloadEvents, firstSeq: nextSeq(s.overloadEvents) }, n, waits, 0))
      push(
        `overload, bursts of ${s.overloadBurst}`,
        n,
        await measure(x, { ...base, mode: 'burst', burst: s.overloadBurst, maxEvents: s.overloadEvents, firstSeq: nextSeq(s.overloadEvents) }, n, waits, 0),
      )
    })
  } else if (name === 'memory') {
    // All N connections go to one server process; the client side is split over as many processes
    // as it takes to keep each under `connsPerClient` sockets (the limit of open files is per
    // process: 20,000 here, and the server needs N of its own).
    const n = s.memoryConnections
    const procs = Math.max(1, Math.ceil(n / s.connsPerClient))
    await withSession(s, c, name, { exposeGc: true, clients: procs }, async (x) => {
      if (x.fdLimits[0]! < n + 64) {
        throw new Error(`the server process may open ${x.fdLimits[0]} files, ${n} connections need about ${n + 64} (raise ulimit -n, hard limit included)`)
      }
      await sleep(300)
      const before = await x.servers[0]!.request('mark', { gc: true })
      const t0 = Date.now()
      const conns = await Promise.all(
        x.clients.map((cl, i) => {
          const from = Math.floor((i * n) / procs)
          const to = Math.floor(((i + 1) * n) / procs)
          return cl.request('connect', { url: urlOf(c, x.ports[0]!), proto: protoOf(c), impl: x.impl, groups: [{ n: to - from, from, topic: 'user:{i}' }] }, 180_000)
        }),
      )
      const connectMs = Date.now() - t0
      await sleep(1000)
      const after = await x.servers[0]!.request('mark', { gc: true })
      if (after.connections !== n) throw new Error(`${after.connections} of ${n} connections open at the server`)
      push('idle subscribed connections', n, {
        connections: after.connections,
        clientProcesses: procs,
        perClient: conns.map((r: { connected: number }) => r.connected).join('+'),
        connectMs,
        rssPerConnKB: (after.rss - before.rss) / n / 1024,
        heapPerConnKB: (after.heapUsed - before.heapUsed) / n / 1024,
        externalPerConnKB: (after.external - before.external) / n / 1024,
        heapCommittedPerConnKB: (after.heapTotal - before.heapTotal) / n / 1024,
        rssMB: after.rss / 2 ** 20,
        lost: 0,
      })
    })
  } else if (name === 'recovery') {
    const n = s.recoveryClients
    const missed = s.recoveryMissed
    await withSession(s, c, name, { recovery: true }, async (x) => {
      await x.client.request('connect', { url: urlOf(c, x.ports[0]!), proto: protoOf(c), impl: x.impl, groups: [{ n, topic: 'profile' }], track: true }, 120_000)
      await sleep(300)
      const base = { kind: 'fanout', topic: 'profile', mode: 'turn', maxMs: 10_000 } as const
      // Every client gets a position, then all drop; the server publishes while they are away.
      const warm = await measure(x, { ...base, maxEvents: 5, firstSeq: nextSeq(5) }, n, waits)
      await x.client.request('disconnectAll')
      await sleep(500)
      await x.servers[0]!.request('publish', { plan: { ...base, maxEvents: missed, firstSeq: nextSeq(missed) } })
      const r = await x.client.request('reconnectAll', { missed, timeoutMs: 15_000 }, 30_000)
      push(`${n} reconnect at once`, n, {
        recoverMs: r.timedOut ? NaN : r.ms,
        timedOut: r.timedOut,
        recovered: r.recovered,
        resynced: r.resynced,
        lost: r.lost + warm.lost,
        dupes: r.dupes,
        clientCpuPct: (100 * r.clientCpuUs) / r.clientWallUs,
      })
    })
  }
  return rows
}

function f(v: unknown, digits = 1): string {
  return typeof v === 'number' ? (Number.isFinite(v) ? v.toFixed(digits) : '—') : String(v)
}

export function describe(r: Row): string {
  const head = `${r.scenario} | ${r.phase} | n=${r.size} | ${r.contender} | round ${r.round}`
  if (r.scenario === 'memory') {
    return `${head}: ${f(r.rssPerConnKB, 2)} KB RSS/conn, ${f(r.heapPerConnKB, 2)} KB heap/conn, ${r.connections} connections at the server from ${r.clientProcesses} client process(es) (${r.perClient}), connected in ${f(r.connectMs, 0)} ms, server RSS ${f(r.rssMB, 0)} MB`
  }
  if (r.scenario === 'recovery') return `${head}: ${f(r.recoverMs, 0)} ms, recovered ${r.recovered}, resynced ${r.resynced}, lost ${r.lost}`
  const via = r.scenario === 'per-user' && r.multiTopicPath ? `, 2 topics via ${r.multiTopicPath}` : ''
  return `${head}: ${f(r.deliveriesPerSec, 0)} deliveries/s, ${f(r.cpuPerDeliveryUs, 2)} µs CPU/delivery, p50 ${f(r.p50Ms, 2)} p99 ${f(r.p99Ms, 2)} max ${f(r.maxMs, 1)} ms, lost ${r.lost}, other CPU ${f(r.foreignCpuPct, 0)}%, server CPU ${f(r.serverCpuPct, 0)}%, client CPU ${f(r.clientCpuPct, 0)}% (${f(r.clientCpuPerDeliveryUs, 1)} µs/delivery, ${f(100 * (r.clientKernelShare as number), 0)}% kernel)${via}`
}
