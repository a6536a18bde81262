import type { BusPresence, PresenceChange, PresenceListener } from '../bus/types.js'
import type { PresenceMember } from '../protocol.js'
import type { Logger } from './types.js'

/** Defaults of the `presence` server option. */
export const DEFAULT_MAX_MEMBERS = 1000
export const DEFAULT_LEAVE_DELAY_MS = 2000
export const DEFAULT_PRESENCE_FLUSH_MS = 50
/** The largest `info` a member may carry, as JSON text; a larger one is dropped (the member keeps its id). */
export const MAX_MEMBER_INFO_BYTES = 1024

/** Where presence frames of a topic go: a watching subscription's connection. */
export interface PresenceSink {
  sendText(text: string): void
}

export interface LocalPresenceOptions {
  maxMembers: number
  leaveDelayMs: number
  flushMs: number
}

/** Counters of presence, for `stats()`. */
export interface PresenceCounters {
  /** Member changes (join or leave entries) sent to watchers. */
  changesSent: number
  /** `presence` frames sent (one per watcher per flush). */
  framesSent: number
  /** Joins the bus refused because the topic was at `maxMembers`. */
  capped: number
}

/** This instance's hold of one member on one topic: its connections, and what it last asked the bus. */
interface Hold {
  member: PresenceMember
  connections: number
  /** Whether the bus holds the member for this instance (after the last operation in `chain`). */
  held: boolean
  /** The bus operations of this hold, one after the other, so a leave never overtakes a join. */
  chain: Promise<void>
  timer: ReturnType<typeof setTimeout> | undefined
}

class PresenceTopic {
  readonly holds = new Map<string, Hold>()
  readonly watchers = new Set<PresenceSink>()
  /** The topic's members as the bus reports them, while this instance watches. */
  mirror = new Map<string, PresenceMember>()
  /** Settles once the bus watch is in place and `mirror` holds its first list. */
  ready: Promise<void> | undefined = undefined
  /** Changes that came before the first list: applied after it, in order. */
  early: PresenceChange[] | undefined = []
  /** Members changed since the last flush, with what watchers last saw of each (undefined: absent). */
  batch: Map<string, PresenceMember | undefined> | undefined = undefined
  timer: ReturnType<typeof setTimeout> | undefined = undefined
  cappedLogged = false
  readonly listener: PresenceListener

  constructor(
    readonly name: string,
    readonly topicJson: string,
    onChange: (topic: PresenceTopic, change: PresenceChange) => void,
  ) {
    this.listener = (change) => onChange(this, change)
  }

  get idle(): boolean {
    return this.holds.size === 0 && this.watchers.size === 0
  }
}

function sameMember(a: PresenceMember, b: PresenceMember): boolean {
  return a === b || JSON.stringify(a.info) === JSON.stringify(b.info)
}

/**
 * Presence on one server instance: which members its connections hold on each presence topic
 * (one hold per member, however many tabs), and the member list of the topics its connections
 * watch, mirrored from the bus so that a `members` request is answered locally and every change
 * reaches the watchers after the list they had, in order.
 *
 * Bounded under churn: a member whose last connection goes is released from the bus only after
 * `leaveDelayMs` (a reload or a reconnect comes back before that and nobody hears of it), and the
 * changes of one topic go out coalesced, at most one frame per watcher per `flushMs`.
 */
export class LocalPresence {
  private readonly topics = new Map<string, PresenceTopic>()
  readonly counters: PresenceCounters = { changesSent: 0, framesSent: 0, capped: 0 }
  private closed = false

  constructor(
    private readonly bus: BusPresence,
    private readonly options: LocalPresenceOptions,
    private readonly logger: Logger,
  ) {}

  /** Topics with presence state on this instance. */
  get topicCount(): number {
    return this.topics.size
  }

  /** Members this instance holds, over all topics. */
  get heldCount(): number {
    let held = 0
    for (const topic of this.topics.values()) held += topic.holds.size
    return held
  }

  /** A connection subscribed: it holds `member` (when it is one) and watches (when `sink`). */
  add(topicName: string, member: PresenceMember | undefined, sink: PresenceSink | undefined): void {
    if (this.closed) return
    const topic = this.topic(topicName)
    if (member) this.hold(topic, member)
    if (sink) this.watch(topic, sink)
  }

