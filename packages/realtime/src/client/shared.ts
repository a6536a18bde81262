/**
 * One WebSocket for every tab of an origin (the client's `shared` option). The tabs with one key
 * elect a leader with a Web Lock, which its tab holds for its life; the leader keeps the real
 * connection and serves the other tabs (followers) over a BroadcastChannel: it relays its
 * connection's state and the server's frames, subscribes on the wire for them, and answers their
 * subscribes. When its tab closes, the next tab in the lock's queue takes over, and every follower
 * subscribes again through it with its own position per topic; a tab drops the patches it has
 * seen already, so that none sees a gap or a duplicate. Each tab also holds a lock of its own,
 * which comes free when the tab goes: that is how the leader learns to drop a vanished tab's topics.
 */
import type { ClientFrame, FrameId, ServerFrame, SubscribedFrame, SubscribeFrame } from '../protocol.js'
import type { Position } from '../topics.js'
import type { ConnectionState } from './client.js'
import type { Connection, ConnectionEvents } from './connection.js'
import type { TopicSubscription } from './subscription.js'

/** What a leader asks of its tab's client to serve the other tabs. */
export interface SharedHost {
  /** The topic's subscription in this tab. */
  get(topic: string): TopicSubscription | undefined
  /** A reference held for another tab; a topic new to this tab starts from that tab's `since`. */
  retain(topic: string, since: Position | undefined): void
  release(topic: string): void
  /** Subscribes again on the wire from `since`, before this tab's position: what came after follows. */
  replay(sub: TopicSubscription, since: Position): void
}

/** What the tabs say to each other on the channel. */
type Message =
  /**
   * The leader's connection state: on every change, to a tab that says hello, and from a new
   * leader (`connecting`), which the tabs then subscribe again through once it says `connected`.
   */
  | { kind: 'state'; state: ConnectionState; id: string | undefined }
  /** A frame from the server, relayed by the leader to every tab or to one (`to`). */
  | { kind: 'server'; frame: ServerFrame; to?: string }
  /** A follower's frame for the server (subscribe, unsubscribe, members). */
  | { kind: 'client'; from: string; frame: ClientFrame }
  /** A follower's arrival. (Its leaving needs no message: its own lock comes free.) */
  | { kind: 'hello'; from: string }

/** A follower's subscribe waiting for the leader's subscription to be live: the tab and its frame. */
type Waiting = [tab: string, frame: SubscribeFrame]

interface Locks {
  request(name: string, options: { signal: AbortSignal }, callback: () => unknown): Promise<unknown>
}

/**
 * The connection of a tab that shares one: a follower's link to the leader until this tab is
 * elected, then a connection of its own (`open`) that serves the others too. Undefined where
 * Web Locks or BroadcastChannel are missing (Node, old browsers): the client then keeps a socket
 * of its own.
 */
