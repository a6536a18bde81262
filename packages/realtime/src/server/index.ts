/**
 * `@app/realtime/server`: the WebSocket server and the default in-memory bus (Node only).
 */
export { createRealtimeServer } from './server.js'
export type { TrustProxy } from './admission.js'
export { DEFAULT_LIMITS } from './limits.js'
export {
  createPrometheusMetrics,
  type PrometheusMetric,
  type PrometheusMetrics,
  type PrometheusMetricsOptions,
  type PrometheusRegistry,
  type PrometheusSample,
  type StatsSource,
} from './prometheus.js'
export { LATENCY_BUCKETS_SECONDS, latencyQuantile, type LatencyStats } from './latency.js'
export type {
  CloseOptions,
  DrainStats,
  ExpiringPrincipal,
  Limits,
  Logger,
  PresenceOptions,
  PresenceStats,
  Principal,
  RealtimeServer,
  RealtimeServerOptions,
  RealtimeStats,
  RebalanceOptions,
  TopicActivity,
  TopicListenerHandle,
} from './types.js'
export { InMemoryBus, type InMemoryBusOptions } from '../bus/memory.js'
export {
  compareOffsets,
  DEFAULT_HISTORY_SIZE,
  DEFAULT_HISTORY_TTL_MS,
  type Bus,
  type BusListener,
  type BusMessage,
  type BusPresence,
  type BusStatus,
  type HistoryOptions,
  type PresenceChange,
  type PresenceListener,
  type HistoryResult,
  type LoadReport,
  type PublishOptions,
} from '../bus/types.js'
export type { RebalanceStats } from './rebalance.js'
export { RealtimeError, isRealtimeError, RealtimeErrorCode } from '../errors.js'
export type { Position, TopicMap, TopicName, TopicPayload, TopicsPayload } from '../topics.js'