  /** The connection's subscription ended: undo what `add` did. */
  remove(topicName: string, memberId: string | undefined, sink: PresenceSink | undefined): void {
    const topic = this.topics.get(topicName)
    if (!topic) return
    if (sink && topic.watchers.delete(sink) && topic.watchers.size === 0) this.unwatch(topic)
    if (memberId !== undefined) {
      const hold = topic.holds.get(memberId)
      if (hold && hold.connections > 0 && --hold.connections === 0) {
        if (this.options.leaveDelayMs <= 0) this.release(topic, memberId, hold)
        else {
          hold.timer = setTimeout(() => this.release(topic, memberId, hold), this.options.leaveDelayMs)
          hold.timer.unref?.()
        }
      }
    }
    this.forgetIfIdle(topic)
  }

  /** The members of a topic this instance watches (after its list arrived). */
  async members(topicName: string): Promise<PresenceMember[]> {
    const topic = this.topics.get(topicName)
    if (!topic?.ready) return []
    await topic.ready
    return [...topic.mirror.values()]
  }

  /** Releases every hold now (the server is closing), so other instances see the members leave. */
  async close(): Promise<void> {
    this.closed = true
    const pending: Promise<void>[] = []
    for (const topic of this.topics.values()) {
      if (topic.timer) clearTimeout(topic.timer)
      if (topic.watchers.size > 0) {
        topic.watchers.clear()
        this.unwatch(topic)
      }
      for (const [id, hold] of topic.holds) {
        hold.connections = 0
        this.release(topic, id, hold)
        pending.push(hold.chain)
      }
    }
    await Promise.all(pending)
    this.topics.clear()
  }

  private topic(name: string): PresenceTopic {
    let topic = this.topics.get(name)
    if (!topic) {
      topic = new PresenceTopic(name, JSON.stringify(name), (t, change) => this.changed(t, change))
      this.topics.set(name, topic)
    }
    return topic
  }

  private hold(topic: PresenceTopic, member: PresenceMember): void {
    const existing = topic.holds.get(member.id)
    if (existing) {
      existing.connections++
      if (existing.timer) {
        clearTimeout(existing.timer)
        existing.timer = undefined
      }
      // Released (or being released) meanwhile: hold it again, after the release.
      if (existing.connections === 1 && !existing.held) this.enqueueJoin(topic, existing)
      return
    }
    const hold: Hold = { member, connections: 1, held: false, chain: Promise.resolve(), timer: undefined }
    topic.holds.set(member.id, hold)
    this.enqueueJoin(topic, hold)
  }

  private enqueueJoin(topic: PresenceTopic, hold: Hold): void {
    hold.chain = hold.chain.then(async () => {
      if (hold.connections === 0 || hold.held || this.closed) return
      try {
        hold.held = await this.bus.join(topic.name, hold.member, this.options.maxMembers)
        if (!hold.held) {
          this.counters.capped++
          if (!topic.cappedLogged) {
            topic.cappedLogged = true
            this.logger.warn({ topic: topic.name, maxMembers: this.options.maxMembers }, 'realtime: presence topic is at maxMembers; further members are not listed')
          }
        }
      } catch (error) {
        this.logger.warn({ err: error, topic: topic.name }, 'realtime: presence join failed')
      }
    })
  }

  private release(topic: PresenceTopic, memberId: string, hold: Hold): void {
    hold.timer = undefined
    hold.chain = hold.chain.then(async () => {
      if (hold.connections > 0 || !hold.held) return
      try {
        await this.bus.leave(topic.name, memberId)
        hold.held = false
      } catch (error) {
        this.logger.warn({ err: error, topic: topic.name }, 'realtime: presence leave failed')
      }
    })
    void hold.chain.then(() => {
      if (hold.connections === 0 && !hold.held && topic.holds.get(memberId) === hold) {
        topic.holds.delete(memberId)
        this.forgetIfIdle(topic)
      }
    })
  }

  private watch(topic: PresenceTopic, sink: PresenceSink): void {
    topic.watchers.add(sink)
    if (topic.ready) return
    topic.early = []
    topic.ready = this.bus.watch(topic.name, topic.listener).then(
      (members) => {
        topic.mirror = new Map(members.map((member) => [member.id, member]))
        const early = topic.early ?? []
        topic.early = undefined
        for (const change of early) this.changed(topic, change)
      },
      (error: unknown) => {
        topic.early = undefined
        this.logger.warn({ err: error, topic: topic.name }, 'realtime: presence watch failed')
      },
    )
  }

