/**
 * Validation of Telegram Mini App init data (https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app).
 *
 * The data-check-string is every received `key=value` pair except `hash`, sorted by key and
 * joined by "\n"; the secret key is HMAC-SHA256 of the bot token keyed by "WebAppData"; the
 * expected hash is the hex HMAC-SHA256 of the data-check-string keyed by that secret.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

/** Why init data was refused. */
export type InitDataErrorCode =
  | 'INIT_DATA_MALFORMED'
  | 'INIT_DATA_HASH_MISMATCH'
  | 'INIT_DATA_EXPIRED'
  | 'INIT_DATA_NO_USER'

export class InitDataError extends Error {
  override readonly name = 'InitDataError'
  constructor(
    readonly code: InitDataErrorCode,
    message: string,
  ) {
    super(message)
  }
}

/** The Telegram user carried by init data, reduced to what the app stores. */
export interface TelegramUser {
  userId: string
  tgUsername: string
  photoUrl: string | null
}

export interface ValidateOptions {
  botToken: string
  /** Oldest accepted `auth_date`, in seconds. Default 86 400 (24 h). */
  maxAgeSeconds?: number
  /** Current time in milliseconds; for tests. */
  now?: number
}

const MAX_INIT_DATA_LENGTH = 8192
/** Clocks differ; a small lead of `auth_date` over ours is not an attack. */
const MAX_CLOCK_SKEW_SECONDS = 60

function secretKey(botToken: string): Buffer {
  return createHmac('sha256', 'WebAppData').update(botToken).digest()
}

function dataCheckString(pairs: Array<[string, string]>): string {
  return pairs
    .filter(([key]) => key !== 'hash')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('\n')
}

/**
 * Checks init data and returns its user. Throws `InitDataError` when the data is malformed, its
 * hash does not match the bot token, it is older than `maxAgeSeconds`, or it carries no user.
 */
export function validateInitData(initData: string, options: ValidateOptions): TelegramUser {
  if (typeof initData !== 'string' || initData.length === 0 || initData.length > MAX_INIT_DATA_LENGTH) {
    throw new InitDataError('INIT_DATA_MALFORMED', 'initData must be a non-empty string of at most 8192 characters')
  }
  const pairs = [...new URLSearchParams(initData).entries()]
  const keys = new Set(pairs.map(([key]) => key))
  // A repeated key would make the data-check-string ambiguous.
  if (keys.size !== pairs.length) throw new InitDataError('INIT_DATA_MALFORMED', 'initData repeats a key')
  const fields = new Map(pairs)

  const hash = fields.get('hash')
  if (!hash || !/^[0-9a-f]{64}$/.test(hash)) {
    throw new InitDataError('INIT_DATA_MALFORMED', 'initData has no valid hash')
  }
  const expected = createHmac('sha256', secretKey(options.botToken)).update(dataCheckString(pairs)).digest()
  if (!timingSafeEqual(expected, Buffer.from(hash, 'hex'))) {
    throw new InitDataError('INIT_DATA_HASH_MISMATCH', 'initData is not signed by this bot')
  }

  const authDate = Number(fields.get('auth_date'))
  if (!Number.isSafeInteger(authDate) || authDate <= 0) {
    throw new InitDataError('INIT_DATA_MALFORMED', 'initData has no valid auth_date')
  }
  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000)
  const maxAge = options.maxAgeSeconds ?? 86_400
  if (nowSeconds - authDate > maxAge) throw new InitDataError('INIT_DATA_EXPIRED', 'initData is too old; reopen the app')
  if (authDate - nowSeconds > MAX_CLOCK_SKEW_SECONDS) {
    throw new InitDataError('INIT_DATA_MALFORMED', 'initData auth_date is in the future')
  }

  return parseUser(fields.get('user'))
}

function parseUser(raw: string | undefined): TelegramUser {
  if (!raw) throw new InitDataError('INIT_DATA_NO_USER', 'initData carries no user')
  let user: unknown
  try {
    user = JSON.parse(raw)
  } catch {
    throw new InitDataError('INIT_DATA_MALFORMED', 'initData user is not JSON')
  }
  if (typeof user !== 'object' || user === null) throw new InitDataError('INIT_DATA_NO_USER', 'initData user is not an object')
  const { id, username, first_name: firstName, last_name: lastName, photo_url: photoUrl } = user as Record<string, unknown>
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) {
    throw new InitDataError('INIT_DATA_NO_USER', 'initData user has no valid id')
  }
  const fullName = [firstName, lastName].filter((part) => typeof part === 'string' && part.trim()).join(' ')
  const name = (typeof username === 'string' && username.trim()) || fullName || `user${id}`
  return {
    userId: String(id),
    tgUsername: [...name.trim()].slice(0, 64).join(''),
    photoUrl: typeof photoUrl === 'string' && isHttpsUrl(photoUrl) ? photoUrl : null,
  }
}

/** An absolute https URL with a host, of at most 2048 characters. */
export function isHttpsUrl(value: string): boolean {
  if (value.length > 2048 || /\s/.test(value)) return false
  try {
    const url = new URL(value)
    return url.protocol === 'https:' && url.hostname.length > 0
  } catch {
    return false
  }
}

/**
 * Builds signed init data as Telegram would: the demo's "open as Telegram" and the tests use it.
 * `fields.user` is JSON-encoded when it is an object.
 */
export function signInitData(fields: Record<string, string | number | object>, botToken: string): string {
  const pairs: Array<[string, string]> = Object.entries(fields).map(([key, value]) => [
    key,
    typeof value === 'object' ? JSON.stringify(value) : String(value),
  ])
  const hash = createHmac('sha256', secretKey(botToken)).update(dataCheckString(pairs)).digest('hex')
  return new URLSearchParams([...pairs, ['hash', hash]]).toString()
}
