/**
 * `@app/realtime/redis`: the Redis bus, for many server instances sharing one Redis or one Redis
 * Cluster.
 * ioredis is a peer dependency: install it beside this package.
 */
export { RedisBus, type RedisBusClusterOptions, type RedisBusOptions } from './bus.js'
export { REDIS_BUS_CONNECTION_OPTIONS } from './connection.js'
export type { FlowControlOptions, FlowControlState } from './flow.js'
export type { FailoverCheckOptions, GapReason } from './failover.js'
export type { RedisSentinelOptions } from './sentinel.js'
export type { ReplicaAckOptions } from './replicas.js'
