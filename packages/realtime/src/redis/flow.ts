import type { BusFlowControl } from '../bus/types.js'
import { RealtimeError } from '../errors.js'

/** Options of a `RedisBus`'s publisher flow control. */
export interface FlowControlOptions {
  /**
   * The delivery delay the publisher aims to stay under, in milliseconds: the time from a publish
   * until every instance subscribed to the bus has handed it to its sockets. When delivery takes
   * longer, the window of publishes allowed in flight shrinks; while it keeps up, it grows.
   * Default `100`.
   */
  targetLagMs?: number
  /** The largest window, in publishes in flight beyond the last acknowledged probe. Default `16384`. */
  maxWindow?: number
}

/** A snapshot of the flow control of one bus (for stats and tests). */
export interface FlowControlState extends BusFlowControl {
  /** Publishes this bus may have in flight beyond the last probe every instance acknowledged. */
  window: number
  /** Publishes started and not yet covered by an acknowledged probe. */
  inFlight: number
  /** Publishes waiting for the window to open. */
  waiting: number
  /** The round trip of the last completed probe, in ms: how far behind the slowest instance was. */
  lastLagMs: number
  /** Probes sent / acknowledged by every receiver / given up on after the timeout. */
  probes: { sent: number; completed: number; timedOut: number }
  /** Instances that let a probe time out and have not answered since: probes no longer wait for them. */
  silent: number
}

export const DEFAULT_TARGET_LAG_MS = 100
export const DEFAULT_MAX_WINDOW = 16_384
const MIN_WINDOW = 4
const INITIAL_WINDOW = 32
/** An instance not heard of for this long is forgotten (it left, or restarted under a new id). */
const FORGET_AFTER_MS = 60_000
/**
 * How long an instance stays silent (not waited for) before probes wait for it again: if it still
 * does not answer, it costs one more timeout; if it left, the receiver count no longer includes it
 * and keeping it silent would make probes wait for one instance too few.
 */
const SILENT_FOR_MS = 20_000

interface Probe {
  seq: number
  /** The publishes it covers: every one started before it was sent. */
  through: number
  sentAt: number
  /** Receivers of the probe, known once Redis answered the PUBLISH. */
  expected: number | undefined
  /** The instances that answered it. */
  answered: Set<string>
  timer: ReturnType<typeof setTimeout>
}

interface Waiter {
  resolve(): void
  reject(error: Error): void
}

/**
 * Publisher backpressure across instances. Redis pub/sub delivers the messages of one connection in
 * the order they were published, whatever their channels, so a *probe* published after some
 * messages reaches every subscribed instance after them. Each instance answers a probe when it
 * reads it, i.e. once it has handed every earlier message to its listeners; the probe's round trip
 * is how far behind the slowest instance is. The publisher lets at most `window` publishes run
 * ahead of the last probe all receivers answered, and adapts the window to keep that round trip
 * near `targetLagMs`: shrunk in proportion when a probe comes back late (at least halved), grown by
 * an eighth for each probe back in time.
 *
 * A probe that is not fully answered within `timeoutMs` counts as late and done, and the instances
 * that did not answer it are *silent*: later probes do not wait for them until they answer again,
 * for `SILENT_FOR_MS` at most. So an instance that hangs (stopped, partitioned with its TCP
 * connection still open) costs the publishers one wait of `timeoutMs` every `SILENT_FOR_MS`, not
 * one per window.
 */
