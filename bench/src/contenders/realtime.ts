/**
 * @app/realtime: `createRealtimeServer` with the default InMemoryBus, or a RedisBus with bus
 * 'redis'. Limits are the defaults except the per-address and total connection caps (every bench
 * client comes from 127.0.0.1). By default the TypeScript source is loaded (tsx transpiles it with
 * esbuild, as tsup does for dist); `--from-dist` loads the built package instead.
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
    bus = new RedisBus({ url: o.redisUrl, prefix: o.prefix })
  }
  const rt = createRealtimeServer({
    server: o.http,
    path: '/ws',
    ...(bus ? { bus } : {}),
    limits: { maxConnectionsPerAddress: 1_000_000, maxConnections: 1_000_000 },
  })
  return {
    publish: (topic, payload) => rt.publishTopic(topic, payload),
    connections: () => rt.stats().connections,
    close: () => rt.close(),
  }
}
