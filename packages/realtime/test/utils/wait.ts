/**
 * Waiting in tests: the one `waitFor` and `sleep` of both packages' tests (the app's tests import
 * them from here by relative path). No imports, so any test can use it.
 */

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Resolves once `check` holds; rejects after `timeoutMs` with `what` in the message. Polls every
 * 5 ms, or every 20 ms when `check` is async (each poll is then a round trip: Redis, HTTP).
 */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now()
  for (;;) {
    const result = check()
    const async = typeof result !== 'boolean'
    if (await result) return
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(async ? 20 : 5)
  }
}