export class PublishFlow {
  private window = INITIAL_WINDOW
  /** Publishes let through (some may not have started yet). */
  private admitted = 0
  /** Publishes started: what a probe sent now covers. */
  private written = 0
  /** The `written` count of the newest probe that every receiver acknowledged. */
  private ackedThrough = 0
  private sinceProbe = 0
  private nextSeq = 1
  /** Probes sent after the last decrease: only a probe newer than this may halve the window again. */
  private decreasedThrough = 0
  private lastLagMs = 0
  private sent = 0
  private completed = 0
  private timedOut = 0
  private readonly probes = new Map<number, Probe>()
  private waiters: Waiter[] = []
  private armed = false
  /** When each instance that answered a probe last answered one (performance.now()). */
  private readonly known = new Map<string, number>()
  /** Known instances that let a probe time out and have not answered since, and since when. */
  private readonly silent = new Map<string, number>()
  /** Receivers that let a probe time out without ever having answered one (their id is unknown). */
  private silentUnknown = 0
  private silentUnknownSince = 0
  private prunedAt = 0

  constructor(
    private readonly options: { targetLagMs: number; maxWindow: number; timeoutMs: number },
    /** Publishes a probe; resolves with the number of receivers. */
    private readonly sendProbe: (seq: number) => Promise<number>,
  ) {
    this.window = Math.min(INITIAL_WINDOW, options.maxWindow)
  }

  /**
   * Arms or disarms the control: armed only while this bus can receive acknowledgements (its ack
   * channel is subscribed). Disarming lets every waiting publish go and forgets the probes.
   */
  setArmed(armed: boolean): void {
    if (this.armed === armed) return
    this.armed = armed
    if (!armed) {
      for (const probe of this.probes.values()) clearTimeout(probe.timer)
      this.probes.clear()
      this.ackedThrough = this.admitted
      this.sinceProbe = 0
      this.release()
    }
  }

