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
