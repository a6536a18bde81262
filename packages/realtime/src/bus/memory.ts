import { RealtimeError } from '../errors.js'
import { addMember, deleteMember, memberCount, type Members } from '../members.js'
import type { Position } from '../topics.js'
import { MemoryPresence } from './presence.js'
import {
  compareOffsets,
  DEFAULT_HISTORY_SIZE,
  DEFAULT_HISTORY_TTL_MS,
  type Bus,
  type BusListener,
  type BusMessage,
  type HistoryOptions,
  type HistoryResult,
  type LoadReport,
  type PublishOptions,
} from './types.js'

/** Options of `InMemoryBus`. */
export interface InMemoryBusOptions {
  history?: HistoryOptions
  /** Called when a listener throws; the other listeners still get the message. Default: console.error. */
  onListenerError?: (error: unknown, message: BusMessage) => void
}

/** A topic's history and (as `one`/`many`) its listeners. */
interface TopicState extends Members<BusListener> {
  /**
   * The last `size` messages, oldest first: created at the topic's first message, then a plain
   * array that grows with use, so a topic with few messages (a `user:<id>` topic, say) costs a few
   * bytes, not `size` slots, and one with none costs nothing. Their offsets are increasing.
   */
  entries: BusMessage[] | undefined
  /** When each of `entries` was published (`Date.now()`), for the age limit: no object per entry. */
  times: number[] | undefined
  /** Every message at or before this offset may be gone; history can recover only from here on. */
  floor: number
  /** Offset of the newest message of this topic (or `floor` when it has none). */
  last: number
}

/** `performance.timeOrigin` is a getter: read once. */
const TIME_ORIGIN = performance.timeOrigin

function randomEpoch(): string {
  return Math.random().toString(36).slice(2, 10) + Date.now().toString(36)
}

/**
 * The default bus: one process, nothing to install. Keeps a bounded buffer of the last messages of
 * each topic (bounded in count and age) and delivers synchronously, in publish order.
 *
 * Offsets are decimal integers from one counter for the whole bus, so an offset is never reused
 * within an epoch even after an idle topic's state is dropped. The epoch is new for every instance:
 * a restarted process has lost its history, and clients are told to resync.
 */
export class InMemoryBus implements Bus {
  /** The epoch of this bus instance. */
  readonly epoch = randomEpoch()
  readonly healthy = true
  private readonly size: number
  private readonly ttlMs: number
  private readonly onListenerError: (error: unknown, message: BusMessage) => void
  private readonly topics = new Map<string, TopicState>()
  private counter = 0
  /** The highest `last` of any dropped topic state: the floor of a state created afresh. */
  private droppedWatermark = 0
  private closed = false
  private sweepTimer: ReturnType<typeof setInterval> | undefined
  /** The positions of publishes made with an idempotency key, kept for the history age. */
  private readonly idempotent = new Map<string, { positions: Position[]; at: number }>()
  /** The retained state of each state topic (never swept: a state outlives the history). */
  private readonly states = new Map<string, BusMessage>()
  /** The members of presence topics, for every server sharing this bus. */
  readonly presence = new MemoryPresence()
  private readonly loadListeners = new Set<(report: LoadReport) => void>()

  constructor(options: InMemoryBusOptions = {}) {
    this.size = Math.max(0, Math.floor(options.history?.size ?? DEFAULT_HISTORY_SIZE))
    this.ttlMs = Math.max(0, options.history?.ttlMs ?? DEFAULT_HISTORY_TTL_MS)
    this.onListenerError =
      options.onListenerError ??
      ((error, message) => console.error(`[@app/realtime] bus listener for "${message.topic}" threw`, error))
    const sweepEvery = Math.min(Math.max(this.ttlMs, 1000), 60_000)
    this.sweepTimer = setInterval(() => this.sweep(), sweepEvery)
    this.sweepTimer.unref?.()
  }

