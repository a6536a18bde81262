/**
 * One server process of the bench: starts a contender on 127.0.0.1 (random port) and answers the
 * orchestrator: `mark` (CPU and memory), `publish` (runs a bounded publish loop), `connections`.
 */
import http from 'node:http'
import { setImmediate as turn } from 'node:timers/promises'
import { nowUs, openFilesLimit, serve, sleep } from './ipc.js'
import { touchYoungGeneration } from './young-generation.js'
import { clusterNodesFromEnv, kindOf, type ContenderName, type ContenderOptions, type ContenderServer } from './contenders/types.js'

const [contender, bus = 'memory', flags = ''] = process.argv.slice(2) as [ContenderName, 'memory' | 'redis', string]

async function start(o: ContenderOptions): Promise<ContenderServer> {
  // realtime@<commit> runs the realtime contender on the snapshot the orchestrator named in
  // BENCH_REALTIME_SRC: its own process, its own copy of the library.
  switch (kindOf(contender)) {
    case 'baseline-ws':
      return (await import('./contenders/baseline-ws.js')).createBaselineWs(o)
    case 'socket.io':
      return (await import('./contenders/socketio.js')).createSocketIo(o)
    case 'realtime':
      return (await import('./contenders/realtime.js')).createRealtime(o)
    default:
      throw new Error(`unknown contender ${contender}`)
  }
}

const httpServer = http.createServer((_req, res) => {
  res.statusCode = 404
  res.end()
})
httpServer.maxConnections = 1_000_000
const server = await start({
  http: httpServer,
  bus,
  redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
  redisCluster: clusterNodesFromEnv(),
  prefix: process.env.BENCH_PREFIX ?? 'bench:',
  recovery: flags.includes('recovery'),
  fromDist: flags.includes('dist'),
})
await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', 4096, r))
// The memory scenario (the only one run with --expose-gc) marks RSS before and after connecting.
const exposedGc = (globalThis as { gc?: () => void }).gc
if (exposedGc) touchYoungGeneration(exposedGc)

// Peak RSS between marks, sampled every 50 ms (cheap: memoryUsage.rss() reads /proc once).
let peakRss = 0
const sampler = setInterval(() => {
  const rss = process.memoryUsage.rss()
  if (rss > peakRss) peakRss = rss
}, 50)
sampler.unref()

/** A published event: a profile update, with its sequence number and publish time (µs, monotonic). */
function payload(s: number, userId: number) {
  return { s, t: nowUs(), userId, tgUsername: `user${userId}`, photoUrl: `https://t.me/i/userpic/320/u${userId}.jpg` }
}

export interface PublishPlan {
  /** 'fanout': every event to `topic`; 'per-user': event e to `user:<e % users>` and to `profile`. */
  kind: 'fanout' | 'per-user'
  topic?: string
  users?: number
  /** 'turn': one event per event-loop turn; 'burst': `burst` events per turn; 'rate': `rate` events/s. */
  mode: 'turn' | 'burst' | 'rate'
  burst?: number
  rate?: number
  maxEvents: number
  maxMs: number
  /** First sequence number (so that consecutive phases never repeat one). */
  firstSeq?: number
}

async function publishLoop(p: PublishPlan) {
  const t0 = nowUs()
  const deadline = t0 + p.maxMs * 1000
  const first = p.firstSeq ?? 0
  let e = 0
  let rejected = 0
  const onReject = () => {
    rejected++
  }
  while (e < p.maxEvents && nowUs() < deadline) {
    if (p.mode === 'rate') {
      const wait = (t0 + (e * 1e6) / p.rate! - nowUs()) / 1000
      if (wait > 1) await sleep(wait)
    }
    const n = p.mode === 'burst' ? p.burst! : 1
    const pending: unknown[] = []
    for (let k = 0; k < n && e < p.maxEvents; k++, e++) {
      const s = first + e
      if (p.kind === 'fanout') {
        pending.push(server.publish(p.topic ?? 'profile', payload(s, 0)))
      } else {
        const u = e % p.users!
        const body = payload(s, u)
        if (server.publishMany) pending.push(server.publishMany([`user:${u}`, 'profile'], body))
        else pending.push(server.publish(`user:${u}`, body), server.publish('profile', body))
      }
    }
    // Asynchronous publishers (Redis, @app/realtime) are awaited per turn: their backpressure counts.
    const promises = pending.filter((x): x is Promise<unknown> => x instanceof Promise)
    if (promises.length) await Promise.all(promises.map((x) => x.catch(onReject)))
    if (p.mode !== 'rate') await turn()
  }
  return { events: e, t0, t1: nowUs(), rejected, multiTopicPath: server.multiTopicPath }
}

serve(
  {
    mark(m: { gc?: boolean }) {
      if (m.gc && globalThis.gc) {
        globalThis.gc()
        globalThis.gc()
      }
      const mem = process.memoryUsage()
      const cpu = process.cpuUsage()
      const out = {
        at: nowUs(),
        cpuUs: cpu.user + cpu.system,
        userUs: cpu.user,
        sysUs: cpu.system,
        rss: mem.rss,
        heapUsed: mem.heapUsed,
        heapTotal: mem.heapTotal,
        external: mem.external,
        peakRss: Math.max(peakRss, mem.rss),
        connections: server.connections(),
      }
      peakRss = mem.rss
      return out
    },
    publish: (m: { plan: PublishPlan }) => publishLoop(m.plan),
    connections: () => server.connections(),
  },
  async () => {
    await Promise.race([server.close(), sleep(1000)])
  },
)
process.send!({ type: 'listening', port: (httpServer.address() as { port: number }).port, multiTopicPath: server.multiTopicPath, fdLimit: openFilesLimit() })
