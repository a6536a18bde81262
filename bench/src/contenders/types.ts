import type { Server as HttpServer } from 'node:http'

/**
 * A contender of a run: 'baseline-ws', 'socket.io', 'realtime' (the library's work tree), or
 * 'realtime@<commit>' (the library's `packages/realtime/src` as committed at that commit, loaded
 * from a snapshot; cli.ts resolves the ref given on the command line to its short commit).
 */
export type ContenderName = 'baseline-ws' | 'socket.io' | 'realtime' | `realtime@${string}`
/** The default contenders of every scenario. */
export const CONTENDERS: ContenderName[] = ['baseline-ws', 'socket.io', 'realtime']

/** Which server a contender runs: the two @app/realtime contenders run the same contender code. */
export type ContenderKind = 'baseline-ws' | 'socket.io' | 'realtime'
export function kindOf(c: string): ContenderKind {
  if (c === 'baseline-ws' || c === 'socket.io' || c === 'realtime') return c
  if (c.startsWith('realtime@') && c.length > 'realtime@'.length) return 'realtime'
  throw new Error(`unknown contender ${c} (baseline-ws, socket.io, realtime or realtime@<git ref>)`)
}
export const isRealtime = (c: string) => kindOf(c) === 'realtime'

export interface ContenderOptions {
  http: HttpServer
  /** 'memory' in one process, 'redis' for the cross-instance scenario. */
  bus: 'memory' | 'redis'
  redisUrl: string
  /**
   * Seed nodes of a Redis Cluster (`BENCH_REDIS_CLUSTER=host:port,…`): with it, bus 'redis' runs
   * on the cluster (RedisBus `cluster`, Socket.IO's sharded adapter) instead of `redisUrl`.
   */
  redisCluster?: { host: string; port: number }[]
  /** Key and channel prefix of this run on the shared Redis (never flushed, only its keys removed). */
  prefix: string
  /** Socket.IO: enable connection state recovery (the recovery scenario only). */
  recovery: boolean
  /** @app/realtime: import the built package (dist) instead of the TypeScript source. */
  fromDist: boolean
}

/** A running contender server: what the publish loop and the orchestrator need of it. */
export interface ContenderServer {
  /** Publishes one payload to one topic; a Promise when the contender's publish is asynchronous. */
  publish(topic: string, payload: unknown): unknown
  /** Publishes one payload to several topics in one call, where the contender has such a call. */
  publishMany?(topics: string[], payload: unknown): unknown
  /** How a publish of one payload to several topics is made (printed with the per-user scenario). */
  multiTopicPath: string
  connections(): number
  close(): Promise<void>
}

/** The Redis Cluster seed nodes of `BENCH_REDIS_CLUSTER` (`host:port,host:port`), if set. */
export function clusterNodesFromEnv(): { host: string; port: number }[] | undefined {
  const list = process.env.BENCH_REDIS_CLUSTER
  if (!list) return undefined
  return list.split(',').map((node) => {
    const colon = node.lastIndexOf(':')
    return { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) }
  })
}
