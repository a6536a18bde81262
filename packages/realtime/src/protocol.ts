/**
 * Wire protocol v1: frame types, close codes, error codes and the one frame parser used by both
 * the server and the client. docs/PROTOCOL.md describes the same thing for people.
 */
import type { Position } from './topics.js'

/** The protocol version spoken by this package. */
export const PROTOCOL_VERSION = 1

/** WebSocket close codes used by the protocol. */
export const CloseCode = {
  Normal: 1000,
  /** The server is shutting down; reconnect (to another instance) and recover. */
  GoingAway: 1001,
  /** A frame that breaks WebSocket framing (closed by the WebSocket layer). */
  ProtocolError: 1002,
  /** A text frame that is not valid UTF-8 (closed by the WebSocket layer). */
  InvalidFramePayload: 1007,
  /** The Origin header is not allowed. */
  PolicyViolation: 1008,
  /** A frame larger than the server's limit. */
  MessageTooBig: 1009,
  /** The server is at its connection limit (total or per address); retry later. */
  TryAgainLater: 1013,
  /** The connection kept sending bad frames or exceeded its rate limit repeatedly. */
  ProtocolAbuse: 4000,
  /** Authentication failed or expired; do not reconnect with the same credentials. */
  Unauthorized: 4001,
  /** The client did not send `hello` in time although the server requires it. */
  HandshakeTimeout: 4002,
  /** The client did not read fast enough; reconnect and recover from history. */
  SlowConsumer: 4008,
  /** The peer stopped answering pings. */
  HeartbeatTimeout: 4009,
  /**
   * Reconnect now, to another instance, and recover your positions: the server is draining
   * (`close({ drainMs })`) or shedding load (`rebalance`). Sent paced, a few clients at a time.
   */
  Reconnect: 4010,
} as const
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode]

