import { ErrorCode } from './protocol.js'

/**
 * Every error code a `RealtimeError` can carry. Protocol error codes (sent in `error` frames) are a
 * subset; `BUS_UNAVAILABLE`, `CLOSED`, `TIMEOUT` and `INVALID_PAYLOAD` are local to a process.
 */
export const RealtimeErrorCode = {
  ...ErrorCode,
  /** The bus (e.g. Redis) cannot be reached; the publish did not happen. */
  BUS_UNAVAILABLE: 'BUS_UNAVAILABLE',
  /** The payload failed the topic's schema, or cannot be serialized as JSON. */
  INVALID_PAYLOAD: 'INVALID_PAYLOAD',
  /** The server, bus or client was closed. */
  CLOSED: 'CLOSED',
  /** An operation did not complete in its bounded time. */
  TIMEOUT: 'TIMEOUT',
} as const

export type RealtimeErrorCode = (typeof RealtimeErrorCode)[keyof typeof RealtimeErrorCode]

/** The one error class of @app/realtime: a typed `code`, a message, and the underlying `cause`. */
export class RealtimeError extends Error {
  override readonly name = 'RealtimeError'
  readonly code: RealtimeErrorCode

  constructor(code: RealtimeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/**
 * True for a `RealtimeError`, also one from another copy of the package (matched on `name`
 * and `code`, since `instanceof` fails across bundles).
 */
export function isRealtimeError(value: unknown): value is RealtimeError {
  if (value instanceof RealtimeError) return true
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { name?: unknown }).name === 'RealtimeError' &&
    typeof (value as { code?: unknown }).code === 'string'
  )
}
