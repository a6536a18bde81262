/**
 * A log-linear latency histogram in microseconds (32 sub-buckets per power of two: ~3% error),
 * fixed size, no allocation per sample.
 */
const SUB = 32
const SUB_BITS = 5
const LINEAR = SUB * 2 // values below 64 µs are exact
const BUCKETS = LINEAR + (31 - SUB_BITS - 1) * SUB

export class Histogram {
  counts = new Float64Array(BUCKETS)
  count = 0
  max = 0
  sum = 0

  record(us: number): void {
    let v = us < 0 ? 0 : Math.floor(us)
    if (v > 0x7fffffff) v = 0x7fffffff
    this.count++
    this.sum += v
    if (v > this.max) this.max = v
    this.counts[Histogram.index(v)]!++
  }

  static index(v: number): number {
    if (v < LINEAR) return v
    const msb = 31 - Math.clz32(v)
    const shift = msb - SUB_BITS
    return LINEAR + (msb - SUB_BITS - 1) * SUB + ((v >>> shift) - SUB)
  }

  /** The upper bound of bucket `i`. */
  static upper(i: number): number {
    if (i < LINEAR) return i
    const k = i - LINEAR
    const msb = Math.floor(k / SUB) + SUB_BITS + 1
    const shift = msb - SUB_BITS
    return ((k % SUB) + SUB + 1) * 2 ** shift - 1
  }

  percentile(p: number): number {
    if (this.count === 0) return NaN
    const target = Math.ceil((p / 100) * this.count)
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!
      if (seen >= target) return Math.min(Histogram.upper(i), this.max)
    }
    return this.max
  }

  summary() {
    return {
      count: this.count,
      p50: this.percentile(50),
      p99: this.percentile(99),
      max: this.max,
      mean: this.count ? this.sum / this.count : NaN,
    }
  }

  reset(): void {
    this.counts.fill(0)
    this.count = 0
    this.max = 0
    this.sum = 0
  }
}
