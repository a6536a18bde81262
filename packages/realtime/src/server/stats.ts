import { LatencyHistogram } from './latency.js'
import type { RealtimeStats } from './types.js'

/** Increments `record[key]`. */
export function count(record: Record<string, number>, key: string | number, by = 1): void {
  record[key] = (record[key] ?? 0) + by
}

/** The mutable counters behind `stats()`; gauges are computed when asked. */
export class StatsCounters {
  messagesIn = 0
  messagesOut = 0
  published = 0
  delivered = 0
  bytesOut = 0
  drops: Record<string, number> = {}
  errors: Record<string, number> = {}
  closes: Record<string, number> = {}
  refused: Record<string, number> = {}
  /** Connections closed 4010 to move them elsewhere, by why: 'drain', 'rebalance'. */
  moved: Record<string, number> = {}
  connectionsOpened = 0
  /** Times the bus came back up after being down. */
  busReconnects = 0
  /** From the bus accepting a message to its frame handed to the last local subscriber's socket. */
  readonly publishToSend = new LatencyHistogram()
  /** How long `bus.publish` took, per `publishTopic`. */
  readonly busPublish = new LatencyHistogram()

  snapshot(
    gauges: Pick<RealtimeStats, 'connections' | 'subscriptions' | 'topics' | 'busStatus' | 'busiestTopics'>,
  ): RealtimeStats {
    return {
      ...gauges,
      connectionsOpened: this.connectionsOpened,
      busReconnects: this.busReconnects,
      publishToSend: this.publishToSend.snapshot(),
      busPublish: this.busPublish.snapshot(),
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      published: this.published,
      delivered: this.delivered,
      bytesOut: this.bytesOut,
      drops: { ...this.drops },
      errors: { ...this.errors },
      closes: { ...this.closes },
      refused: { ...this.refused },
      moved: { ...this.moved },
    }
  }
}