  private unwatch(topic: PresenceTopic): void {
    const ready = topic.ready
    topic.ready = undefined
    topic.mirror = new Map()
    topic.batch = undefined
    if (topic.timer) clearTimeout(topic.timer)
    topic.timer = undefined
    void ready?.then(() => this.bus.unwatch(topic.name, topic.listener)).catch(() => {})
  }

  /** A change from the bus: applied to the mirror, and queued for the watchers' next frame. */
  private changed(topic: PresenceTopic, change: PresenceChange): void {
    if (topic.early) {
      topic.early.push(change)
      return
    }
    if (!topic.ready) return
    const batch = (topic.batch ??= new Map())
    const note = (id: string) => {
      if (!batch.has(id)) batch.set(id, topic.mirror.get(id))
    }
    if (change.members) {
      const next = new Map(change.members.map((member) => [member.id, member]))
      for (const id of topic.mirror.keys()) if (!next.has(id)) note(id)
      for (const id of next.keys()) note(id)
      topic.mirror = next
    }
    for (const member of change.join ?? []) {
      note(member.id)
      topic.mirror.set(member.id, member)
    }
    for (const id of change.leave ?? []) {
      note(id)
      topic.mirror.delete(id)
    }
    if (topic.timer === undefined) {
      topic.timer = setTimeout(() => this.flush(topic), this.options.flushMs)
      topic.timer.unref?.()
    }
  }

  /** Sends the watchers what changed since the last flush, net: a member that left and came back is not sent. */
  private flush(topic: PresenceTopic): void {
    topic.timer = undefined
    const batch = topic.batch
    topic.batch = undefined
    if (!batch || topic.watchers.size === 0) return
    const join: PresenceMember[] = []
    const leave: string[] = []
    for (const [id, before] of batch) {
      const after = topic.mirror.get(id)
      if (after && !(before && sameMember(before, after))) join.push(after)
      else if (!after && before) leave.push(id)
    }
    if (join.length === 0 && leave.length === 0) return
    let text = '{"type":"presence","topic":' + topic.topicJson
    if (join.length > 0) text += ',"join":' + JSON.stringify(join)
    if (leave.length > 0) text += ',"leave":' + JSON.stringify(leave)
    text += '}'
    for (const sink of topic.watchers) sink.sendText(text)
    this.counters.framesSent += topic.watchers.size
    this.counters.changesSent += join.length + leave.length
  }

  private forgetIfIdle(topic: PresenceTopic): void {
    if (topic.idle && !topic.ready && this.topics.get(topic.name) === topic) this.topics.delete(topic.name)
  }
}

/** The member a principal is by default: its `id` when it has a string or number one, else the connection. */
export function defaultMember(principal: unknown, connectionId: string): PresenceMember {
  if (typeof principal === 'object' && principal !== null) {
    const id = (principal as { id?: unknown }).id
    if (typeof id === 'string' || typeof id === 'number') return { id: String(id) }
  }
  return { id: connectionId }
}

/** A member as the app's `member` hook made it, checked: a string id, and an info object of at most MAX_MEMBER_INFO_BYTES. */
export function checkedMember(value: unknown, logger: Logger, topic: string): PresenceMember | undefined {
  if (value === null || value === undefined) return undefined
  const raw = value as { id?: unknown; info?: unknown }
  if (typeof raw.id !== 'string' && typeof raw.id !== 'number') {
    logger.warn({ topic }, 'realtime: presence `member` returned no string id; the connection is not a member')
    return undefined
  }
  const member: PresenceMember = { id: String(raw.id) }
  if (raw.info !== undefined) {
    const json = typeof raw.info === 'object' && raw.info !== null && !Array.isArray(raw.info) ? JSON.stringify(raw.info) : undefined
    if (json !== undefined && json.length <= MAX_MEMBER_INFO_BYTES) member.info = JSON.parse(json) as Record<string, unknown>
    else logger.warn({ topic, memberId: member.id }, `realtime: presence info must be an object of at most ${MAX_MEMBER_INFO_BYTES} bytes of JSON; dropped`)
  }
  return member
}
