import type { Position } from '../topics.js'
import { compareOffsets, type BusMessage } from './types.js'

/**
 * The catch-up merge: the race that matters most in this library.
 *
 * Whoever joins a topic's stream late (a client subscribing with `since`, a bus re-subscribing
 * after its Redis connection came back) does the same four steps:
 *
 * 1. **hold**: join the live stream first, and hold what it delivers in `held`;
 * 2. **read** the history after the last position it had (`from`);
 * 3. **merge by offset**: pass on the history, then the held messages, skipping every message at or
 *    before the last one passed on in the same epoch (the history and the held messages overlap by
 *    whatever was published between the join and the read);
 * 4. **flush**: once the merge has drained `held`, go live (stop holding) before any other message
 *    can come in.
 *
 * Joining first means nothing published between the join and the read is lost; the merge means
 * nothing is passed on twice. `held` may keep growing while the caller passes messages on (a client
 * paced by its socket awaits between two messages): the merge reads it to its end, so the caller
 * goes live with nothing left behind, as long as it stops holding in the same turn the iteration
 * ends.
 *
 * A message of another epoch than the last one passed on is always passed on: the topic's history
 * was lost and started again, and the offsets of the two epochs do not compare.
 *
 * Returns (as the generator's result) the position of the last message passed on, or `from`.
 */
export function* catchUp(
  history: readonly BusMessage[],
  held: readonly BusMessage[],
  from: Position | undefined,
): Generator<BusMessage, Position | undefined, void> {
  let last = from
  for (const message of history) {
    if (isRepeat(message, last)) continue
    last = message
    yield message
  }
  // By index: `held` may grow while the caller handles the message just yielded.
  for (let i = 0; i < held.length; i++) {
    const message = held[i] as BusMessage
    if (isRepeat(message, last)) continue
    last = message
    yield message
  }
  return last === undefined ? undefined : { epoch: last.epoch, offset: last.offset }
}

/** Whether `message` is at or before `last` in the same epoch: passed on already. */
export function isRepeat(message: BusMessage, last: Position | undefined): boolean {
  return last !== undefined && last.epoch === message.epoch && compareOffsets(message.offset, last.offset) <= 0
}
