import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { InMemoryBus } from '../bus/memory.js'
import type { Bus, PublishOptions } from '../bus/types.js'
import { RealtimeError } from '../errors.js'
import { CloseCode, isValidTopic } from '../protocol.js'
import type { Position, TopicMap } from '../topics.js'
import { Admission } from './admission.js'
import { Connection, type ConnectionContext, type ConnectionSubscription } from './connection.js'
import { PacedClose } from './drain.js'
import { Heartbeat } from './heartbeat.js'
import { resolveLimits } from './limits.js'
import { DEFAULT_LEAVE_DELAY_MS, DEFAULT_MAX_MEMBERS, DEFAULT_PRESENCE_FLUSH_MS, LocalPresence, checkedMember, defaultMember } from './presence.js'
import { Publisher } from './publish.js'
import { Rebalancer } from './rebalance.js'
import type { SubscriberPresence } from './subscriptions.js'
import { RealtimeSocket } from './socket.js'
import { StatsCounters, count } from './stats.js'
import { LocalTopics, type ServerTopicListener } from './topics.js'
import type {
  CloseOptions,
  DrainStats,
  Logger,
  PresenceOptions,
  Principal,
  RealtimeServer,
  RealtimeServerOptions,
  TopicListenerHandle,
} from './types.js'

/** An upgrade socket's error ends it; a plain function, so no closure outlives the handshake. */
function destroySocket(this: Duplex): void {
  this.destroy()
}

const silentLogger: Logger = { info() {}, warn() {}, error() {} }

/** How many topics `stats().busiestTopics` lists. */
const BUSIEST_TOPICS = 10

/** Milliseconds since the Unix epoch, with sub-millisecond precision (as `BusMessage.publishedAt`). */
function wallClockMs(): number {
  return performance.timeOrigin + performance.now()
}

/** How long `close()` waits, after the last client was asked to go, before destroying those left. */
const CLOSE_GRACE_MS = 2000

/** `close()`'s window when neither it nor the server's options give one. */
const DEFAULT_DRAIN_MS = 5000

/**
 * Creates a realtime server on `ws`. Attach it to an `http.Server` (`server`) or call
 * `handleUpgrade` yourself (`noServer`). See docs/api/server.md.
 */
