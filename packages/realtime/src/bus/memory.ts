import { RealtimeError } from '../errors.js'
import type { Position } from '../topics.js'
import {
  DEFAULT_HISTORY_SIZE,
  DEFAULT_HISTORY_TTL_MS,
  type Bus,
  type BusListener,
  type BusMessage,
  type HistoryOptions,
  type HistoryResult,
} from './types.js'

/** Options of `InMemoryBus`. */
export interface InMemoryBusOptions {
  history?: HistoryOptions
  /** Called when a listener throws; the other listeners still get the message. Default: console.error. */
  onListenerError?: (error: unknown, message: BusMessage) => void
}

interface Entry {
  message: BusMessage
  offset: number
  at: number
}

interface TopicState {
  /**
   * The last `size` messages, oldest first. A plain array that grows with use, so a topic with
   * few messages (a `user:<id>` topic, say) costs a few bytes, not `size` slots.
   */
  entries: Entry[]
  /** Every message at or before this offset may be gone; history can recover only from here on. */
  floor: number
  /** Offset of the newest message of this topic (or `floor` when it has none). */
  last: number
  listeners: Set<BusListener>
}

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

  async publish(topic: string, data: string): Promise<Position> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    const state = this.state(topic)
    const offset = ++this.counter
    state.last = offset
    const message: BusMessage = { topic, data, epoch: this.epoch, offset: String(offset), publishedAt: performance.timeOrigin + performance.now() }
    if (this.size > 0) {
      state.entries.push({ message, offset, at: Date.now() })
      // The oldest entry goes: recovery from before it is no longer possible.
      if (state.entries.length > this.size) state.floor = (state.entries.shift() as Entry).offset
    } else {
      state.floor = offset
    }
    for (const listener of state.listeners) {
      try {
        listener(message)
      } catch (error) {
        this.onListenerError(error, message)
      }
    }
    return { epoch: this.epoch, offset: message.offset }
  }

  async subscribe(topic: string, listener: BusListener): Promise<void> {
    if (this.closed) throw new RealtimeError('CLOSED', 'the bus is closed')
    this.state(topic).listeners.add(listener)
  }

  async unsubscribe(topic: string, listener: BusListener): Promise<void> {
    this.topics.get(topic)?.listeners.delete(listener)
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
    const messages: BusMessage[] = []
    for (const entry of state.entries) {
      if (entry.offset > from) messages.push(entry.message)
    }
    return { messages, recovered: true, position }
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.sweepTimer) clearInterval(this.sweepTimer)
    this.sweepTimer = undefined
    this.topics.clear()
  }

  /** Number of topics with state (history or listeners), for stats and tests. */
  get topicCount(): number {
    return this.topics.size
  }

  private state(topic: string): TopicState {
    let state = this.topics.get(topic)
    if (!state) {
      state = {
        entries: [],
        floor: this.droppedWatermark,
        last: this.droppedWatermark,
        listeners: new Set(),
      }
      this.topics.set(topic, state)
    }
    return state
  }

  private evictExpired(state: TopicState, now: number): void {
    let expired = 0
    while (expired < state.entries.length && now - (state.entries[expired] as Entry).at >= this.ttlMs) expired++
    if (expired === 0) return
    state.floor = (state.entries[expired - 1] as Entry).offset
    state.entries.splice(0, expired)
  }

  /** Drops the state of topics with no listener and no live history, so idle topics cost nothing. */
  private sweep(): void {
    const now = Date.now()
    for (const [topic, state] of this.topics) {
      this.evictExpired(state, now)
      if (state.entries.length === 0 && state.listeners.size === 0) {
        if (state.last > this.droppedWatermark) this.droppedWatermark = state.last
        this.topics.delete(topic)
      }
    }
  }
}
