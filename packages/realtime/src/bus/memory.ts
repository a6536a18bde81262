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
  /** Ring buffer of the last `size` messages. */
  ring: (Entry | undefined)[]
  head: number
  count: number
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
 * The default bus: one process, nothing to install. Keeps a ring buffer of the last messages of
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
      const index = (state.head + state.count) % this.size
      if (state.count === this.size) {
        // The oldest entry is overwritten: recovery from before it is no longer possible.
        state.floor = (state.ring[state.head] as Entry).offset
        state.head = (state.head + 1) % this.size
      } else {
        state.count++
      }
      state.ring[index] = { message, offset, at: Date.now() }
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
    for (let i = 0; i < state.count; i++) {
      const entry = state.ring[(state.head + i) % this.size] as Entry
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
        ring: new Array(this.size),
        head: 0,
        count: 0,
        floor: this.droppedWatermark,
        last: this.droppedWatermark,
        listeners: new Set(),
      }
      this.topics.set(topic, state)
    }
    return state
  }

  private evictExpired(state: TopicState, now: number): void {
    while (state.count > 0) {
      const entry = state.ring[state.head] as Entry
      if (now - entry.at < this.ttlMs) break
      state.floor = entry.offset
      state.ring[state.head] = undefined
      state.head = (state.head + 1) % this.size
      state.count--
    }
  }

  /** Drops the state of topics with no listener and no live history, so idle topics cost nothing. */
  private sweep(): void {
    const now = Date.now()
    for (const [topic, state] of this.topics) {
      this.evictExpired(state, now)
      if (state.count === 0 && state.listeners.size === 0) {
        if (state.last > this.droppedWatermark) this.droppedWatermark = state.last
        this.topics.delete(topic)
      }
    }
  }
}
