/**
 * @app/realtime: `createRealtimeServer` with the default InMemoryBus, or a RedisBus with bus
 * 'redis'. Limits are the defaults except the per-address and total connection caps (every bench
 * client comes from 127.0.0.1). By default the TypeScript source is loaded (tsx transpiles it with
 * esbuild, as tsup does for dist); `--from-dist` loads the built package instead.
 *
 * Only the public entry points are imported (`server/index.ts` = `@app/realtime/server`,
 * `redis/index.ts` = `@app/realtime/redis`), from the source directory `BENCH_REALTIME_SRC` (a
 * snapshot of a commit, for `realtime@<ref>` and `--realtime-ref`) or the work tree's: the same
 * code measures any commit, whatever its internal module layout.
 *
 * A publish of one payload to several topics (the per-user scenario: `user:<id>` and `profile`)
 * goes through `publishTopics(topics, payload)` where the loaded library has it, else through one
 * `publishTopic` per topic: each version is measured the way it publishes best.
 */
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { REPO_ROOT } from '../ipc.js'
import { applyExperiments } from '../experiments.js'
import type { ContenderOptions, ContenderServer } from './types.js'

async function load(sub: 'server' | 'redis', fromDist: boolean): Promise<any> {
  if (fromDist) return import(`@app/realtime/${sub}`)
  const root = process.env.BENCH_REALTIME_SRC ?? path.join(REPO_ROOT, 'packages/realtime/src')
  return import(pathToFileURL(path.join(root, `${sub}/index.ts`)).href)
}

export async function createRealtime(o: ContenderOptions): Promise<ContenderServer> {
  const { createRealtimeServer } = await load('server', o.fromDist)
  applyExperiments((process.env.BENCH_EXPERIMENT ?? '').split(',').filter(Boolean))
  let bus: any
  if (o.bus === 'redis') {
    const { RedisBus } = await load('redis', o.fromDist)
    bus = o.redisCluster ? new RedisBus({ cluster: { nodes: o.redisCluster }, prefix: o.prefix }) : new RedisBus({ url: o.redisUrl, prefix: o.prefix })
  }
  const rt = createRealtimeServer({
    server: o.http,
    path: '/ws',
    ...(bus ? { bus } : {}),
    limits: { maxConnectionsPerAddress: 1_000_000, maxConnections: 1_000_000 },
  })
  const multi = typeof rt.publishTopics === 'function'
  return {
    publish: (topic, payload) => rt.publishTopic(topic, payload),
    ...(multi ? { publishMany: (topics: string[], payload: unknown) => rt.publishTopics(topics, payload) } : {}),
    multiTopicPath: multi ? 'publishTopics (one call)' : 'publishTopic per topic',
    connections: () => rt.stats().connections,
    close: () => rt.close(),
  }
}
