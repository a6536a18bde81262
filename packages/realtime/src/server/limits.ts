import type { Limits } from './types.js'

/** The limits in force when an option is not given. docs/security.md explains each. */
export const DEFAULT_LIMITS: Required<Limits> = {
  maxPayloadBytes: 64 * 1024,
  maxSubscriptions: 100,
  framesPerSecond: 100,
  frameBurst: 200,
  maxBufferedBytes: 1024 * 1024,
  maxBadFrames: 20,
  maxConnectionsPerAddress: 1000,
  maxConnections: 100_000,
  handshakeTimeoutMs: 10_000,
}

/** Fills in defaults; `frameBurst` defaults to twice the given `framesPerSecond`. */
export function resolveLimits(limits: Limits = {}): Required<Limits> {
  const resolved = { ...DEFAULT_LIMITS }
  for (const [key, value] of Object.entries(limits) as [keyof Limits, number | undefined][]) {
    if (value === undefined) continue
    if (typeof value !== 'number' || !(value > 0)) {
      throw new TypeError(`limits.${key} must be a positive number, got ${String(value)}`)
    }
    resolved[key] = value
  }
  if (limits.framesPerSecond !== undefined && limits.frameBurst === undefined) {
    resolved.frameBurst = limits.framesPerSecond * 2
  }
  return resolved
}

/**
 * A token bucket of `capacity` tokens refilled at `perSecond`, kept as one number: `fullAt`, the
 * time (ms) at which the bucket is full again (at or before `now`: it is full). The bucket holds
 * `capacity - (fullAt - now) * perSecond / 1000` tokens, so a token can be taken while
 * `fullAt - now <= (capacity - 1) * 1000 / perSecond`, and taking one moves `fullAt` a token's
 * worth of time later. Returns the new `fullAt`, or -Infinity when the bucket is empty. The same
 * arithmetic as `TokenBucket`, in one field of the caller instead of an object; times are
 * `bucketClockMs()`.
 */
export function takeToken(fullAt: number, now: number, capacity: number, perSecond: number): number {
  const tokenMs = 1000 / perSecond
  const from = fullAt > now ? fullAt : now
  // A microsecond of slack: repeated additions of a fractional `tokenMs` may round up.
  if (from - now > (capacity - 1) * tokenMs + 0.001) return -Infinity
  return from + tokenMs
}

/** The clock of `takeToken` callers: ms since this module loaded (small numbers: exact sums). */
const TIME_BASE = Date.now()
export function bucketClockMs(): number {
  return Date.now() - TIME_BASE
}

/**
 * A token bucket: `capacity` tokens, refilled at `perSecond`. Refill is computed lazily on take,
 * so an idle connection costs no timer.
 */
export class TokenBucket {
  private tokens: number
  private updatedAt: number

  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
  ) {
    this.tokens = capacity
    this.updatedAt = Date.now()
  }

  /** Takes one token; false when the bucket is empty. */
  take(now = Date.now()): boolean {
    const elapsed = now - this.updatedAt
    if (elapsed > 0) {
      this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.perSecond) / 1000)
      this.updatedAt = now
    }
    // A hair of slack: the refill sums fractions (0.944 + 0.056 may come to 0.99999…), and a
    // bucket that is full to the microsecond must give its token, as `takeToken` does.
    if (this.tokens < 1 - 1e-9) return false
    this.tokens -= 1
    return true
  }
}
