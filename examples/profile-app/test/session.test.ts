import { describe, expect, it } from 'vitest'
import { SessionError, SessionSigner } from '../src/server/session.js'

describe('SessionSigner', () => {
  const signer = new SessionSigner('a-secret-of-enough-length', 60_000)

  it('signs a token that verifies to its user until it expires', () => {
    const { token, expiresAt } = signer.sign('42', 1_000)
    expect(expiresAt).toBe(61_000)
    expect(signer.verify(token, 2_000)).toEqual({ userId: '42', expiresAt: 61_000 })
    expect(() => signer.verify(token, 61_000)).toThrow(SessionError)
  })

  it('refuses a token with a changed payload, a changed signature, or another secret', () => {
    const { token } = signer.sign('42')
    const [payload, signature] = token.split('.') as [string, string]
    const forged = Buffer.from(JSON.stringify({ sub: '1', exp: Date.now() + 60_000 })).toString('base64url')
    expect(() => signer.verify(`${forged}.${signature}`)).toThrow(SessionError)
    expect(() => signer.verify(`${payload}.${signature.slice(0, -2)}AA`)).toThrow(SessionError)
    expect(() => new SessionSigner('another-secret-of-length', 60_000).verify(token)).toThrow(SessionError)
    for (const bad of [undefined, 42, '', 'a.b.c', 'nodot']) expect(() => signer.verify(bad)).toThrow(SessionError)
  })
})
