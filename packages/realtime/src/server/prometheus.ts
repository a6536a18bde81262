/**
 * Prometheus metrics of a realtime server, registered on the caller's prom-client `Registry`.
 *
 * Nothing here imports prom-client: the metrics are collectors in prom-client's `Metric` shape
 * (`name`, `help`, `type`, `get()`), read from `realtime.stats()` when the registry is scraped. So
 * `@app/realtime/server` loads without prom-client, the hot path keeps its plain counters, and a
 * scrape reads one consistent snapshot for every metric.
 */
import type { LatencyStats } from './latency.js'
import type { RealtimeStats } from './types.js'

/** What the collector needs of the server: `stats()`. */
export interface StatsSource {
  stats(): RealtimeStats
}

/** One sample, as prom-client's `MetricValue`. */
export interface PrometheusSample {
  value: number
  labels: Record<string, string | number>
  metricName?: string
}

/** A metric in the shape prom-client's `Registry` collects (`registerMetric`, `metrics()`). */
export interface PrometheusMetric {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram'
  aggregator: 'sum'
  get(): Promise<{ name: string; help: string; type: string; values: PrometheusSample[]; aggregator: 'sum' }>
  reset(): void
}

/** The part of prom-client's `Registry` that is used. */
export interface PrometheusRegistry {
  /**
   * Takes a `PrometheusMetric`. Typed `never` because prom-client types the parameter as its own
   * metric classes, while its registry only calls `get()` (and `reset()`) of what it is given.
   */
  registerMetric(metric: never): void
  removeSingleMetric(name: string): void
}

/** Options of `createPrometheusMetrics`. */
export interface PrometheusMetricsOptions {
  /** A prom-client `Registry` (or its default `register`). */
  registry: PrometheusRegistry
  /** Prefix of every metric name. Default `'realtime_'`. */
  prefix?: string
}

/** What `createPrometheusMetrics` returns. */
export interface PrometheusMetrics {
  /** The registered metric names. */
  readonly names: readonly string[]
  /** Removes the metrics from the registry. */
  unregister(): void
}

type Read = (stats: RealtimeStats) => PrometheusSample[]

interface Definition {
  name: string
  help: string
  type: PrometheusMetric['type']
  read: Read
}

const one = (value: number): PrometheusSample[] => [{ value, labels: {} }]

function byLabel(label: string, record: Record<string, number>): PrometheusSample[] {
  return Object.keys(record)
    .sort()
    .map((key) => ({ value: record[key] as number, labels: { [label]: key } }))
}

function histogram(name: string, stats: LatencyStats): PrometheusSample[] {
  const samples: PrometheusSample[] = stats.buckets.map(({ le, count }) => ({
    metricName: `${name}_bucket`,
    value: count,
    labels: { le },
  }))
  samples.push(
    { metricName: `${name}_bucket`, value: stats.count, labels: { le: '+Inf' } },
    { metricName: `${name}_sum`, value: stats.sum, labels: {} },
    { metricName: `${name}_count`, value: stats.count, labels: {} },
  )
  return samples
}

