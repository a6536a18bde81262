import type { Server as HttpServer } from 'node:http'

/** The three contenders of every scenario. */
export type ContenderName = 'baseline-ws' | 'socket.io' | 'realtime'
export const CONTENDERS: ContenderName[] = ['baseline-ws', 'socket.io', 'realtime']

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
  connections(): number
  close(): Promise<void>
}