  /**
   * Not an `async` function, to save its machinery on the hottest path; it still never throws:
   * every failure is a rejected promise.
   */
  publish(topic: string, data: string): Promise<Position> {
    if (this.closed) return Promise.reject(new RealtimeError('CLOSED', 'the bus is closed'))
    try {
      return Promise.resolve(this.append(topic, data))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * One payload to several topics: appended to each, in the order given, in one step (no extra
   * copy of `data`). With `options.id`, a repeat of a publish made within the history age
   * publishes nothing and resolves with the first one's positions.
   */
  publishMany(topics: readonly string[], data: string, options?: PublishOptions): Promise<Position[]> {
    if (this.closed) return Promise.reject(new RealtimeError('CLOSED', 'the bus is closed'))
    const id = options?.id
    try {
      if (id !== undefined) {
        const seen = this.idempotent.get(id)
        if (seen !== undefined) return Promise.resolve(seen.positions)
      }
      const positions = topics.map((topic) => this.append(topic, data))
      if (id !== undefined) this.idempotent.set(id, { positions, at: Date.now() })
      return Promise.resolve(positions)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Appends a message to its topic's history and hands it to the topic's listeners. */
  private append(topic: string, data: string): Position {
    const state = this.state(topic)
    const offset = ++this.counter
    state.last = offset
    const epoch = this.epoch
    const message: BusMessage = { topic, data, epoch, offset: String(offset), publishedAt: TIME_ORIGIN + performance.now() }
    if (this.size > 0) {
      const entries = (state.entries ??= [])
      const times = (state.times ??= [])
      entries.push(message)
      times.push(Date.now())
      // The oldest entry goes: recovery from before it is no longer possible.
      if (entries.length > this.size) {
        state.floor = Number((entries.shift() as BusMessage).offset)
        times.shift()
      }
    } else {
      state.floor = offset
    }
    if (state.one !== undefined) this.deliver(state.one, message)
    else if (state.many !== undefined) for (const listener of state.many) this.deliver(listener, message)
    return { epoch, offset: message.offset }
  }

  private deliver(listener: BusListener, message: BusMessage): void {
    try {
      listener(message)
    } catch (error) {
      this.onListenerError(error, message)
    }
  }

  async subscribe(topic: string, listener: BusListener): Promise<void> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    addMember(this.state(topic), listener)
  }

  async unsubscribe(topic: string, listener: BusListener): Promise<void> {
    const state = this.topics.get(topic)
    if (state !== undefined) deleteMember(state, listener)
  }

  async history(topic: string, since?: Position): Promise<HistoryResult> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    const state = this.state(topic)
    this.evictExpired(state, Date.now())
    const position: Position = { epoch: this.epoch, offset: String(state.last) }
    if (!since || since.epoch !== this.epoch || !/^\d{1,15}$/.test(since.offset)) {
      return { messages: [], recovered: false, position }
    }
    const from = Number(since.offset)
    if (from < state.floor || from > state.last) return { messages: [], recovered: false, position }
    // Offsets increase along `entries`: the messages after `from` are a tail of it.
    const entries = state.entries ?? []
    let first = entries.length
    while (first > 0 && Number((entries[first - 1] as BusMessage).offset) > from) first--
    return { messages: entries.slice(first), recovered: true, position }
  }

  async retain(message: BusMessage): Promise<void> {
    const kept = this.states.get(message.topic)
    if (kept !== undefined && kept.epoch === message.epoch && compareOffsets(kept.offset, message.offset) >= 0) return
    this.states.set(message.topic, { topic: message.topic, data: message.data, epoch: message.epoch, offset: message.offset })
  }

  async retained(topic: string): Promise<BusMessage | undefined> {
    return this.states.get(topic)
  }

  /** Hands the report to every `onLoad` listener: the servers sharing this bus object see each other. */
  async shareLoad(report: LoadReport): Promise<void> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    for (const listener of [...this.loadListeners]) listener({ ...report })
  }

  onLoad(listener: (report: LoadReport) => void): () => void {
    this.loadListeners.add(listener)
    return () => this.loadListeners.delete(listener)
  }

  async close(): Promise<void> {
    this.closed = true
    this.states.clear()
    this.presence.clear()
    this.loadListeners.clear()
    if (this.sweepTimer) clearInterval(this.sweepTimer)
    this.sweepTimer = undefined
    this.topics.clear()
    this.idempotent.clear()
  }

  /** Number of topics with state (history or listeners), for stats and tests. */
  get topicCount(): number {
    return this.topics.size
  }

  private state(topic: string): TopicState {
    let state = this.topics.get(topic)
    if (!state) {
      state = {
        entries: undefined,
        times: undefined,
        floor: this.droppedWatermark,
        last: this.droppedWatermark,
        one: undefined,
        many: undefined,
      }
      this.topics.set(topic, state)
    }
    return state
  }

  private evictExpired(state: TopicState, now: number): void {
    const { entries, times } = state
    if (entries === undefined || times === undefined) return
    let expired = 0
    while (expired < times.length && now - (times[expired] as number) >= this.ttlMs) expired++
    if (expired === 0) return
    state.floor = Number((entries[expired - 1] as BusMessage).offset)
    if (expired === entries.length) {
      state.entries = undefined
      state.times = undefined
    } else {
      entries.splice(0, expired)
      times.splice(0, expired)
    }
  }

  /** Drops the state of topics with no listener and no live history, so idle topics cost nothing. */
  private sweep(): void {
    const now = Date.now()
    // In insertion order, so the oldest come first.
    for (const [id, { at }] of this.idempotent) {
      if (now - at < this.ttlMs) break
      this.idempotent.delete(id)
    }
    for (const [topic, state] of this.topics) {
      this.evictExpired(state, now)
      if (state.entries === undefined && memberCount(state) === 0) {
        if (state.last > this.droppedWatermark) this.droppedWatermark = state.last
        this.topics.delete(topic)
      }
    }
  }
}
