import type { Bus, LoadReport } from '../bus/types.js'
import type { Logger, RebalanceOptions } from './types.js'

/** `rebalance: true` and the options left out. */
export const DEFAULT_REBALANCE: Required<RebalanceOptions> = {
  intervalMs: 5000,
  tolerance: 0.2,
  maxPerInterval: 50,
}

/** What the rebalancer needs of its server. */
export interface RebalanceHost {
  readonly instance: string
  /** Open connections of this instance now. */
  connections(): number
  /** Whether the server is draining (then it reports so and sheds nothing itself). */
  draining(): boolean
  /** Closes `count` connections with 4010, paced over `windowMs`. */
  shed(count: number, windowMs: number): void
}

/** What `stats().rebalance` shows. */
export interface RebalanceStats {
  /** Instances this one counts for the even share (itself and its peers with a fresh report, not draining). */
  instances: number
  /** The even share: every connection of every instance heard from ÷ `instances`. */
  share: number
}

/**
 * Evens out connections across the instances of one bus. Every `intervalMs` each instance shares
 * its connection count (`bus.shareLoad`) and hears its peers' (`bus.onLoad`); a peer not heard from
 * for three intervals is forgotten. An instance holding more than `(1 + tolerance) ×` the even
 * share sheds the excess, at most `maxPerInterval` per interval, paced over half an interval; its
 * clients reconnect through the load balancer and recover from the shared history.
 *
 * No oscillation: an instance counts its own connections fresh, and only those above the share
 * by more than the tolerance shed, so a moved client never makes a receiver shed it back unless
 * the receiver itself is over. The peers' reports are up to an interval old, so a client in transit
 * would be counted nowhere and the share come out low (and an instance at the share shed again):
 * each instance therefore reports, with its connections, those it moved away within the last
 * interval and a half (time to land and to be in the receiver's next report). A moved client is then counted twice for a moment, never not at all: the share errs
 * high, and an error high sheds less, not more.
 * A draining instance counts toward the total (its clients are landing on the others) but not
 * toward the instances that share it, so nothing is shed while a deploy moves clients around.
 */
export class Rebalancer {
  private readonly options: Required<RebalanceOptions>
  private readonly peers = new Map<string, { report: LoadReport; at: number }>()
  private readonly timer: ReturnType<typeof setInterval>
  private readonly stopListening: () => void
  private last: { instances: number; share: number } = { instances: 1, share: 0 }
  /** When this instance moved connections away (4010), within the transit window: see the class comment. */
  private readonly movedAt: number[] = []

  constructor(
    private readonly bus: Required<Pick<Bus, 'shareLoad' | 'onLoad'>>,
    private readonly host: RebalanceHost,
    options: RebalanceOptions,
    private readonly logger: Logger,
  ) {
    this.options = {
      intervalMs: Math.max(10, options.intervalMs ?? DEFAULT_REBALANCE.intervalMs),
      tolerance: Math.max(0, options.tolerance ?? DEFAULT_REBALANCE.tolerance),
      maxPerInterval: Math.max(1, Math.floor(options.maxPerInterval ?? DEFAULT_REBALANCE.maxPerInterval)),
    }
    this.stopListening = bus.onLoad((report) => {
      if (report.instance !== host.instance) this.peers.set(report.instance, { report, at: performance.now() })
    })
    this.timer = setInterval(() => this.tick(), this.options.intervalMs)
    this.timer.unref?.()
    this.report()
  }

  stats(): RebalanceStats {
    return { ...this.last }
  }

  /** Counts a connection this instance closed with 4010 (drain or rebalance). */
  moved(): void {
    this.movedAt.push(performance.now())
  }

  /**
   * Connections moved away within the last interval and a half (and the client's reconnect,
   * 0.5 s): they may not have landed anywhere yet, or not be in their new instance's last report.
   * Longer would hold the next shed back needlessly (the share would stay high).
   */
  private inTransit(now: number): number {
    const window = 1.5 * this.options.intervalMs + 500
    let old = 0
    while (old < this.movedAt.length && now - (this.movedAt[old] as number) > window) old++
    if (old > 0) this.movedAt.splice(0, old)
    return this.movedAt.length
  }

  /** Tells the peers now (e.g. that this instance started draining). */
  report(): void {
    const connections = this.host.connections() + this.inTransit(performance.now())
    const report: LoadReport = { instance: this.host.instance, connections, draining: this.host.draining() }
    // A report lost while the bus is down is only a missed beat: the next one follows.
    this.bus.shareLoad(report).catch(() => undefined)
  }

  stop(): void {
    clearInterval(this.timer)
    this.stopListening()
    this.peers.clear()
  }

  private tick(): void {
    this.report()
    const now = performance.now()
    const own = this.host.connections()
    let total = own + this.inTransit(now)
    let instances = this.host.draining() ? 0 : 1
    for (const [instance, { report, at }] of this.peers) {
      if (now - at > 3 * this.options.intervalMs) {
        this.peers.delete(instance)
        continue
      }
      total += report.connections
      if (!report.draining) instances++
    }
    const share = instances === 0 ? 0 : total / instances
    this.last = { instances, share }
    if (this.host.draining() || instances < 2) return
    const excess = Math.floor(own - share)
    if (own <= share * (1 + this.options.tolerance) || excess < 1) return
    const count = Math.min(this.options.maxPerInterval, excess)
    this.logger.info({ connections: own, share: Math.round(share), instances, shed: count }, 'realtime: rebalancing: moving connections to other instances')
    this.host.shed(count, this.options.intervalMs / 2)
  }
}
