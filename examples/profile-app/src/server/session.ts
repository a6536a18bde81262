/**
 * Session tokens: `<payload>.<signature>`, both base64url; the payload is `{sub, exp}` JSON and
 * the signature its HMAC-SHA256 under the session secret. Stateless, so any instance sharing the
 * secret accepts a token another issued.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

export interface Session {
  userId: string
  /** Milliseconds since the epoch. */
  expiresAt: number
}

export class SessionError extends Error {
  override readonly name = 'SessionError'
}

export class SessionSigner {
  readonly #secret: Buffer
  readonly #ttlMs: number

  constructor(secret: string | Buffer, ttlMs: number) {
    this.#secret = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret
    if (this.#secret.length < 16) throw new Error('the session secret must be at least 16 bytes')
    this.#ttlMs = ttlMs
  }

  /** A token for `userId` that expires `ttlMs` from `now`. */
  sign(userId: string, now = Date.now()): { token: string; expiresAt: number } {
    const expiresAt = now + this.#ttlMs
    const payload = Buffer.from(JSON.stringify({ sub: userId, exp: expiresAt })).toString('base64url')
    return { token: `${payload}.${this.#mac(payload).toString('base64url')}`, expiresAt }
  }

  /** The session of a valid, unexpired token; throws `SessionError` otherwise. */
  verify(token: unknown, now = Date.now()): Session {
    if (typeof token !== 'string' || token.length > 1024) throw new SessionError('malformed token')
    const [payload, signature, extra] = token.split('.')
    if (!payload || !signature || extra !== undefined) throw new SessionError('malformed token')
    const given = Buffer.from(signature, 'base64url')
    const expected = this.#mac(payload)
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new SessionError('bad signature')
    let claims: unknown
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    } catch {
      throw new SessionError('malformed token')
    }
    const { sub, exp } = (claims ?? {}) as { sub?: unknown; exp?: unknown }
    if (typeof sub !== 'string' || typeof exp !== 'number') throw new SessionError('malformed token')
    if (exp <= now) throw new SessionError('token expired')
    return { userId: sub, expiresAt: exp }
  }

  #mac(payload: string): Buffer {
    return createHmac('sha256', this.#secret).update(payload).digest()
  }
}
