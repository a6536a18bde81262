/**
 * What operators see of an instance: `/metrics` (Prometheus text), `/healthz` (the bus status),
 * and the `$stats` topic that the admin activity page aggregates across instances.
 */
import { timingSafeEqual } from 'node:crypto'
import { createPrometheusMetrics, isRealtimeError, latencyQuantile, type RealtimeStats } from '@app/realtime/server'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge, Registry } from 'prom-client'
import type { ActivitySample, Refusal } from '../shared/topics.js'
import { bearerToken } from './principal.js'

/** Refusals kept per instance for the activity page. */
const RECENT_REFUSALS = 20

/** The last refusals of this instance (forbidden subscriptions, refused credentials). */
export class RefusalLog {
  private readonly entries: Refusal[] = []

  record(refusal: Omit<Refusal, 'at'>): void {
    this.entries.unshift({ at: Date.now(), ...refusal })
    if (this.entries.length > RECENT_REFUSALS) this.entries.length = RECENT_REFUSALS
  }

  recent(): Refusal[] {
    return this.entries.slice()
  }
}

function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * `GET /metrics`: the realtime server's metrics in the Prometheus text format, on a registry of
 * this app (not prom-client's global one: tests run several apps in one process). With
 * `metricsToken` set, the scraper must send `Authorization: Bearer <token>`.
 */
export function registerMetricsRoutes(app: FastifyInstance, metricsToken: string | undefined): void {
  const registry = new Registry()
  const metrics = createPrometheusMetrics(app.realtime, { registry })
  app.addHook('onClose', async () => metrics.unregister())
  // The app's own: the read cache of users (what `/api/stats` used to show).
  const cache = app.userCache
  for (const [name, help, read] of [
    ['profile_app_user_cache_hits_total', 'Reads of a user served from the cache.', () => cache.hits],
    ['profile_app_user_cache_misses_total', 'Reads of a user that went to the database.', () => cache.misses],
    ['profile_app_user_cache_invalidations_total', 'Users dropped from the cache by a write on any instance.', () => cache.invalidations],
  ] as const) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset()
        this.inc(read())
      },
    })
  }

  // The outbox: rows waiting and the age of the oldest (read from the database at each scrape),
  // rows published, and how long a row waited from its commit to its publish.
  const relay = app.outboxRelay
  new Gauge({
    name: 'profile_app_outbox_backlog_rows',
    help: 'Outbox rows committed and not yet published.',
    registers: [registry],
    async collect() {
      this.set((await relay.refreshBacklog().catch(() => relay.stats())).backlog)
    },
  })
  new Gauge({
    name: 'profile_app_outbox_oldest_age_seconds',
    help: 'Age of the oldest outbox row not yet published (0 when none waits).',
    registers: [registry],
    collect() {
      this.set(relay.stats().oldestAgeMs / 1000)
    },
  })
  new Counter({
    name: 'profile_app_outbox_published_total',
    help: 'Outbox rows published by this instance.',
    registers: [registry],
    collect() {
      this.reset()
      this.inc(relay.stats().published)
    },
  })
  for (const [name, q] of [
    ['profile_app_outbox_publish_latency_p50_seconds', 0.5],
    ['profile_app_outbox_publish_latency_p99_seconds', 0.99],
  ] as const) {
    new Gauge({
      name,
      help: `Commit-to-publish time of outbox rows, quantile ${q} (estimated from a histogram; 0 before the first).`,
      registers: [registry],
      collect() {
        this.set(latencyQuantile(relay.stats().publishLatency, q) ?? 0)
      },
    })
  }

  app.get('/metrics', { logLevel: 'warn' }, async (request, reply) => {
    if (metricsToken !== undefined && !sameSecret(bearerToken(request.headers), metricsToken)) {
      return reply
        .status(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: { code: 'UNAUTHORIZED', message: 'send Authorization: Bearer <METRICS_TOKEN>' } })
    }
    return reply.type(registry.contentType).send(await registry.metrics())
  })

  // `ok` and the bus status; 503 while the bus is down, so a load balancer stops routing here.
  // 503 too while the realtime server drains (a deploy: SIGTERM, `close()`), so the balancer takes
  // the instance out, and when the outbox stopped draining: its oldest row waits longer than
  // `outboxStaleMs`.
  app.get('/healthz', { logLevel: 'warn' }, async (_request, reply) => {
    const stats = app.realtime.stats()
    const bus = stats.busStatus
    const draining = stats.draining !== undefined
    const { backlog, oldestAgeMs } = await relay.refreshBacklog().catch(() => relay.stats())
    const stale = oldestAgeMs > app.appConfig.outboxStaleMs
    const ok = bus === 'up' && !stale && !draining
    return reply.status(ok ? 200 : 503).send({ ok, bus, draining, outbox: { backlog, oldestAgeMs, stale } })
  })
}