  /** Resolves when one more publish may start; call `started()` right after starting it. */
  admit(): Promise<void> | undefined {
    if (!this.armed || (this.waiters.length === 0 && this.admitted - this.ackedThrough < this.window)) {
      this.admitted++
      return undefined
    }
    const wait = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }))
    this.ensureProbe()
    return wait
  }

  /**
   * Counts a publish whose command was just written; every `window / 4` publishes a probe follows
   * it on the same connection, so it reaches each instance after them.
   */
  started(): void {
    this.written++
    if (!this.armed) {
      if (this.ackedThrough < this.written) this.ackedThrough = this.written
      return
    }
    if (++this.sinceProbe >= Math.max(1, this.window >> 2)) this.probe()
    else this.ensureProbe()
  }

  /** Instance `from` acknowledged probe `seq`. */
  ack(seq: number, from: string): void {
    const now = performance.now()
    if (!this.known.has(from) && this.silentUnknown > 0) this.silentUnknown--
    this.known.set(from, now)
    this.silent.delete(from)
    const probe = this.probes.get(seq)
    if (!probe) return
    probe.answered.add(from)
    this.checkDone(probe)
  }

  private checkDone(probe: Probe): void {
    if (probe.expected === undefined) return
    if (probe.answered.size >= probe.expected - this.silent.size - this.silentUnknown) this.complete(probe, false)
  }

  /** Rejects every waiting publish (the bus is closing). */
  abort(error: RealtimeError): void {
    this.armed = false
    for (const probe of this.probes.values()) clearTimeout(probe.timer)
    this.probes.clear()
    const waiters = this.waiters
    this.waiters = []
    for (const waiter of waiters) waiter.reject(error)
  }

  state(): FlowControlState {
    return {
      window: this.window,
      inFlight: Math.max(0, this.admitted - this.ackedThrough),
      waiting: this.waiters.length,
      lastLagMs: this.lastLagMs,
      probes: { sent: this.sent, completed: this.completed, timedOut: this.timedOut },
      silent: this.silent.size + this.silentUnknown,
    }
  }

  /** Forgets instances long gone, and lets silence expire (see SILENT_FOR_MS); at most once a second. */
  private prune(now: number): void {
    if (now - this.prunedAt < 1000) return
    this.prunedAt = now
    for (const [id, lastAnswered] of this.known) if (now - lastAnswered > FORGET_AFTER_MS) this.known.delete(id)
    for (const [id, since] of this.silent) if (now - since > SILENT_FOR_MS) this.silent.delete(id)
    if (this.silentUnknown > 0 && now - this.silentUnknownSince > SILENT_FOR_MS) this.silentUnknown = 0
  }

  private probe(): void {
    this.prune(performance.now())
    this.sinceProbe = 0
    const seq = this.nextSeq++
    const probe: Probe = {
      seq,
      through: this.written,
      sentAt: performance.now(),
      expected: undefined,
      answered: new Set(),
      timer: setTimeout(() => this.complete(probe, true), this.options.timeoutMs),
    }
    probe.timer.unref?.()
    this.probes.set(seq, probe)
    this.sent++
    this.sendProbe(seq).then(
      (receivers) => {
        if (this.probes.get(seq) !== probe) return
        probe.expected = receivers
        this.checkDone(probe)
      },
      // Not published (Redis is down): it measures nothing and holds nothing back.
      () => {
        if (this.probes.get(seq) === probe) this.complete(probe, false, true)
      },
    )
  }

  private complete(probe: Probe, timedOut: boolean, failed = false): void {
    if (this.probes.get(probe.seq) !== probe) return
    this.probes.delete(probe.seq)
    clearTimeout(probe.timer)
    if (timedOut) {
      this.timedOut++
      this.silence(probe)
    } else if (!failed) {
      this.completed++
      // Everyone answered: nobody unknown is silent any more.
      if (probe.expected !== undefined && probe.answered.size >= probe.expected) this.silentUnknown = 0
    }
    if (probe.through > this.ackedThrough) this.ackedThrough = probe.through
    if (!failed) {
      const lag = timedOut ? this.options.timeoutMs : performance.now() - probe.sentAt
      this.lastLagMs = lag
      if (lag > this.options.targetLagMs) {
        if (probe.seq > this.decreasedThrough) {
          // Shrunk by how late it came back (at least halved), so one step brings the lag near the target.
          const factor = Math.min(0.5, this.options.targetLagMs / lag)
          this.window = Math.max(MIN_WINDOW, Math.floor(this.window * factor))
          this.decreasedThrough = this.nextSeq - 1
        }
      } else {
        this.window = Math.min(this.options.maxWindow, this.window + Math.max(1, this.window >> 3))
      }
    }
    this.release()
    this.ensureProbe()
  }

  /** After a probe timed out: the receivers that did not answer it are not waited for any more. */
  private silence(probe: Probe): void {
    const now = performance.now()
    let missing = (probe.expected ?? 0) - probe.answered.size
    for (const id of this.silent.keys()) if (!probe.answered.has(id)) missing--
    for (const [id, lastAnswered] of this.known) {
      // Long gone (an instance that left stops being a receiver too): forget it.
      if (now - lastAnswered > FORGET_AFTER_MS) {
        this.known.delete(id)
        this.silent.delete(id)
      } else if (missing > 0 && !probe.answered.has(id) && !this.silent.has(id)) {
        this.silent.set(id, now)
        missing--
      }
    }
    // What is still missing came from receivers that never answered a probe.
    this.silentUnknown = Math.max(0, missing)
    if (this.silentUnknown > 0) this.silentUnknownSince = now
    // The other probes out may now have every answer they still wait for.
    for (const other of [...this.probes.values()]) this.checkDone(other)
  }

  /** A full window with no probe out would never open: publishes are waiting, so probe what started. */
  private ensureProbe(): void {
    if (this.armed && this.waiters.length > 0 && this.probes.size === 0 && this.written > this.ackedThrough) this.probe()
  }

  private release(): void {
    let released = 0
    while (this.waiters.length > released && (!this.armed || this.admitted - this.ackedThrough < this.window)) {
      this.admitted++
      released++
    }
    if (released === 0) return
    const go = this.waiters.splice(0, released)
    for (const waiter of go) waiter.resolve()
  }
}
