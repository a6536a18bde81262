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

  snapshot(gauges: Pick<RealtimeStats, 'connections' | 'subscriptions' | 'topics' | 'busStatus'>): RealtimeStats {
    return {
      ...gauges,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      published: this.published,
      delivered: this.delivered,
      bytesOut: this.bytesOut,
      drops: { ...this.drops },
      errors: { ...this.errors },
      closes: { ...this.closes },
      refused: { ...this.refused },
    }
  }
}
