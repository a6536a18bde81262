import type { Redis } from 'ioredis'
import { RealtimeError } from '../errors.js'
import type { CommandConnection, Deadlines } from './connection.js'
import { DEFAULT_MAX_WINDOW, DEFAULT_TARGET_LAG_MS, PublishFlow, type FlowControlOptions } from './flow.js'
import { ackChannel, probeChannel } from './keys.js'

/**
 * The classic pub/sub channels of publisher flow control on one Redis (see `PublishFlow`): the probe
 * channel, which an instance subscribes once it has a topic and answers, and this bus's answers
 * channel, subscribed with its first publish. Both are on the subscriber connection of the topics,
 * so that a probe is read after every message published before it; after that connection was
 * lost they are subscribed again on its next 'ready'. Not used on a Redis Cluster.
 */
export class ProbeChannels {
  /** The flow control of this bus's publishes; `undefined` when it is off. */
  readonly flow: PublishFlow | undefined
  private readonly probe: string
  private readonly acks: string
  /** Whether the answers channel is (being) subscribed. */
  private ackSubscribed = false
  /** Whether the probe channel is (being) subscribed. */
  private probeSubscribed = false
  /** Set once the connection was lost: the next 'ready' subscribes the channels again. */
  private lost = false
  private closed = false
  private readonly detach: () => void

  constructor(
    private readonly pub: CommandConnection,
    private readonly sub: Redis,
    private readonly prefix: string,
    /** This bus's id: where other instances send their answers to its probes. */
    private readonly id: string,
    private readonly deadlines: Deadlines,
    options: FlowControlOptions | false | undefined,
    /** Whether the bus has topics (it then answers probes). */
    private readonly hasTopics: () => boolean,
  ) {
    this.probe = probeChannel(prefix)
    this.acks = ackChannel(prefix, id)
    if (options !== false) {
      this.flow = new PublishFlow(
        {
          targetLagMs: Math.max(1, options?.targetLagMs ?? DEFAULT_TARGET_LAG_MS),
          maxWindow: Math.max(4, Math.floor(options?.maxWindow ?? DEFAULT_MAX_WINDOW)),
          timeoutMs: deadlines.timeoutMs,
        },
        (seq) => pub.publish(this.probe, `${id} ${seq}`),
      )
    }
    const onMessage = (channel: string, text: string) => this.receive(channel, text)
    const onReady = () => {
      if (!this.lost) return
      this.lost = false
      if (this.hasTopics()) void this.subscribeProbe()
      if (this.ackSubscribed) {
        this.ackSubscribed = false
        this.armFlow()
      }
    }
    const onClose = () => {
      this.lost = true
      this.probeSubscribed = false
      // No answers can come: publishes no longer wait for them.
      this.flow?.setArmed(false)
    }
    sub.on('message', onMessage)
    sub.on('ready', onReady)
    sub.on('close', onClose)
    this.detach = () => {
      sub.off('message', onMessage)
      sub.off('ready', onReady)
      sub.off('close', onClose)
    }
  }

  /** Before a publish: subscribes the answers channel if it is not; flow control is armed once it is. */
  armFlow(): void {
    if (this.ackSubscribed || this.closed || !this.flow) return
    this.ackSubscribed = true
    const sub = this.sub
    this.deadlines.run('subscription to flow-control answers', sub, () => sub.subscribe(this.acks)).then(
      () => {
        if (!this.closed && this.ackSubscribed && sub.status === 'ready') this.flow?.setArmed(true)
      },
      () => {
        // Try again with the next publish.
        this.ackSubscribed = false
      },
    )
  }

  /** Once the bus has a topic: subscribes the probe channel, to answer other instances' probes. */
  async subscribeProbe(): Promise<void> {
    if (this.probeSubscribed || this.closed) return
    this.probeSubscribed = true
    const sub = this.sub
    await this.deadlines.run('subscription to flow-control probes', sub, () => sub.subscribe(this.probe)).catch(() => {
      // Down: the next 'ready' subscribes it again.
      this.probeSubscribed = false
    })
  }

  /** Stops; on a connection the bus does not own, unsubscribes its channels (`unsubscribe`). */
  async close(unsubscribe: boolean): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.detach()
    this.flow?.abort(new RealtimeError('CLOSED', 'the bus was closed'))
    const channels: string[] = []
    if (this.probeSubscribed) channels.push(this.probe)
    if (this.ackSubscribed) channels.push(this.acks)
    if (unsubscribe && channels.length > 0 && this.sub.status === 'ready') await this.sub.unsubscribe(...channels).catch(() => {})
  }

  private receive(channel: string, text: string): void {
    const space = text.indexOf(' ')
    if (space <= 0) return
    if (channel === this.probe) {
      // Every message published before the probe has been handed to the listeners: answer it.
      this.pub.publish(ackChannel(this.prefix, text.slice(0, space)), `${text.slice(space + 1)} ${this.id}`).catch(() => {})
    } else if (channel === this.acks) {
      this.flow?.ack(Number(text.slice(0, space)), text.slice(space + 1))
    }
  }
}
