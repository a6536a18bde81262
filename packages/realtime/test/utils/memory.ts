import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

let gcFn: (() => void) | undefined

/**
 * A full garbage collection. Uses `global.gc` when the worker runs with `--expose-gc`; otherwise
 * turns the flag on at run time and takes `gc` from a fresh context (V8 exposes it to contexts
 * created after the flag is set).
 */
export function collectGarbage(): void {
  if (!gcFn) {
    const global = globalThis as { gc?: () => void }
    if (typeof global.gc === 'function') gcFn = global.gc
    else {
      setFlagsFromString('--expose-gc')
      gcFn = runInNewContext('gc') as () => void
    }
  }
  // Twice: the first pass runs finalizers that release more.
  gcFn()
  gcFn()
}

export const MiB = 1024 * 1024

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`
}

/** Samples RSS on a timer (and on demand) and keeps the peak. */
export class PeakSampler {
  peakRss = 0
  private timer: ReturnType<typeof setInterval> | undefined

  start(everyMs = 5): this {
    this.sample()
    this.timer = setInterval(() => this.sample(), everyMs)
    return this
  }

  sample(): void {
    const { rss } = process.memoryUsage()
    if (rss > this.peakRss) this.peakRss = rss
  }

  stop(): void {
    this.sample()
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }
}

/** Counts the process' active handles and requests by kind ('Timeout', 'TCPSocketWrap', ...). */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1
  return counts
}