const ms = (seconds: number | undefined) => (seconds === undefined ? null : seconds * 1000)

/** A `stats()` snapshot, with how many of its publishes were this instance's own `$stats` samples. */
export interface StatsSnapshot {
  stats: RealtimeStats
  at: number
  /** `$stats` samples published before `stats` was taken (counted in `stats.published`). */
  ownSamples: number
}

/**
 * One `$stats` sample from two consecutive `stats()` snapshots. "Published" leaves out the
 * instance's own `$stats` samples: on an idle system the activity page must show no traffic.
 */
export function activitySample(
  instanceId: string,
  now: RealtimeStats,
  previous: StatsSnapshot | undefined,
  at: number,
  refusals: Refusal[],
  ownSamples = 0,
): ActivitySample {
  const seconds = previous ? Math.max((at - previous.at) / 1000, 0.001) : 0
  const rate = (current: number, before: number) => (previous ? Math.max(0, current - before) / seconds : 0)
  const published = now.published - ownSamples
  return {
    instanceId,
    at,
    busStatus: now.busStatus,
    connections: now.connections,
    subscriptions: now.subscriptions,
    topics: now.topics,
    totals: {
      connectionsOpened: now.connectionsOpened,
      framesIn: now.messagesIn,
      framesOut: now.messagesOut,
      published,
      delivered: now.delivered,
    },
    rates: {
      framesInPerSec: rate(now.messagesIn, previous?.stats.messagesIn ?? 0),
      framesOutPerSec: rate(now.messagesOut, previous?.stats.messagesOut ?? 0),
      publishedPerSec: rate(published, previous ? previous.stats.published - previous.ownSamples : 0),
      deliveredPerSec: rate(now.delivered, previous?.stats.delivered ?? 0),
    },
    drops: now.drops,
    errors: now.errors,
    closes: now.closes,
    refused: now.refused,
    busReconnects: now.busReconnects,
    latencyMs: {
      publishToSendP50: ms(latencyQuantile(now.publishToSend, 0.5)),
      publishToSendP99: ms(latencyQuantile(now.publishToSend, 0.99)),
      busPublishP50: ms(latencyQuantile(now.busPublish, 0.5)),
      busPublishP99: ms(latencyQuantile(now.busPublish, 0.99)),
    },
    busiestTopics: now.busiestTopics,
    recentRefusals: refusals,
  }
}

/**
 * Publishes this instance's `$stats` sample every `intervalMs` (admins only may subscribe). Every
 * instance publishes its own, with its id: the activity page sums the latest of each.
 */
export function startActivityPublisher(
  app: FastifyInstance,
  options: { instanceId: string; intervalMs: number; refusals: RefusalLog },
): void {
  if (options.intervalMs <= 0) return
  let previous: StatsSnapshot | undefined
  let publishing = false
  // This instance's `$stats` publishes that completed (each is one `published` in stats()).
  let ownSamples = 0
  const timer = setInterval(() => {
    if (publishing) return
    const at = Date.now()
    const stats = app.realtime.stats()
    const sample = activitySample(options.instanceId, stats, previous, at, options.refusals.recent(), ownSamples)
    previous = { stats, at, ownSamples }
    if (stats.busStatus !== 'up') return
    publishing = true
    app
      .publishTopic('$stats', sample)
      .then(() => void ownSamples++)
      .catch((error: unknown) => {
        // The server closing under a tick in flight is not worth a warning.
        if (!(isRealtimeError(error) && error.code === 'CLOSED')) app.log.warn({ err: error }, 'activity: $stats publish failed')
      })
      .finally(() => (publishing = false))
  }, options.intervalMs)
  timer.unref()
  // Before the realtime server closes (its own preClose), so no publish races the closing bus.
  app.addHook('preClose', async () => clearInterval(timer))
}
