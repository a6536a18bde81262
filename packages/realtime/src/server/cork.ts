/**
 * Coalescing of the frames written to one socket within one tick into one write. A publish loop
 * that sends ten patches to a subscriber in one turn would otherwise cost ten `writev` calls for
 * that socket (the kernel write is most of a fanout's CPU); corked, it costs one. A connection
 * corks its socket at its first frame of a tick and every corked socket is uncorked in one shared
 * `process.nextTick`, before any I/O, so a single publish per turn is not delayed. `ws` counts
 * corked bytes in `bufferedAmount`, so the slow-consumer check still sees them.
 */

/** A connection whose socket is corked until the end of the tick. */
export interface CorkedForTick {
  uncorkTick(): void
}

let pending: CorkedForTick[] = []
let scheduled = false

function flush(): void {
  scheduled = false
  // Connections corked while this flush runs (by code run from an uncork) wait for the next one.
  const connections = pending
  pending = []
  for (const connection of connections) connection.uncorkTick()
}

/** Registers a connection that just corked its socket; it is uncorked at the end of the tick. */
export function uncorkAtEndOfTick(connection: CorkedForTick): void {
  pending.push(connection)
  if (!scheduled) {
    scheduled = true
    process.nextTick(flush)
  }
}
