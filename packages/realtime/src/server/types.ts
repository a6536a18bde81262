import type { IncomingMessage, Server as HttpServer } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Bus, BusFlowControl, HistoryOptions, PublishOptions } from '../bus/types.js'
import type { PresenceMember } from '../protocol.js'
import type { Position, TopicMap, TopicName, TopicsPayload } from '../topics.js'
import type { TrustProxy } from './admission.js'
import type { LatencyStats } from './latency.js'
import type { RebalanceStats } from './rebalance.js'

/** Whatever `authenticate` returns: the identity a connection acts as. */
export type Principal = unknown

/** What `authenticate` may return to give the credentials an expiry. */
export interface ExpiringPrincipal<P = Principal> {
  principal: P
  /** Milliseconds since the epoch; at that time the connection must re-authenticate or is closed 4001. */
  expiresAt: number
}

/** A minimal structured logger (pino, Fastify's `log`, console-like). */
export interface Logger {
  debug?(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** Per-connection and per-server limits. Every one has a safe default. */
export interface Limits {
  /** Largest frame a client may send, in bytes. Default 65 536; larger closes with 1009. */
  maxPayloadBytes?: number
  /** Subscriptions one connection may hold. Default 100; more get `TOO_MANY_SUBSCRIPTIONS`. */
  maxSubscriptions?: number
  /** Sustained frames per second per connection (token bucket). Default 100; more get `RATE_LIMITED`. */
  framesPerSecond?: number
  /** Burst size of the frame token bucket. Default 2 × framesPerSecond. */
  frameBurst?: number
  /** Bytes queued to one connection before it is closed 4008 as a slow consumer. Default 1 MiB. */
  maxBufferedBytes?: number
  /** Bad frames (errors) tolerated in a burst before closing 4000. Default 20 (refills 1/s). */
  maxBadFrames?: number
  /** Open connections per remote address. Default 1000; more are refused with HTTP 503. */
  maxConnectionsPerAddress?: number
  /** Open connections in total. Default 100 000; more are refused with HTTP 503. */
  maxConnections?: number
  /** Time to send `hello` when the server requires it (has `authenticate`). Default 10 000 ms. */
  handshakeTimeoutMs?: number
}

/** Options of `createRealtimeServer`. */
export interface RealtimeServerOptions<P = Principal> {
  /** An HTTP server to attach to (upgrades on `path` are taken). */
  server?: HttpServer
  /** Do not listen for upgrades: call `handleUpgrade` yourself. */
  noServer?: boolean
  /** URL path of the WebSocket endpoint. Default '/ws'. */
  path?: string
  /** Default `new InMemoryBus({ history })`. */
  bus?: Bus
  /** Turns the HTTP request and the `auth` of `hello` into a principal; throw to refuse (4001). */
  authenticate?: (
    request: IncomingMessage,
    auth: unknown,
  ) => P | ExpiringPrincipal<P> | Promise<P | ExpiringPrincipal<P>>
  /** Whether a principal may subscribe to a topic. Default: everyone may. */
  authorize?: (principal: P, topic: string) => boolean | Promise<boolean>
  /** History bounds for the default bus. */
  history?: HistoryOptions
  limits?: Limits
  /** Interval of WebSocket pings; a peer that misses one whole interval is closed 4009. Default 25 000. */
  heartbeatMs?: number
  /**
   * Behind a reverse proxy (nginx, a load balancer): which hops may name the client's address in
   * `X-Forwarded-For`, for the per-address connection cap and the logs. `true` (every hop), a hop
   * count, or the proxies' addresses / CIDR ranges (an array or a comma-separated string), or a
   * function `(address, hop) => boolean`; as Fastify's option of the same name. Default `false`:
   * the socket's address (behind a proxy, every client then shares the proxy's address).
   */
  trustProxy?: TrustProxy
  /** Allowed values of the Origin header; others are refused before the upgrade. Default: any. */
  allowedOrigins?: string[]
  logger?: Logger
  /** Close the bus in `close()`. Default true; false when the bus is shared with other servers. */
  closeBus?: boolean
  /** Optional payload validation at publish time (e.g. a map of Standard Schema validators). */
  validate?: (topic: string, payload: unknown) => void
  /**
   * The window over which `close()` moves the clients away when it is given no `drainMs`
   * (the Fastify plugin's `close()` uses it). Default 5000; 0 closes them all at once.
   */
  drainMs?: number
  /**
   * Evens out connections across the instances sharing the bus: each instance shares its
   * connection count through the bus, and one holding well above the even share moves a few
   * clients per interval to the others (closed 4010; they reconnect through the load balancer and
   * recover). Needs a bus with `shareLoad`/`onLoad` (`InMemoryBus`, `RedisBus`). Default off.
   */
  rebalance?: boolean | RebalanceOptions
  /**
   * Which topics are **state topics**: each keeps its last payload (the whole state, not a diff),
   * and a subscriber that does not recover from `since` gets it in `subscribed` (`state`), then the
   * patches after it. The bus must support it (`InMemoryBus` and `RedisBus` do). Every instance
   * must use the same rule. See docs/PROTOCOL.md#state-topics.
   */
  stateTopics?: (topic: string) => boolean
  /** Presence: who is subscribed to which topics, across instances. See `PresenceOptions`. */
  presence?: PresenceOptions<P>
}

/** The `presence` server option (docs/api/server.md#presence). */
export interface PresenceOptions<P = Principal> {
  /** Which topics are presence topics. Every instance must use the same rule. */
  topics: (topic: string) => boolean
  /**
   * The member a subscribed principal is: an id (one member however many connections have it) and
   * a small `info` object (at most 1 KiB of JSON), or null: not a member (an admin watching, say).
   * Default: the principal's `id` when it has a string or number one, else the connection's id.
   */
  member?: (principal: P, topic: string) => PresenceMember | null | undefined
  /** Whether a subscribed principal gets `presence` frames and may ask for `members`. Default: yes. */
  watch?: (principal: P, topic: string) => boolean
  /** Members listed per topic; joins beyond it are not listed. Default 1000. */
  maxMembers?: number
  /**
   * How long a member whose last connection closed stays listed, so a reload or a reconnect (to any
   * instance) causes no leave and join. Default 2000 ms.
   */
  leaveDelayMs?: number
  /** Changes of a topic go out together, at most one frame per watcher per this interval. Default 50 ms. */
  flushMs?: number
}

/** Options of `rebalance`. */
export interface RebalanceOptions {
  /** How often the instance reports its load and checks its share. Default 5000. */
  intervalMs?: number
  /** How far above the even share an instance may be before it sheds: 0.2 is 20 % over. Default 0.2. */
  tolerance?: number
  /** Most connections one instance sheds per interval (paced over half an interval). Default 50. */
  maxPerInterval?: number
}

/** Options of `close()`. */
export interface CloseOptions {
  /**
   * The window over which the open connections are closed with 4010 (reconnect elsewhere and
   * recover), a few at a time, so that the other instances see about `connections ÷ drainMs`
   * reconnects per second, not all at once. Default: the server's `drainMs` option (5000).
   */
  drainMs?: number
}

/** A drain in progress (`stats().draining`). */
export interface DrainStats {
  /** When `close()` was called, in milliseconds since the Unix epoch. */
  startedAt: number
  drainMs: number
  /** Connections open when the drain started. */
  total: number
  /** Connections closed with 4010 so far. */
  moved: number
  /** Connections still open on this instance (moved ones whose close has not completed included). */
  remaining: number
}

/** A topic with local members, for `stats().busiestTopics`. */
export interface TopicActivity {
  topic: string
  /** Local subscriptions (this instance's connections). */
  subscribers: number
  /** Patch frames handed to local subscribers since the topic got its first local member. */
  delivered: number
}

/**
 * Counters and gauges of a server instance (docs/observability.md). Counters only grow; the
 * Prometheus collector (`createPrometheusMetrics`) exposes the same numbers.
 */
export interface RealtimeStats {
  /** Open connections (gauge). */
  connections: number
  /** Subscriptions of the open connections (gauge). */
  subscriptions: number
  /** Topics with local subscribers or server-side listeners (gauge). */
  topics: number
  /** Connections accepted since start. */
  connectionsOpened: number
  /** Frames received from clients. */
  messagesIn: number
  /** Frames sent to clients (every type). */
  messagesOut: number
  /** `publishTopic` calls that reached the bus. */
  published: number
  /** Patch frames handed to subscribers (live fanout and history replay). */
  delivered: number
  bytesOut: number
  /** Counts by reason: 'slow_consumer', 'rate_limited', 'too_many_subscriptions', ... */
  drops: Record<string, number>
  /** `error` frames sent, by error code. */
  errors: Record<string, number>
  /** Closed connections, by close code. */
  closes: Record<string, number>
  /** Refusals by reason: upgrades ('origin', 'max_connections', ...), 'unauthorized', 'forbidden', 'expired'. */
  refused: Record<string, number>
  busStatus: 'up' | 'down'
  /** Times the bus came back up after being down. */
  busReconnects: number
  /**
   * The bus's publisher flow control (`RedisBus`; absent on buses without one): `waiting` counts
   * `publishTopic` calls held back because delivery on some instance is behind.
   */
  busFlowControl?: BusFlowControl
  /** Seconds from the bus accepting a message to its frame handed to the last local subscriber. */
  publishToSend: LatencyStats
  /** Seconds `bus.publish` took, per `publishTopic`. */
  busPublish: LatencyStats
  /** The topics with the most local subscribers, busiest first (at most 10). */
  busiestTopics: TopicActivity[]
  /** Connections closed with 4010 to move them to other instances, by why: `drain`, `rebalance`. */
  moved: Record<string, number>
  /**
   * Set from the moment `close()` is called (and kept after the drain is over, `remaining` 0): a
   * readiness check answers 503 while it is set, so the load balancer takes the instance out.
   */
  draining?: DrainStats
  /** What `rebalance` knows of the instances (absent without `rebalance`). */
  rebalance?: RebalanceStats
  /** Presence on this instance (absent without the `presence` option). */
  presence?: PresenceStats
}

/** `stats().presence`. */
export interface PresenceStats {
  /** Presence topics with members held or watched here (gauge). */
  topics: number
  /** Members this instance holds, over all topics (gauge). */
  held: number
  /** Member changes (join and leave entries) sent in `presence` frames. */
  changesSent: number
  /** `presence` frames sent. */
  framesSent: number
  /** Joins not listed because the topic was at `maxMembers`. */
  capped: number
}

/** Removes a server-side topic listener; `ready` resolves once its bus subscription is in place. */
export interface TopicListenerHandle {
  (): Promise<void>
  ready: Promise<void>
}

/** What `createRealtimeServer` returns. */
export interface RealtimeServer<T extends TopicMap = TopicMap, P = Principal> {
  /**
   * Publishes a payload to a topic on every instance; resolves with its position. With
   * `options.id` (an idempotency key), a repeat within the history age is published once.
   */
  publishTopic<K extends TopicName<T>>(topic: K, payload: T[K], options?: PublishOptions): Promise<Position>
  /**
   * Publishes one payload to several topics in one call: every topic and the payload are checked
   * first (one bad topic rejects the whole call before anything is published), the payload is
   * serialized once, and the bus is called once (one Redis round trip on `RedisBus`). Each topic
   * keeps its own order and positions; resolves with them in the order of `topics`. The payload
   * must fit every topic given.
   */
  publishTopics<K extends TopicName<T>>(topics: readonly K[], payload: TopicsPayload<T, K>, options?: PublishOptions): Promise<Position[]>
  /**
   * A server-side listener on the bus (every instance's publishes reach it). Returns a function
   * that removes it. The bus subscription is made in the background; `ready` of the returned
   * function resolves once it is in place.
   */
  onTopic<K extends TopicName<T>>(
    topic: K,
    listener: (payload: T[K], position: Position) => void,
  ): TopicListenerHandle
  /** Removes subscriptions server-side; the client gets `unsubscribed` with `reason`. Returns how many. */
  revoke(topic: string, predicate?: (principal: P) => boolean, reason?: string): number
  /** Hands an upgrade request to the server (with `noServer`). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void
  stats(): RealtimeStats
  /**
   * Stops accepting (upgrades are refused with 503 `shutting_down`), moves every client away
   * with 4010, paced over `drainMs`, destroys those that do not finish the close within 2 s, waits
   * for the publishes in flight, then closes the bus. `publishTopic` keeps working during the
   * drain and rejects with `CLOSED` once it is over. See docs/scaling.md#deploys.
   */
  close(options?: CloseOptions): Promise<void>
  readonly bus: Bus
}
