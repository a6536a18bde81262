/**
 * Teardown tied to the running test: what a test opens is closed when it finishes, pass or fail.
 * Only vitest is imported, so that the app's tests use it too; `harness.ts` builds on it.
 */
import { TestRunner, onTestFinished } from 'vitest'

type Close = () => unknown

/** What each running test has left open, newest last. */
const openByTest = new WeakMap<object, Set<Close>>()

/**
 * Runs `close` when the running test finishes, after its `afterEach` hooks: the newest first (so
 * clients close before their server), each awaited, every one run even when one throws. Returns
 * a function that forgets it (for what closed itself before the end of the test).
 */
export function closeAfterTest(close: Close): () => void {
  const test = TestRunner.getCurrentTest()
  if (!test) throw new Error('closeAfterTest() runs inside a test: start what a whole file shares in beforeAll and close it in afterAll')
  let open = openByTest.get(test)
  if (!open) {
    const closes = new Set<Close>()
    open = closes
    openByTest.set(test, closes)
    onTestFinished(async () => {
      openByTest.delete(test)
      const errors: unknown[] = []
      for (const each of [...closes].reverse()) {
        try {
          await each()
        } catch (error) {
          errors.push(error)
        }
      }
      closes.clear()
      if (errors.length > 0) throw errors.length === 1 ? errors[0] : new AggregateError(errors, 'teardown failed')
    })
  }
  const closes = open
  closes.add(close)
  return () => void closes.delete(close)
}
