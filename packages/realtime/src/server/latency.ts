/**
 * Upper bounds (seconds) of the latency histograms: sub-millisecond for the in-memory bus up to
 * seconds for a struggling Redis. The same bounds become the `le` buckets of Prometheus.
 */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
]

/** A latency histogram as `stats()` reports it (the shape of a Prometheus histogram). */
export interface LatencyStats {
  /** Observations so far. */
  count: number
  /** Sum of the observations, in seconds. */
  sum: number
  /**
   * Cumulative counts: `buckets[i].count` observations took at most `buckets[i].le` seconds. The
   * last bound is finite; observations above it count only in `count` (Prometheus' `+Inf`).
   */
  buckets: { le: number; count: number }[]
}

/**
 * A fixed-bucket histogram: `observe` is a short scan and two additions, no allocation, so it can
 * run once per publish and once per fanout.
 */
export class LatencyHistogram {
  private readonly counts: number[]
  private total = 0
  private sum = 0

  constructor(private readonly bounds: readonly number[] = LATENCY_BUCKETS_SECONDS) {
    this.counts = bounds.map(() => 0)
  }

  /** Records one duration, in seconds. */
  observe(seconds: number): void {
    const value = seconds > 0 ? seconds : 0
    this.total++
    this.sum += value
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        ;(this.counts[i] as number)++
        return
      }
    }
  }

  snapshot(): LatencyStats {
    let cumulative = 0
    return {
      count: this.total,
      sum: this.sum,
      buckets: this.bounds.map((le, i) => ({ le, count: (cumulative += this.counts[i] as number) })),
    }
  }
}

/**
 * Estimates a quantile (0..1) of a histogram by linear interpolation inside its bucket, as
 * Prometheus' `histogram_quantile` does. `undefined` with no observations; the last finite bound
 * when the quantile lies above it.
 */
export function latencyQuantile(stats: LatencyStats, q: number): number | undefined {
  if (stats.count === 0) return undefined
  const rank = q * stats.count
  let lowerBound = 0
  let lowerCount = 0
  for (const { le, count } of stats.buckets) {
    if (count >= rank) {
      const inBucket = count - lowerCount
      return inBucket === 0 ? le : lowerBound + ((le - lowerBound) * (rank - lowerCount)) / inBucket
    }
    lowerBound = le
    lowerCount = count
  }
  return lowerBound
}