export function createRealtimeServer<T extends TopicMap = TopicMap, P = Principal>(
  options: RealtimeServerOptions<P> = {},
): RealtimeServer<T, P> {
  if (!options.server && !options.noServer) {
    throw new TypeError('createRealtimeServer needs either `server` (an http.Server) or `noServer: true`')
  }
  const path = options.path ?? '/ws'
  const limits = resolveLimits(options.limits)
  const logger = options.logger ?? silentLogger
  const heartbeatMs = options.heartbeatMs ?? 25_000
  const bus: Bus = options.bus ?? new InMemoryBus(options.history ? { history: options.history } : {})
  const allowedOrigins = options.allowedOrigins ? new Set(options.allowedOrigins) : undefined
  const stats = new StatsCounters()
  const topics = new LocalTopics<ConnectionSubscription<P>>(bus, logger, (sent, message) => {
    stats.delivered += sent
    // Once per message, after its whole local fanout: never per subscriber.
    if (message.publishedAt !== undefined) stats.publishToSend.observe((wallClockMs() - message.publishedAt) / 1000)
  })
  const stateTopics = options.stateTopics
  if (stateTopics && (!bus.retain || !bus.retained)) {
    throw new TypeError('`stateTopics` needs a bus that keeps state (retain/retained): InMemoryBus and RedisBus do')
  }
  const presence = options.presence ? makePresence(options.presence, bus, logger) : undefined
  const connections = new Set<Connection<P>>()
  const admission = new Admission(limits, options.trustProxy)
  let busUp = bus.healthy !== false
  // A bus that is still connecting when the server starts has not *re*connected when it comes up.
  let busWasUp = busUp
  const stopBusStatus = bus.onStatus?.((status) => {
    if (status === 'up' && !busUp && busWasUp) stats.busReconnects++
    busUp = status === 'up'
    busWasUp ||= busUp
    logger[status === 'up' ? 'info' : 'warn']({ busStatus: status }, `realtime: bus is ${status}`)
  })
  const stopBusGaps = bus.onGap?.((topic) => {
    logger.warn({ topic }, 'realtime: the bus lost messages; subscribers will resync')
    for (const subscription of topics.subscriptionsOf(topic)) void subscription.sink.resync(topic)
  })
  let closing: Promise<void> | undefined
  /** Set once the drain is over: publishes are refused from then on. */
  let closed = false
  /** Set by `close()`: the drain (in progress, then over). */
  let drain: { stats: Omit<DrainStats, 'moved' | 'remaining'>; pace: PacedClose | undefined } | undefined
  /** Called when the last open connection has closed (while `close()` waits for it). */
  let onAllClosed: (() => void) | undefined
  const instance = Math.random().toString(36).slice(2, 10)

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxPayloadBytes,
    perMessageDeflate: false,
    clientTracking: false,
    WebSocket: RealtimeSocket,
  })

  const ctx: ConnectionContext<P> = {
    bus,
    topics,
    stats,
    limits,
    logger,
    heartbeatMs,
    handshake: options.authenticate ? { authenticate: options.authenticate, limits, stats, logger } : undefined,
    authorize: options.authorize,
    stateTopics,
    presence,
    onClosed(connection) {
      if (!connections.delete(connection)) return
      admission.release(connection.address)
      logger.info(
        { connectionId: connection.id, code: connection.closeCode, connections: connections.size },
        'realtime: connection closed',
      )
      if (connections.size === 0) onAllClosed?.()
    },
  }

  const publisher = new Publisher({
    bus,
    stats,
    logger: logger === silentLogger ? undefined : logger,
    validate: options.validate,
    subscriberCount: (topic) => topics.subscriberCount(topic),
    closed: () => closed,
    stateTopics,
  })

  let rebalancer: Rebalancer | undefined
  function moved(why: 'drain' | 'rebalance'): void {
    count(stats.moved, why)
    rebalancer?.moved()
  }
  if (options.rebalance) {
    if (!bus.shareLoad || !bus.onLoad) {
      throw new TypeError('`rebalance` needs a bus that shares load between instances (bus.shareLoad and bus.onLoad), as InMemoryBus and RedisBus do')
    }
    rebalancer = new Rebalancer(
      { shareLoad: bus.shareLoad.bind(bus), onLoad: bus.onLoad.bind(bus) },
      {
        instance,
        connections: () => connections.size,
        draining: () => drain !== undefined,
        shed: (howMany, windowMs) => {
          // The oldest connections: a client that just arrived is not sent off again at once.
          const targets = [...connections].slice(0, howMany)
          new PacedClose(targets, windowMs, 'rebalancing: reconnect to another instance', () => moved('rebalance'), () => undefined)
        },
      },
      options.rebalance === true ? {} : options.rebalance,
      logger,
    )
  }

  const heartbeat = new Heartbeat(heartbeatMs, () => {
    for (const connection of connections) connection.heartbeat()
  })
  heartbeat.start()

  function refuse(socket: Duplex, status: number, reason: string, message: string): void {
    count(stats.refused, reason)
    logger.info({ reason }, 'realtime: upgrade refused')
    if (socket.writable) {
      const body = JSON.stringify({ error: { code: reason, message } })
      socket.end(
        `HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : status === 400 ? 'Bad Request' : 'Service Unavailable'}\r\n` +
          'Connection: close\r\nContent-Type: application/json\r\n' +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      )
    }
    socket.destroy()
  }

  const REFUSALS = {
    max_connections: 'the server is at its connection limit',
    max_connections_per_address: 'too many connections from this address',
  } as const

  function handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', destroySocket)
    if (closing) return refuse(socket, 503, 'shutting_down', 'the server is shutting down')
    const origin = request.headers.origin
    if (allowedOrigins && (!origin || !allowedOrigins.has(origin))) {
      return refuse(socket, 403, 'origin', 'origin not allowed')
    }
    // Counted before the handshake finishes so that a burst cannot overshoot the limits.
    const admitted = admission.admit(admission.addressOf(request))
    if ('refused' in admitted) return refuse(socket, 503, admitted.refused, REFUSALS[admitted.refused])
    const { address } = admitted
    // `ws` answers a bad handshake itself and never calls back: give the place back then. The
    // listener goes once the handshake succeeds (often synchronously, inside handleUpgrade), so
    // that it does not keep this scope — and the upgrade request — alive for the connection's life.
    const release = (): void => admission.release(address)
    socket.once('close', release)
    wss.handleUpgrade(request, socket, head, (ws: WebSocket) => {
      socket.off('close', release)
      if (closing) {
        ws.close(CloseCode.Reconnect, 'server shutting down')
        admission.release(address)
        return
      }
      // The server's WebSocketServer makes RealtimeSockets (its `WebSocket` option).
      const realtimeSocket = ws as RealtimeSocket
      const connection = new Connection<P>(realtimeSocket, request, address, ctx)
      realtimeSocket.attach(connection)
      connections.add(connection)
      stats.connectionsOpened++
      logger.info({ connectionId: connection.id, address, connections: connections.size }, 'realtime: connection opened')
    })
  }

  const onServerUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = request.url ?? '/'
    const pathname = url.split('?', 1)[0]
    if (pathname === path) {
      handleUpgrade(request, socket, head)
      return
    }
    // Other upgrade handlers (a dev server's HMR, say) may want this one; refuse only if none exists.
    if (options.server && options.server.listenerCount('upgrade') === 1) {
      refuse(socket, 400, 'path', `no WebSocket endpoint at ${pathname}`)
    }
  }
  if (options.server && !options.noServer) options.server.on('upgrade', onServerUpgrade)

  function onTopic(topic: string, listener: (payload: never, position: Position) => void): TopicListenerHandle {
    if (!isValidTopic(topic)) throw new RealtimeError('INVALID_TOPIC', `invalid topic ${JSON.stringify(String(topic).slice(0, 50))}`)
    const fn = listener as ServerTopicListener
    const ready = topics.listen(topic, fn)
    // Callers that never await `ready` must not see an unhandled rejection; the failure is logged.
    ready.catch((error: unknown) => logger.error({ err: error, topic }, 'realtime: onTopic could not subscribe to the bus'))
    const remove = (() => topics.unlisten(topic, fn)) as TopicListenerHandle
    remove.ready = ready
    return remove
  }

  function revoke(topic: string, predicate?: (principal: P) => boolean, reason = 'revoked'): number {
    let revoked = 0
    for (const { sink: connection } of [...topics.subscriptionsOf(topic)]) {
      if (predicate && !predicate(connection.principal)) continue
      if (connection.revoke(topic, reason)) revoked++
    }
    return revoked
  }

  function stats_() {
    let subscriptions = 0
    for (const connection of connections) subscriptions += connection.subscriptionCount
    const snapshot = stats.snapshot({
      connections: connections.size,
      subscriptions,
      topics: topics.size,
      busStatus: busUp ? 'up' : 'down',
      busiestTopics: topics.busiest(BUSIEST_TOPICS),
    })
    if (presence) {
      const { local } = presence
      snapshot.presence = { topics: local.topicCount, held: local.heldCount, ...local.counters }
    }
    const flow = bus.flowControl
    if (flow) {
      snapshot.busFlowControl = { window: flow.window, inFlight: flow.inFlight, waiting: flow.waiting, lastLagMs: flow.lastLagMs }
    }
    if (drain) snapshot.draining = { ...drain.stats, moved: stats.moved.drain ?? 0, remaining: connections.size }
    if (rebalancer) snapshot.rebalance = rebalancer.stats()
    return snapshot
  }

  /**
   * Closes every open connection with 4010, paced over `drainMs`, and waits until they are gone:
   * those still open `CLOSE_GRACE_MS` after the last was asked to go are destroyed.
   */
  function drainConnections(drainMs: number): Promise<void> {
    const targets = [...connections]
    if (targets.length === 0) return Promise.resolve()
    logger.info({ connections: targets.length, drainMs }, 'realtime: draining: moving every connection to other instances')
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      onAllClosed = () => {
        clearTimeout(timer)
        drain?.pace?.stop()
        onAllClosed = undefined
        resolve()
      }
      const asked = () => {
        timer = setTimeout(() => {
          for (const connection of connections) connection.socket.terminate()
        }, CLOSE_GRACE_MS)
      }
      const pace = new PacedClose(targets, drainMs, 'server shutting down: reconnect to another instance', () => moved('drain'), asked)
      if (drain) drain.pace = pace
    })
  }

  async function close(closeOptions?: CloseOptions): Promise<void> {
    closing ??= (async () => {
      const drainMs = Math.max(0, closeOptions?.drainMs ?? options.drainMs ?? DEFAULT_DRAIN_MS)
      drain = { stats: { startedAt: Date.now(), drainMs, total: connections.size }, pace: undefined }
      // Peers learn at once that this instance is leaving: they shed nothing while its clients land.
      rebalancer?.report()
      rebalancer?.stop()
      // Upgrades meanwhile are refused with 503 (`shutting_down`), so a load balancer tries another instance.
      await drainConnections(drainMs)
      heartbeat.stop()
      if (options.server) options.server.off('upgrade', onServerUpgrade)
      // Members held here leave now rather than after the bus's presence age (their clients,
      // moved away within the leave delay, are members on other instances already).
      await presence?.local.close()
      stopBusStatus?.()
      stopBusGaps?.()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      // Publishes made during the drain still reach the bus (other instances' clients need them);
      // from here on they are refused, and those in flight settle before the bus goes.
      closed = true
      await publisher.settled()
      if (options.closeBus !== false) await bus.close()
    })()
    return closing
  }

  return {
    publishTopic: ((topic: string, payload: unknown, options?: PublishOptions) => publisher.publish(topic, payload, options)) as RealtimeServer<T, P>['publishTopic'],
    publishTopics: ((topics: readonly string[], payload: unknown, options?: PublishOptions) =>
      publisher.publishMany(topics, payload, options)) as RealtimeServer<T, P>['publishTopics'],
    onTopic: onTopic as RealtimeServer<T, P>['onTopic'],
    revoke,
    handleUpgrade,
    stats: stats_,
    close,
    bus,
  }
}

/** The server's presence from its `presence` option, checked against the bus. */
function makePresence<P>(options: PresenceOptions<P>, bus: Bus, logger: Logger): SubscriberPresence<P> {
  if (!bus.presence) throw new TypeError('`presence` needs a bus with presence: InMemoryBus and RedisBus have it')
  if (typeof options.topics !== 'function') throw new TypeError('`presence.topics` must be a function (topic) => boolean')
  const local = new LocalPresence(
    bus.presence,
    {
      maxMembers: Math.max(1, Math.floor(options.maxMembers ?? DEFAULT_MAX_MEMBERS)),
      leaveDelayMs: Math.max(0, options.leaveDelayMs ?? DEFAULT_LEAVE_DELAY_MS),
      flushMs: Math.max(0, options.flushMs ?? DEFAULT_PRESENCE_FLUSH_MS),
    },
    logger,
  )
  const { member, watch } = options
  return {
    local,
    topics: options.topics,
    member: member
      ? (principal, topic) => checkedMember(member(principal, topic), logger, topic)
      : (principal, _topic, connectionId) => defaultMember(principal, connectionId),
    watch: watch ? (principal, topic) => watch(principal, topic) === true : () => true,
  }
}
