/**
 * One timer for all connections: each beat pings every connection and closes (4009) those that
 * did not answer the previous one. A peer is thus dropped between one and two intervals after it
 * went silent.
 */
export class Heartbeat {
  private timer: ReturnType<typeof setInterval> | undefined

  constructor(
    private readonly intervalMs: number,
    private readonly beat: () => void,
  ) {}

  start(): void {
    if (this.timer || !(this.intervalMs > 0)) return
    this.timer = setInterval(this.beat, this.intervalMs)
    this.timer.unref?.()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }
}