/** Every metric: name (less the prefix), type, help and how it reads `stats()`. */
function definitions(prefix: string): Definition[] {
  const d = (name: string, type: Definition['type'], help: string, read: Read): Definition => ({
    name: prefix + name,
    type,
    help,
    read,
  })
  return [
    d('connections', 'gauge', 'Open WebSocket connections.', (s) => one(s.connections)),
    d('subscriptions', 'gauge', 'Topic subscriptions of the open connections.', (s) => one(s.subscriptions)),
    d('topics', 'gauge', 'Topics with local subscribers or server-side listeners.', (s) => one(s.topics)),
    d('bus_up', 'gauge', '1 while the bus is up (connected), 0 while it is down.', (s) => one(s.busStatus === 'up' ? 1 : 0)),
    d('connections_opened_total', 'counter', 'WebSocket connections accepted.', (s) => one(s.connectionsOpened)),
    d('frames_received_total', 'counter', 'Protocol frames received from clients.', (s) => one(s.messagesIn)),
    d('frames_sent_total', 'counter', 'Protocol frames sent to clients (every type).', (s) => one(s.messagesOut)),
    d('bytes_sent_total', 'counter', 'Bytes of the frames sent to clients.', (s) => one(s.bytesOut)),
    d('patches_published_total', 'counter', 'Patches published through this instance.', (s) => one(s.published)),
    d('patches_delivered_total', 'counter', 'Patch frames handed to subscribers of this instance.', (s) => one(s.delivered)),
    d('errors_total', 'counter', 'Error frames sent to clients, by error code.', (s) => byLabel('code', s.errors)),
    d('closes_total', 'counter', 'Closed connections, by close code.', (s) => byLabel('code', s.closes)),
    d('drops_total', 'counter', 'Dropped frames, subscriptions and connections, by reason.', (s) => byLabel('reason', s.drops)),
    d('refusals_total', 'counter', 'Refused upgrades, credentials and subscriptions, by reason.', (s) => byLabel('reason', s.refused)),
    d('bus_reconnects_total', 'counter', 'Times the bus came back up after being down.', (s) => one(s.busReconnects)),
    d('draining', 'gauge', '1 from close() on (the instance is draining its connections, or closed), else 0.', (s) => one(s.draining ? 1 : 0)),
    d('drain_remaining', 'gauge', 'Connections still open on a draining instance.', (s) => (s.draining ? one(s.draining.remaining) : [])),
    d('connections_moved_total', 'counter', 'Connections closed with 4010 to move them to another instance, by reason (drain, rebalance).', (s) =>
      byLabel('reason', s.moved),
    ),
    d('rebalance_share', 'gauge', 'The even share of connections per instance, as rebalance counts it.', (s) =>
      s.rebalance ? one(s.rebalance.share) : [],
    ),
    d('bus_publish_waiting', 'gauge', 'publishTopic calls held back by the bus flow control (delivery is behind on some instance).', (s) =>
      s.busFlowControl ? one(s.busFlowControl.waiting) : [],
    ),
    d('bus_publish_window', 'gauge', 'Publishes the bus flow control lets run ahead of confirmed delivery.', (s) =>
      s.busFlowControl ? one(s.busFlowControl.window) : [],
    ),
    d('bus_delivery_lag_seconds', 'gauge', 'How far behind the slowest receiving instance was at the last flow-control probe.', (s) =>
      s.busFlowControl ? one(s.busFlowControl.lastLagMs / 1000) : [],
    ),
    d('presence_members_held', 'gauge', 'Presence members this instance holds (one per principal and topic).', (s) =>
      s.presence ? one(s.presence.held) : [],
    ),
    d('presence_changes_sent_total', 'counter', 'Presence join and leave entries sent to watchers.', (s) =>
      s.presence ? one(s.presence.changesSent) : [],
    ),
    d('presence_frames_sent_total', 'counter', 'Presence frames sent to watchers.', (s) => (s.presence ? one(s.presence.framesSent) : [])),
    d('presence_capped_total', 'counter', 'Presence joins not listed because the topic was at maxMembers.', (s) =>
      s.presence ? one(s.presence.capped) : [],
    ),
    d(
      'publish_to_send_seconds',
      'histogram',
      'From the bus accepting a patch to its frame handed to the last local subscriber, once per patch.',
      (s) => histogram(prefix + 'publish_to_send_seconds', s.publishToSend),
    ),
    d('bus_publish_seconds', 'histogram', 'Duration of the bus publish of each publishTopic.', (s) =>
      histogram(prefix + 'bus_publish_seconds', s.busPublish),
    ),
  ]
}

/**
 * Registers the metrics of `realtime` on a prom-client registry (docs/observability.md):
 *
 * ```ts
 * import { Registry } from 'prom-client'
 * const registry = new Registry()
 * createPrometheusMetrics(realtime, { registry })
 * app.get('/metrics', async (_, reply) => reply.type(registry.contentType).send(await registry.metrics()))
 * ```
 */
export function createPrometheusMetrics(realtime: StatsSource, options: PrometheusMetricsOptions): PrometheusMetrics {
  const { registry } = options
  const prefix = options.prefix ?? 'realtime_'
  // A registry scrape calls every metric's get() in the same tick: they share one snapshot.
  let snapshot: RealtimeStats | undefined
  const read = (): RealtimeStats => {
    if (!snapshot) {
      snapshot = realtime.stats()
      queueMicrotask(() => (snapshot = undefined))
    }
    return snapshot
  }
  const metrics: PrometheusMetric[] = definitions(prefix).map(({ name, help, type, read: readSamples }) => ({
    name,
    help,
    type,
    aggregator: 'sum',
    async get() {
      return { name, help, type, values: readSamples(read()), aggregator: 'sum' as const }
    },
    // The values are the server's own counters: a registry reset does not rewind them.
    reset() {},
  }))
  const registered: string[] = []
  try {
    for (const metric of metrics) {
      registry.registerMetric(metric as never)
      registered.push(metric.name)
    }
  } catch (error) {
    for (const name of registered) registry.removeSingleMetric(name)
    throw error
  }
  return {
    names: metrics.map((m) => m.name),
    unregister() {
      for (const name of registered.splice(0)) registry.removeSingleMetric(name)
    },
  }
}
