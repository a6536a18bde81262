/**
 * Regression: `TokenBucket` refused a token that `takeToken` gave (the property test of
 * compact-state.test.ts found it: capacity 3, 16/s, gaps 0,20,39,2,27,37,0 ms): its refill summed
 * to 0.9999999999999999 tokens where exactly 1 was due.
 */
import { describe, expect, it } from 'vitest'
import { TokenBucket, takeToken } from '../../src/server/limits.js'

describe('TokenBucket', () => {
  it('gives the token that is due, despite rounding in its refill', () => {
    const bucket = new TokenBucket(3, 16)
    let fullAt = Date.now()
    let now = fullAt
    ;(bucket as unknown as { updatedAt: number }).updatedAt = now
    for (const gap of [0, 20, 39, 2, 27, 37]) {
      now += gap
      const next = takeToken(fullAt, now, 3, 16)
      expect(bucket.take(now)).toBe(next !== -Infinity)
      if (next !== -Infinity) fullAt = next
    }
  })
})
