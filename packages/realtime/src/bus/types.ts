import type { PresenceMember } from '../protocol.js'
import type { Position } from '../topics.js'

/** One message on the bus: its topic, its payload as JSON text, and its position in the topic. */
export interface BusMessage {
  topic: string
  /** The payload, serialized once by the publisher. */
  data: string
  epoch: string
  offset: string
  /**
   * When the message was published, in milliseconds since the Unix epoch (fractional where the bus
   * knows better than a millisecond), for the publish-to-send latency. Absent on history entries.
   */
  publishedAt?: number
}

/** What `Bus.history` answers. */
export interface HistoryResult {
  /** Messages after `since`, oldest first (empty when `since` was not given or not recovered). */
  messages: BusMessage[]
  /** True only when `since` was given, its epoch matches, and nothing after it is missing. */
  recovered: boolean
  /** The topic's current position: the last message's, or `{epoch, offset: '0'}` when it has none. */
  position: Position
}

/** Options of a publish. */
export interface PublishOptions {
  /**
   * An idempotency key (the outbox relay passes its row id): a publish with the id of one made
   * within the history age (`ttlMs`) publishes nothing and resolves with the first one's
   * positions, so a publish retried after a crash reaches subscribers once.
   */
  id?: string
}

/** Bounds of the per-topic history. */
export interface HistoryOptions {
  /** Messages kept per topic. Default 100. */
  size?: number
  /** Age limit of a kept message, in milliseconds. Default 600 000 (10 minutes). */
  ttlMs?: number
}

/** Listener for messages of one topic. */
export type BusListener = (message: BusMessage) => void

/**
 * The transport between publishers and server instances, and the store of per-topic history.
 * `InMemoryBus` serves one process; `RedisBus` (from `@app/realtime/redis`) serves many.
 *
 * Contract: messages of one topic reach every listener in offset order, each once; `publish`
 * resolves with the message's position after the message is in history; `history` never misses a
 * message that a listener registered before the call has not yet seen (callers subscribe first,
 * buffer, read history, then merge by offset); and when `history` resolves, every message up to
 * the position it reports has already been handed to the listeners registered before the call,
 * so a message a caller took from history never reaches its listener afterwards.
 */
export interface Bus {
  publish(topic: string, data: string): Promise<Position>
  /**
   * Publishes one payload to several topics in one step (`RedisBus`: one round trip); resolves with
   * each topic's position, in the order given. Each topic's messages stay in order, as with
   * `publish`. Optional: without it the server calls `publish` for each topic.
   */
  publishMany?(topics: readonly string[], data: string, options?: PublishOptions): Promise<Position[]>
  subscribe(topic: string, listener: BusListener): Promise<void>
  unsubscribe(topic: string, listener: BusListener): Promise<void>
  history(topic: string, since?: Position): Promise<HistoryResult>
  close(): Promise<void>
  /** Whether the bus can publish right now (the Redis connection is up). Optional. */
  readonly healthy?: boolean
  /** Called by the server to learn of bus state changes (for metrics and logs). Optional. */
  onStatus?(listener: (status: BusStatus) => void): () => void
  /**
   * Called with a topic whose listeners missed messages that the history can no longer supply
   * (e.g. the bus's Redis connection was down while others published, or Redis lost its data).
   * The server must make that topic's subscribers resync. Optional: `InMemoryBus` never has gaps.
   */
  onGap?(listener: (topic: string) => void): () => void
  /**
   * Keeps `message` as its topic's retained state (a state topic's last payload), unless the topic
   * already retains a later one. Optional: a server with `stateTopics` needs it (and `retained`).
   */
  retain?(message: BusMessage): Promise<void>
  /** The retained state of `topic`: the last message given to `retain`, or undefined. */
  retained?(topic: string): Promise<BusMessage | undefined>
  /** Members of presence topics across the instances on this bus. Optional: `presence` needs it. */
  readonly presence?: BusPresence
  /**
   * The state of the bus's publisher flow control, where it has one (`RedisBus`): how far this
   * instance's publishes run ahead of their delivery, and how many wait. Optional.
   */
  readonly flowControl?: BusFlowControl
  /**
   * Sends this server instance's load to every instance on the bus (the server's `rebalance`
   * option calls it every interval). Optional, with `onLoad`: `InMemoryBus` hands it to the servers
   * sharing the bus object, `RedisBus` publishes it on a small control channel.
   */
  shareLoad?(report: LoadReport): Promise<void>
  /** Learns of the load reports of every instance on the bus (its own included). Returns the function that stops it. */
  onLoad?(listener: (report: LoadReport) => void): () => void
}

/** One server instance's load, as `rebalance` shares it through the bus. */
export interface LoadReport {
  /** The reporting server instance's id (random, new for every server object). */
  instance: string
  /** Its open WebSocket connections. */
  connections: number
  /** True while it drains (`close({ drainMs })`): it is leaving, and its clients land on the others. */
  draining: boolean
}

/** A change of a presence topic's members, as a bus reports it to a watcher. */
export interface PresenceChange {
  /** Members that joined (or whose info changed). */
  join?: PresenceMember[]
  /** Ids of members that left. */
  leave?: string[]
  /**
   * The whole member list, replacing what the watcher had: sent after the bus may have missed
   * changes (its Redis connection was lost, say).
   */
  members?: PresenceMember[]
}

export type PresenceListener = (change: PresenceChange) => void

/**
 * The members of presence topics across every instance on a bus. An instance holds a member on a
 * topic while one of its connections does (the server counts its own connections): a member
 * joins with the first instance that holds it and leaves with the last; the members held by an
 * instance that died leave after the bus's presence age (`RedisBus`: `presenceTtlMs`).
 */
export interface BusPresence {
  /**
   * This instance holds `member` on `topic`. Resolves false (nothing held) when the topic already
   * has `maxMembers` other members.
   */
  join(topic: string, member: PresenceMember, maxMembers: number): Promise<boolean>
  /** This instance no longer holds `memberId` on `topic`. */
  leave(topic: string, memberId: string): Promise<void>
  /**
   * Follows `topic`'s members: resolves with the members now; every later change reaches
   * `listener` in order, none missed (after a possible loss the bus sends the whole list).
   */
  watch(topic: string, listener: PresenceListener): Promise<PresenceMember[]>
  unwatch(topic: string, listener: PresenceListener): Promise<void>
}

/** Publisher flow control of a bus (see `RedisBus`'s `flowControl` option). */
export interface BusFlowControl {
  /** Publishes allowed in flight beyond the last delivery every receiving instance confirmed. */
  window: number
  /** Publishes started and not yet confirmed delivered everywhere. */
  inFlight: number
  /** Publishes waiting for the window to open. */
  waiting: number
  /** How far behind the slowest receiving instance was at the last confirmation, in ms. */
  lastLagMs: number
}

/** A bus's connection status. */
export type BusStatus = 'up' | 'down'

export const DEFAULT_HISTORY_SIZE = 100
export const DEFAULT_HISTORY_TTL_MS = 10 * 60 * 1000

/**
 * Compares two offsets of one epoch: negative when `a` comes first. Offsets are decimal integers
 * ("42") or Redis stream ids ("1700000000000-3"); both compare part by part, numerically.
 */
export function compareOffsets(a: string, b: string): number {
  if (a === b) return 0
  const pa = a.split('-')
  const pb = b.split('-')
  const n = Math.max(pa.length, pb.length)
  for (let i = 0; i < n; i++) {
    const x = pa[i] ?? '0'
    const y = pb[i] ?? '0'
    if (x.length !== y.length) return x.length - y.length
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}
