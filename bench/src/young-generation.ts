import v8 from 'node:v8'

/**
 * Makes the whole young generation resident before the 'before' mark: `--min-semi-space-size`
 * sets its size, but its pages count in RSS only once written to, and how much start-up wrote to
 * depends on the contender (baseline-ws imports ioredis: ~10 MiB more). Without this, that
 * difference was charged to the connections (~1 KB/conn at 10,000 connections).
 */
export function touchYoungGeneration(gc: () => void): void {
  const bytes = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0
  let keep: { i: number; s: string }[] = []
  // ~48 bytes an object and its string: 4x the new space, so that every semi-space page is written.
  for (let i = 0; i < (4 * bytes) / 48; i++) {
    keep.push({ i, s: 'x' + i })
    if (keep.length >= 1000) keep = []
  }
  keep = []
  gc()
  gc()
}
