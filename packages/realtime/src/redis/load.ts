import type { Cluster } from 'ioredis'
import type { LoadReport } from '../bus/types.js'
import { RealtimeError } from '../errors.js'
import type { CommandConnection } from './connection.js'

/** The control channel where every instance of a bus shares its load (for `rebalance`). */
export function loadChannel(prefix: string): string {
  return `${prefix}l`
}

/**
 * `RedisBus`'s side of `shareLoad`/`onLoad`: each report is one classic `PUBLISH` of a small JSON
 * object on the bus's load channel, which the bus's subscriber connection subscribes to while
 * someone listens (again after a reconnect). A few bytes per instance per interval; a report
 * lost while Redis is down is just a missed beat, so nothing here is retried.
 */
export class LoadChannel {
  private readonly listeners = new Set<(report: LoadReport) => void>()
  /** Whether the channel is (being) subscribed on the current subscriber connection. */
  private subscribed = false
  private closed = false
  private readonly onMessage = (channel: string, text: string): void => {
    if (channel !== this.channel) return
    const report = parseReport(text)
    if (report) for (const listener of [...this.listeners]) listener(report)
  }
  private readonly onReady = (): void => {
    // The bus's own subscriber connection does not re-subscribe by itself after a reconnect.
    this.subscribed = false
    this.subscribe()
  }

  constructor(
    private readonly pub: CommandConnection,
    private readonly sub: CommandConnection,
    private readonly channel: string,
    /** Whether `sub` is this channel's own (a Cluster's: the bus has no classic subscriber there). */
    private readonly ownsSub = false,
  ) {
    sub.on('message', this.onMessage)
    sub.on('ready', this.onReady)
  }

  async share(report: LoadReport): Promise<void> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    await this.pub.publish(this.channel, JSON.stringify(report))
  }

  listen(listener: (report: LoadReport) => void): () => void {
    this.listeners.add(listener)
    this.subscribe()
    return () => {
      this.listeners.delete(listener)
      if (this.listeners.size === 0 && this.subscribed && this.sub.status === 'ready') {
        this.subscribed = false
        this.sub.unsubscribe(this.channel).catch(() => undefined)
      }
    }
  }

  /** Stops listening; unsubscribes the channel when the connection is shared with others. */
  async close(unsubscribe: boolean): Promise<void> {
    this.closed = true
    this.listeners.clear()
    this.sub.off('message', this.onMessage)
    this.sub.off('ready', this.onReady)
    if (this.ownsSub) this.sub.disconnect()
    else if (unsubscribe && this.subscribed && this.sub.status === 'ready') await this.sub.unsubscribe(this.channel).catch(() => undefined)
  }

  /** On a Cluster: classic pub/sub reaches every node, through a subscriber of this channel's own. */
  static ofCluster(cluster: Cluster, channel: string): LoadChannel {
    const sub = cluster.duplicate([], { redisOptions: { connectionName: 'realtime-bus-load' } })
    sub.on('error', () => {})
    return new LoadChannel(cluster, sub, channel, true)
  }

  private subscribe(): void {
    if (this.subscribed || this.closed || this.listeners.size === 0 || this.sub.status !== 'ready') return
    this.subscribed = true
    this.sub.subscribe(this.channel).catch(() => {
      // Down: the next 'ready' subscribes again.
      this.subscribed = false
    })
  }
}

function parseReport(text: string): LoadReport | undefined {
  try {
    const value = JSON.parse(text) as Partial<LoadReport> | null
    if (!value || typeof value.instance !== 'string' || typeof value.connections !== 'number' || !Number.isFinite(value.connections)) return undefined
    return { instance: value.instance, connections: value.connections, draining: value.draining === true }
  } catch {
    return undefined
  }
}