/** Codes carried by `error` frames. */
export const ErrorCode = {
  BAD_REQUEST: 'BAD_REQUEST',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  INVALID_TOPIC: 'INVALID_TOPIC',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  TOO_MANY_SUBSCRIPTIONS: 'TOO_MANY_SUBSCRIPTIONS',
  RATE_LIMITED: 'RATE_LIMITED',
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  INTERNAL: 'INTERNAL',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** A request id: echoed in the reply. A safe integer or a string of at most 64 characters. */
export type FrameId = number | string

// ---- client -> server -------------------------------------------------------------------------

export interface HelloFrame {
  type: 'hello'
  /** Echoed in an `error` about this hello (the `welcome` reply needs no id). */
  id?: FrameId
  v: number
  auth?: unknown
}
export interface AuthFrame {
  type: 'auth'
  id?: FrameId
  auth: unknown
}
export interface SubscribeFrame {
  type: 'subscribe'
  id?: FrameId
  topic: string
  since?: Position
}
export interface UnsubscribeFrame {
  type: 'unsubscribe'
  id?: FrameId
  topic: string
}
export interface PingFrame {
  type: 'ping'
  id?: FrameId
}
/** Asks for the members of a presence topic the connection is subscribed to. */
export interface MembersFrame {
  type: 'members'
  id?: FrameId
  topic: string
}
export type ClientFrame = HelloFrame | AuthFrame | SubscribeFrame | UnsubscribeFrame | PingFrame | MembersFrame

// ---- server -> client -------------------------------------------------------------------------

export interface WelcomeFrame {
  type: 'welcome'
  v: number
  connectionId: string
  heartbeatMs: number
  /** Milliseconds since the epoch at which the credentials expire, when they do. */
  expiresAt?: number
}
export interface AuthenticatedFrame {
  type: 'authenticated'
  id?: FrameId
  expiresAt?: number
}
export interface SubscribedFrame {
  type: 'subscribed'
  id?: FrameId
  topic: string
  epoch: string
  offset: string
  recovered: boolean
  /**
   * On a state topic, when the subscription was not recovered from `since`: the topic's current
   * state (the payload of its last patch); `epoch` and `offset` are then that patch's position.
   */
  state?: unknown
}
export interface UnsubscribedFrame {
  type: 'unsubscribed'
  id?: FrameId
  topic: string
  reason?: string
}
export interface PatchFrame {
  type: 'patch'
  topic: string
  payload: unknown
  offset: string
  epoch: string
}
export interface PongFrame {
  type: 'pong'
  id?: FrameId
}
export interface ErrorFrame {
  type: 'error'
  id?: FrameId
  topic?: string
  code: ErrorCode
  message: string
}
/**
 * A member of a presence topic: an id and the small info object the server chose for it. `I` types
 * `info` for an app that knows what its server puts there.
 */
export interface PresenceMember<I = Record<string, unknown>> {
  id: string
  info?: I
}
/** The reply to `members`: every member of the topic now (at most the server's `maxMembers`). */
export interface MembersReplyFrame {
  type: 'members'
  id?: FrameId
  topic: string
  members: PresenceMember[]
}
/** Members that joined (with their info) and left (their ids) since the last such frame. */
export interface PresenceFrame {
  type: 'presence'
  topic: string
  join?: PresenceMember[]
  leave?: string[]
}
export type ServerFrame =
  | WelcomeFrame
  | AuthenticatedFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | PatchFrame
  | PongFrame
  | ErrorFrame
  | MembersReplyFrame
  | PresenceFrame

// ---- validation -------------------------------------------------------------------------------

/**
 * Topic names: 1-200 characters of `A-Z a-z 0-9 _ - : . @`, optionally led by one `$`: by
 * convention, `$` topics are an app's own system topics (such as the reference app's `$stats`).
 */
export const TOPIC_PATTERN = /^(?=.{1,200}$)\$?[A-Za-z0-9_\-:.@]+$/
export const MAX_TOPIC_LENGTH = 200

/** True when `topic` is a valid topic name. */
export function isValidTopic(topic: unknown): topic is string {
  return typeof topic === 'string' && TOPIC_PATTERN.test(topic)
}

/** The result of parsing one frame: the frame, or the error to answer with. */
export type ParseResult<F> =
  | { ok: true; frame: F }
  | { ok: false; code: ErrorCode; message: string; id?: FrameId; topic?: string }

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isFrameId(value: unknown): value is FrameId {
  return (
    (typeof value === 'number' && Number.isSafeInteger(value)) ||
    (typeof value === 'string' && value.length <= 64)
  )
}

function isPosition(value: unknown): value is Position {
  return (
    isRecord(value) &&
    typeof value.epoch === 'string' &&
    value.epoch.length <= 100 &&
    typeof value.offset === 'string' &&
    value.offset.length <= 100
  )
}

function fail(
  code: ErrorCode,
  message: string,
  id?: FrameId,
  topic?: string,
): { ok: false; code: ErrorCode; message: string; id?: FrameId; topic?: string } {
  const result: { ok: false; code: ErrorCode; message: string; id?: FrameId; topic?: string } = {
    ok: false,
    code,
    message,
  }
  if (id !== undefined) result.id = id
  if (topic !== undefined) result.topic = topic
  return result
}

/**
 * Parses and validates one client frame (the text of a WebSocket message). Never throws: a bad
 * frame yields the error code and message to send back, with the frame's `id` when it had a valid one.
 */
export function parseClientFrame(text: string): ParseResult<ClientFrame> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return fail(ErrorCode.BAD_REQUEST, 'frame is not valid JSON')
  }
  if (!isRecord(value)) return fail(ErrorCode.BAD_REQUEST, 'frame must be a JSON object')
  const rawId = value.id
  if (rawId !== undefined && !isFrameId(rawId)) {
    return fail(ErrorCode.BAD_REQUEST, '"id" must be a safe integer or a string of at most 64 characters')
  }
  const id = rawId as FrameId | undefined
  const type = value.type
  if (typeof type !== 'string') return fail(ErrorCode.BAD_REQUEST, '"type" must be a string', id)

  switch (type) {
    case 'hello': {
      if (value.v === undefined) return fail(ErrorCode.BAD_REQUEST, '"hello" needs "v"', id)
      if (value.v !== PROTOCOL_VERSION) {
        return fail(ErrorCode.UNSUPPORTED_VERSION, `protocol version ${PROTOCOL_VERSION} only`, id)
      }
      const frame: HelloFrame = { type: 'hello', v: PROTOCOL_VERSION }
      if (id !== undefined) frame.id = id
      if (value.auth !== undefined) frame.auth = value.auth
      return { ok: true, frame }
    }
    case 'auth': {
      const frame: AuthFrame = { type: 'auth', auth: value.auth }
      if (id !== undefined) frame.id = id
      return { ok: true, frame }
    }
    case 'subscribe':
    case 'unsubscribe':
    case 'members': {
      const topic = value.topic
      if (topic === undefined) return fail(ErrorCode.BAD_REQUEST, `"${type}" needs "topic"`, id)
      if (!isValidTopic(topic)) {
        return fail(
          ErrorCode.INVALID_TOPIC,
          'topic must be 1-200 characters of A-Z a-z 0-9 _ - : . @',
          id,
          typeof topic === 'string' && topic.length <= MAX_TOPIC_LENGTH ? topic : undefined,
        )
      }
      if (type !== 'subscribe') {
        const frame: UnsubscribeFrame | MembersFrame = { type, topic }
        if (id !== undefined) frame.id = id
        return { ok: true, frame }
      }
      const since = value.since
      if (since !== undefined && since !== null && !isPosition(since)) {
        return fail(ErrorCode.BAD_REQUEST, '"since" must be {"epoch": string, "offset": string}', id, topic)
      }
      const frame: SubscribeFrame = { type, topic }
      if (id !== undefined) frame.id = id
      if (since) frame.since = { epoch: since.epoch, offset: since.offset }
      return { ok: true, frame }
    }
    case 'ping': {
      const frame: PingFrame = { type: 'ping' }
      if (id !== undefined) frame.id = id
      return { ok: true, frame }
    }
    default:
      return fail(ErrorCode.UNKNOWN_TYPE, `unknown frame type "${type.slice(0, 32)}"`, id)
  }
}

const SERVER_TYPES = new Set([
  'welcome',
  'authenticated',
  'subscribed',
  'unsubscribed',
  'patch',
  'pong',
  'error',
  'members',
  'presence',
])

/**
 * Parses one server frame on the client. Lenient about extra fields (a newer server may add some);
 * strict about the fields the client relies on.
 */
export function parseServerFrame(text: string): ParseResult<ServerFrame> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return fail(ErrorCode.BAD_REQUEST, 'server frame is not valid JSON')
  }
  if (!isRecord(value) || typeof value.type !== 'string') {
    return fail(ErrorCode.BAD_REQUEST, 'server frame must be an object with a "type"')
  }
  if (!SERVER_TYPES.has(value.type)) return fail(ErrorCode.UNKNOWN_TYPE, `unknown server frame "${value.type}"`)
  const needsTopic = value.type !== 'welcome' && value.type !== 'authenticated' && value.type !== 'pong' && value.type !== 'error'
  if (needsTopic && typeof value.topic !== 'string') {
    return fail(ErrorCode.BAD_REQUEST, `"${value.type}" without a topic`)
  }
  return { ok: true, frame: value as unknown as ServerFrame }
}

/** Serializes a frame. The server's hot path (patches) builds its frame text directly instead. */
export function encodeFrame(frame: ClientFrame | ServerFrame): string {
  return JSON.stringify(frame)
}