export function createSharedConnection(
  key: string,
  host: SharedHost,
  events: ConnectionEvents,
  open: (events: ConnectionEvents) => Connection,
): Connection | undefined {
  const locks = (globalThis as { navigator?: { locks?: Locks } }).navigator?.locks
  const Channel = globalThis.BroadcastChannel
  if (!locks || !Channel) return undefined
  const name = `realtime:${key}`
  // Web Locks exist in secure contexts only, where `crypto.randomUUID` does too.
  const tab = crypto.randomUUID()
  const abort = new AbortController()
  const held: (() => void)[] = []
  let channel: BroadcastChannel | undefined
  let leader: Connection | undefined
  // The follower's view of the leader's connection.
  let state: ConnectionState = 'connecting'
  let connectionId: string | undefined
  let welcomed = false
  let nextId = 0
  // The leader's record of the other tabs: their topics, their subscribes not answered yet, and
  // the position a wire re-subscribe replays from for a tab that was behind.
  const tabs = new Map<string, Set<string>>()
  let waiting: Waiting[] = []
  const replays = new Map<string, Position>()
  // Followers' `members` requests on the wire, by the leader's id for them: the tab and its own id.
  const asks = new Map<string, [tab: string, id: FrameId | undefined]>()
  let asked = 0

  const post = (message: Message) => channel?.postMessage(message)

  /**
   * Requests `lock`, runs `then` once it is granted, and holds it until this client closes (a
   * closed follower's lock, which the leader takes, is no one else's).
   */
  const hold = (lock: string, then: () => void): void => {
    locks
      .request(lock, { signal: abort.signal }, () => {
        then()
        return new Promise<void>((resolve) => held.push(resolve))
      })
      .catch(() => undefined)
  }

  function setState(next: ConnectionState): void {
    if (state === next) return
    state = next
    events.state(next)
  }

  /** The leader's connection went, or a new leader came: what was on the wire is gone. */
  function drop(next: ConnectionState): void {
    if (welcomed) {
      welcomed = false
      connectionId = undefined
      events.closed()
    }
    setState(next)
  }

  function onMessage({ data: message }: MessageEvent<Message>): void {
    if (leader) return serve(message)
    switch (message.kind) {
      case 'state':
        if (message.state !== 'connected') return drop(message.state)
        connectionId = message.id
        if (welcomed) return
        welcomed = true
        setState('connected')
        return events.welcome()
      case 'server':
        if (message.to === undefined || message.to === tab) events.frame(message.frame)
        return
    }
  }

  /** The leader's side: a follower's message. */
  function serve(message: Message): void {
    if (!('from' in message) || !leader) return
    const { from } = message
    let topics = tabs.get(from)
    if (!topics) {
      tabs.set(from, (topics = new Set()))
      // The tab's own lock comes free when the tab goes (or its client closes): its topics go then.
      hold(`${name} ${from}`, () => leave(from))
    }
    if (message.kind === 'hello') return post({ kind: 'state', state: leader.state, id: leader.connectionId })
    const { frame } = message
    if (frame.type === 'subscribe') {
      if (!topics.has(frame.topic)) {
        topics.add(frame.topic)
        host.retain(frame.topic, frame.since)
      }
      waiting.push([from, frame])
      answer(frame.topic)
    } else if (frame.type === 'unsubscribe' && topics.delete(frame.topic)) {
      host.release(frame.topic)
    } else if (frame.type === 'members') {
      // An id of the leader's own, so the reply finds its tab (and no other tab's request).
      const id = `r${++asked}`
      asks.set(id, [from, frame.id])
      leader.send({ ...frame, id })
    }
  }

  function leave(from: string): void {
    for (const topic of tabs.get(from) ?? []) host.release(topic)
    tabs.delete(from)
  }

  /**
   * Answers the tabs waiting for `topic` once this tab's subscription is live. A tab at this tab's
   * position or past it is recovered (it drops what it has seen); one behind it waits for a wire
   * re-subscribe from its position, and gets the server's answer to that (`recovered`).
   */
  function answer(topic: string, recovered?: boolean): void {
    const sub = host.get(topic)
    const at = sub?.position
    if (!sub || sub.state !== 'subscribed' || !at) return
    const replayed = replays.get(topic)
    replays.delete(topic)
    let from: Position | undefined
    waiting = waiting.filter(([tab, { id, topic: other, since }]) => {
      if (other !== topic) return true
      // Another epoch: not recovered (the tab resyncs).
      if (since?.epoch !== at.epoch) since = undefined
      const behind = since && compareOffsets(since.offset, at.offset) < 0
      if (behind && !(replayed && compareOffsets(since!.offset, replayed.offset) >= 0)) {
        if (!from || compareOffsets(since!.offset, from.offset) < 0) from = since
        return true
      }
      const reply: SubscribedFrame = { type: 'subscribed', id, topic, epoch: at.epoch, offset: at.offset, recovered: !!since && (!behind || !!recovered) }
      // Not recovered, on a state topic: the state at this position, as the server would send it.
      if (!reply.recovered && sub.stateful) reply.state = sub.value
      post({ kind: 'server', to: tab, frame: reply })
      return false
    })
    if (from) {
      replays.set(topic, from)
      host.replay(sub, from)
    }
  }

  /** The leader's connection events: this tab's client's, relayed to the others. */
  const relay: ConnectionEvents = {
    ...events,
    closed() {
      // Their tabs hear of the closed connection and fail these requests themselves.
      asks.clear()
      events.closed()
    },
    frame(frame) {
      // The reply to a `members` request (string ids) goes to the tab that asked, and only there.
      if (frame.type === 'members' || (frame.type === 'error' && typeof frame.id === 'string')) {
        const ask = asks.get(frame.id as string)
        if (!ask) return events.frame(frame)
        asks.delete(frame.id as string)
        return post({ kind: 'server', to: ask[0], frame: { ...frame, id: ask[1] } as ServerFrame })
      }
      // A reply to this tab's own subscribe stays here: the others get theirs from `answer`.
      if (frame.type !== 'subscribed' || frame.id === undefined) {
        // Without this tab's request id: an error about the topic is every tab's.
        post({ kind: 'server', frame: { ...frame, id: undefined } as ServerFrame })
      }
      // Revoked: the server dropped it for every tab, and a later subscribe starts afresh.
      if (frame.type === 'unsubscribed' && frame.reason !== undefined) for (const topics of tabs.values()) topics.delete(frame.topic)
      events.frame(frame)
      if (frame.type === 'subscribed') answer(frame.topic, frame.recovered)
    },
    state(next) {
      post({ kind: 'state', state: next, id: leader?.connectionId })
      events.state(next)
    },
  }

  function lead(): void {
    drop('connecting')
    leader = open(relay)
    post({ kind: 'state', state: 'connecting', id: undefined })
    leader.connect()
  }

  // Everything starts once this tab's own lock is held, so a leader never finds it free too early.
  hold(`${name} ${tab}`, () => {
    channel = new Channel(name)
    channel.onmessage = onMessage
    post({ kind: 'hello', from: tab })
    hold(name, lead)
  })

  return {
    get state() {
      return leader ? leader.state : state
    },
    get connectionId() {
      return leader ? leader.connectionId : connectionId
    },
    get welcomed() {
      return leader ? leader.welcomed : welcomed
    },
    // Request ids of this tab's subscribes (the leader's own pings and renewals count apart).
    nextId: () => ++nextId,
    send(frame) {
      if (leader) return leader.send(frame)
      if (welcomed) post({ kind: 'client', from: tab, frame })
      return welcomed
    },
    // The leader connects once elected, lazy or not: the other tabs may be waiting for it.
    connect() {},
    // A follower's socket is the leader's: only the leader's tab reconnects it.
    reconnect() {
      leader?.reconnect()
    },
    close() {
      abort.abort()
      for (const release of held) release()
      channel?.close()
      channel = undefined
      if (leader) leader.close()
      else setState('disconnected')
    },
  }
}

/**
 * Compares two offsets of one epoch: decimal integers, or Redis stream ids (`ms-seq`), part by
 * part as numbers. Negative when `a` comes first.
 */
export function compareOffsets(a: string, b: string): number {
  const x = a.split('-')
  const y = b.split('-')
  for (let i = 0; i < x.length || i < y.length; i++) {
    const d = Number(x[i] ?? 0) - Number(y[i] ?? 0)
    if (d) return d
  }
  return 0
}
