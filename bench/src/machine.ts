/**
 * The machine is shared (other work may run beside the bench): measure how much CPU the rest of
 * the machine used during a phase, and wait (bounded) for a quiet machine before a session.
 */
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { sleep } from './ipc.js'

const TICK_US = 1e6 / 100 // USER_HZ is 100 on Linux

/** Busy CPU time of the whole machine so far, in µs (all cores), from /proc/stat. */
export function machineBusyUs(): number {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    const idle = (f[3] ?? 0) + (f[4] ?? 0)
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
    return (total - idle) * TICK_US
  } catch {
    return NaN
  }
}

/**
 * Waits until the machine's busy share over 500 ms is under `maxBusyPct` (of all cores), at most
 * `maxWaitMs`. Returns the last busy share seen.
 */
export async function waitForQuiet(maxBusyPct: number, maxWaitMs: number): Promise<number> {
  if (maxWaitMs <= 0) return NaN
  const deadline = Date.now() + maxWaitMs
  let pct = NaN
  do {
    const b0 = machineBusyUs()
    const t0 = process.hrtime.bigint()
    await sleep(500)
    const wall = Number(process.hrtime.bigint() - t0) / 1e3
    pct = (100 * (machineBusyUs() - b0)) / (wall * os.cpus().length)
    if (!(pct > maxBusyPct)) return pct
  } while (Date.now() < deadline)
  return pct
}
