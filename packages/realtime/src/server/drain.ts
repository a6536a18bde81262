import { CloseCode } from '../protocol.js'

/**
 * Moving clients to other instances without a connect storm there: connections are closed with
 * 4010 (`CloseCode.Reconnect`: reconnect now, elsewhere, and recover your positions) a few at a
 * time, spread over a window, instead of all in one tick. `close({ drainMs })` moves every
 * connection this way; `rebalance` moves the few an overloaded instance sheds.
 */

/** How often a paced close closes its next few connections. */
export const PACE_STEP_MS = 50

/** What a paced close needs of a connection. */
export interface Movable {
  /** Set once the connection is closing or closed (then it is skipped). */
  readonly closeCode: number | undefined
  close(code: number, reason: string): void
}

/**
 * Closes `targets` with 4010, paced over `windowMs`: every `PACE_STEP_MS` it closes its share of
 * those left (the number left ÷ the steps left, rounded up), so the rate is about
 * `targets.length ÷ windowMs`, and never below one per step: a few connections go in a few steps,
 * not spread over the whole window. The first ones go at once. Connections that closed by
 * themselves meanwhile are skipped (not counted as moved).
 */
export class PacedClose {
  /** Connections closed with 4010 so far. */
  moved = 0
  private next = 0
  private timer: ReturnType<typeof setInterval> | undefined
  private readonly endsAt: number

  constructor(
    private readonly targets: readonly Movable[],
    windowMs: number,
    private readonly reason: string,
    /** Called for each connection closed. */
    private readonly onMoved: () => void,
    /** Called once every target has been closed (or skipped). */
    private readonly onDone: () => void,
  ) {
    this.endsAt = performance.now() + Math.max(0, windowMs)
    this.step()
    if (this.next < this.targets.length) {
      this.timer = setInterval(() => this.step(), PACE_STEP_MS)
      this.timer.unref?.()
    }
  }

  /** Targets not closed yet (some may have closed by themselves). */
  get remaining(): number {
    return this.targets.length - this.next
  }

  /** Stops closing (the ones not closed yet stay open). */
  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  private step(): void {
    const stepsLeft = Math.max(1, Math.floor((this.endsAt - performance.now()) / PACE_STEP_MS) + 1)
    let batch = Math.ceil(this.remaining / stepsLeft)
    while (batch > 0 && this.next < this.targets.length) {
      const target = this.targets[this.next++] as Movable
      if (target.closeCode !== undefined) continue
      target.close(CloseCode.Reconnect, this.reason)
      this.moved++
      this.onMoved()
      batch--
    }
    if (this.next >= this.targets.length) {
      this.stop()
      this.onDone()
    }
  }
}
