/**
 * The API's tests, run against the real server on each storage (SQLite and PostgreSQL): each
 * route's success path, and every bad input answering a 4xx JSON error while leaving the
 * database unchanged and publishing nothing.
 */
import { createRealtimeClient, type RealtimeClient } from '@app/realtime/client'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { ProfileUpdated, SessionResponse, Topics } from '../../src/shared/topics.js'
import { signInitData } from '../../src/server/telegram/initData.js'
import { BOT_TOKEN, startApp, type RunningApp, type TestStorage } from './app.js'
// The library's test wait: one waitFor for both packages' tests.
import { waitFor } from '../../../../packages/realtime/test/utils/wait.js'


export function describeApi(makeStorage: () => Promise<TestStorage> | TestStorage): void {
  let storage: TestStorage
  let server: RunningApp
  let admin: SessionResponse
  let alice: SessionResponse
  let bob: SessionResponse
  const patches: Array<{ topic: string; payload: ProfileUpdated }> = []
  const stops: Array<() => Promise<void>> = []

  beforeAll(async () => {
    storage = await makeStorage()
    // No `$stats` publisher: its ticks would add publishes between a refused request's before and
    // after (expectRefused counts them).
    server = await startApp(storage.config, { config: { activityIntervalMs: 0 } })
    admin = await server.signIn('1', 'Admin')
    alice = await server.signIn('100', 'Alice')
    bob = await server.signIn('200', 'Bob')
    // A server-side listener sees what every instance publishes, exactly as a tab would.
    for (const topic of ['profile', 'user:100', 'user:200'] as const) {
      const stop = server.app.realtime.onTopic(topic, (payload) => patches.push({ topic, payload }))
      await stop.ready
      stops.push(stop)
    }
  })

  afterAll(async () => {
    for (const stop of stops) await stop()
    await server?.close()
    await storage?.dispose()
  })

  afterEach(() => {
    patches.length = 0
  })

  /** Runs `request` and checks it changed nothing and published nothing. */
  async function expectRefused(
    request: () => Promise<{ status: number; body: any }>,
    status: number,
    code: string,
  ): Promise<{ status: number; body: any }> {
    const before = await server.snapshot()
    const published = server.app.realtime.stats().published
    const response = await request()
    expect(response.status, JSON.stringify(response.body)).toBe(status)
    expect(response.body).toMatchObject({ error: { code, message: expect.any(String) } })
    expect(await server.snapshot()).toEqual(before)
    expect(server.app.realtime.stats().published).toBe(published)
    expect(patches).toEqual([])
    return response
  }

  describe('POST /api/auth/dev', () => {
    it('creates the user, answers a session and publishes to user:<id> and profile', async () => {
      const session = await server.signIn('300', 'Carol')
      expect(session).toMatchObject({ user: { userId: '300', tgUsername: 'Carol', photoUrl: null }, isAdmin: false })
      expect(session.token).toMatch(/^[\w-]+\.[\w-]+$/)
      await waitFor(() => patches.length >= 1, 3000)
      expect(patches).toEqual([{ topic: 'profile', payload: { type: 'profile_updated', ...session.user } }])
    })

    it('refuses a bad user id', async () => {
      await expectRefused(() => server.request('POST', '/api/auth/dev', { body: { userId: 'abc' } }), 400, 'VALIDATION_FAILED')
    })
  })

  describe('POST /api/auth/telegram', () => {
    const initData = (user: object, authDate = Math.floor(Date.now() / 1000)) =>
      signInitData({ query_id: 'q', user, auth_date: authDate }, BOT_TOKEN)

    it('upserts the Telegram user and publishes the new photo to both topics', async () => {
      const photo = 'https://t.me/i/userpic/320/alice-new.jpg'
      const { status, body } = await server.request('POST', '/api/auth/telegram', {
        body: { initData: initData({ id: 100, username: 'alice_tg', photo_url: photo }) },
      })
      expect(status).toBe(200)
      expect(body).toMatchObject({ user: { userId: '100', tgUsername: 'alice_tg', photoUrl: photo }, isAdmin: false })
      expect((await server.request('GET', '/api/users/100', { token: body.token })).body.photoUrl).toBe(photo)
      await waitFor(() => patches.length >= 2, 3000)
      expect(patches.map((p) => p.topic).sort()).toEqual(['profile', 'user:100'])
      expect(patches[0]!.payload).toEqual({ type: 'profile_updated', ...body.user })
    })

    it('refuses forged, foreign and expired init data', async () => {
      const forged = new URLSearchParams(initData({ id: 100, username: 'alice_tg' }))
      forged.set('user', JSON.stringify({ id: 1, username: 'i_am_admin' }))
      await expectRefused(() => server.request('POST', '/api/auth/telegram', { body: { initData: forged.toString() } }), 401, 'INIT_DATA_HASH_MISMATCH')
      const foreign = signInitData({ user: { id: 100 }, auth_date: Math.floor(Date.now() / 1000) }, '999:other-bot')
      await expectRefused(() => server.request('POST', '/api/auth/telegram', { body: { initData: foreign } }), 401, 'INIT_DATA_HASH_MISMATCH')
      const expired = initData({ id: 100 }, Math.floor(Date.now() / 1000) - 2 * 86_400)
      await expectRefused(() => server.request('POST', '/api/auth/telegram', { body: { initData: expired } }), 401, 'INIT_DATA_EXPIRED')
      await expectRefused(() => server.request('POST', '/api/auth/telegram', { body: { initData: 42 } }), 400, 'VALIDATION_FAILED')
      await expectRefused(() => server.request('POST', '/api/auth/telegram', { body: {} }), 400, 'VALIDATION_FAILED')
    })
  })

  describe('GET /api/users/:userId', () => {
    it('answers the user their own profile, and an admin anyone', async () => {
      const own = await server.request('GET', '/api/users/200', { token: bob.token })
      expect(own).toMatchObject({ status: 200, body: { userId: '200', tgUsername: 'Bob' } })
      expect((await server.request('GET', '/api/users/200', { token: admin.token })).status).toBe(200)
    })

    it('refuses other users, missing and forged tokens, bad ids; 404 for no such user', async () => {
      await expectRefused(() => server.request('GET', '/api/users/200', { token: alice.token }), 403, 'FORBIDDEN')
      await expectRefused(() => server.request('GET', '/api/users/200'), 401, 'UNAUTHORIZED')
      await expectRefused(() => server.request('GET', '/api/users/200', { token: `${bob.token}x` }), 401, 'INVALID_TOKEN')
      await expectRefused(() => server.request('GET', '/api/users/x1', { token: admin.token }), 400, 'VALIDATION_FAILED')
      await expectRefused(() => server.request('GET', '/api/users/999', { token: admin.token }), 404, 'NOT_FOUND')
    })

    it('serves from the cache until a write invalidates it', async () => {
      const cache = server.app.userCache
      await server.request('GET', '/api/users/200', { token: bob.token })
      const hits = cache.hits
      await server.request('GET', '/api/users/200', { token: bob.token })
      expect(cache.hits).toBe(hits + 1)
      await server.request('PUT', '/api/users/200', { token: bob.token, body: { tgUsername: 'Bob cached' } })
      expect(cache.has('200')).toBe(false)
      expect((await server.request('GET', '/api/users/200', { token: bob.token })).body.tgUsername).toBe('Bob cached')
    })
  })

  describe('GET /api/users', () => {
    it('pages the users for admins', async () => {
      const first = await server.request('GET', '/api/users?limit=2&offset=0', { token: admin.token })
      expect(first.status).toBe(200)
      expect(first.body.users.map((u: { userId: string }) => u.userId)).toEqual(['1', '100'])
      expect(first.body.total).toBeGreaterThanOrEqual(3)
      const second = await server.request('GET', '/api/users?limit=2&offset=2', { token: admin.token })
      expect(second.body.users[0].userId).toBe('200')
    })

    it('refuses non-admins and bad paging', async () => {
      await expectRefused(() => server.request('GET', '/api/users', { token: alice.token }), 403, 'FORBIDDEN')
      await expectRefused(() => server.request('GET', '/api/users?limit=-1', { token: admin.token }), 400, 'VALIDATION_FAILED')
      await expectRefused(() => server.request('GET', '/api/users?sort=name', { token: admin.token }), 400, 'VALIDATION_FAILED')
    })
  })

  describe('PUT /api/users/:userId', () => {
    it('lets the user edit their profile, stores it and publishes the patch to both topics', async () => {
      const photoUrl = 'https://example.com/alice.png'
      const { status, body } = await server.request('PUT', '/api/users/100', {
        token: alice.token,
        body: { tgUsername: 'Alice Edited', photoUrl },
      })
      expect(status).toBe(200)
      expect(body).toMatchObject({ userId: '100', tgUsername: 'Alice Edited', photoUrl })
      expect(await server.app.users.get('100')).toEqual(body)
      await waitFor(() => patches.length >= 2, 3000)
      expect(patches).toEqual(
        expect.arrayContaining([
          { topic: 'user:100', payload: { type: 'profile_updated', ...body } },
          { topic: 'profile', payload: { type: 'profile_updated', ...body } },
        ]),
      )
    })

    it('lets an admin edit anyone, and clears a photo with null', async () => {
      const { status, body } = await server.request('PUT', '/api/users/100', { token: admin.token, body: { photoUrl: null } })
      expect(status).toBe(200)
      expect(body.photoUrl).toBeNull()
    })

    const bad: Array<[string, Record<string, unknown>, number, string]> = [
      ['malformed JSON', { raw: '{"tgUsername": ' }, 400, 'MALFORMED_JSON'],
      ['an empty body', { raw: '' }, 400, 'MALFORMED_JSON'],
      ['a name of the wrong type', { body: { tgUsername: 42 } }, 400, 'VALIDATION_FAILED'],
      ['a photo of the wrong type', { body: { photoUrl: ['https://a.b/c.png'] } }, 400, 'VALIDATION_FAILED'],
      ['an array body', { body: [{ tgUsername: 'x' }] }, 400, 'VALIDATION_FAILED'],
      ['no field at all', { body: {} }, 400, 'VALIDATION_FAILED'],
      ['an empty name', { body: { tgUsername: '' } }, 400, 'VALIDATION_FAILED'],
      ['a blank name', { body: { tgUsername: '   ' } }, 400, 'VALIDATION_FAILED'],
      ['a name with control characters', { body: { tgUsername: 'a\u0000b' } }, 400, 'VALIDATION_FAILED'],
      ['a too-long name', { body: { tgUsername: 'x'.repeat(65) } }, 400, 'VALIDATION_FAILED'],
      ['a javascript: photo URL', { body: { photoUrl: 'javascript:alert(1)' } }, 400, 'VALIDATION_FAILED'],
      ['an http: photo URL', { body: { photoUrl: 'http://example.com/a.png' } }, 400, 'VALIDATION_FAILED'],
      ['a photo URL without a host', { body: { photoUrl: 'https://' } }, 400, 'VALIDATION_FAILED'],
      ['a too-long photo URL', { body: { photoUrl: `https://example.com/${'a'.repeat(2040)}` } }, 400, 'VALIDATION_FAILED'],
      ['an unknown field', { body: { tgUsername: 'ok', isAdmin: true } }, 400, 'VALIDATION_FAILED'],
      ['a __proto__ field', { raw: '{"tgUsername":"ok","__proto__":{"x":1}}' }, 400, 'MALFORMED_JSON'],
      ['a non-JSON content type', { raw: 'tgUsername=x', contentType: 'application/x-www-form-urlencoded' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ]
    for (const [what, options, status, code] of bad) {
      it(`refuses ${what} with ${status} ${code}`, async () => {
        const response = await expectRefused(
          () => server.request('PUT', '/api/users/100', { token: alice.token, ...options }),
          status,
          code,
        )
        if (code === 'VALIDATION_FAILED' && 'body' in options && !Array.isArray(options.body)) {
          expect(Object.keys(response.body.error.fields ?? {})).not.toHaveLength(0)
        }
      })
    }

    it('names the offending fields', async () => {
      const { body } = await expectRefused(
        () => server.request('PUT', '/api/users/100', { token: alice.token, body: { tgUsername: 'x'.repeat(65), photoUrl: 'http://a.b', role: 'admin' } }),
        400,
        'VALIDATION_FAILED',
      )
      expect(Object.keys(body.error.fields).sort()).toEqual(['photoUrl', 'role', 'tgUsername'])
    })

    it('refuses a missing or forged token, and a user editing someone else', async () => {
      const body = { tgUsername: 'Hacked' }
      await expectRefused(() => server.request('PUT', '/api/users/100', { body }), 401, 'UNAUTHORIZED')
      const [payload, signature] = bob.token.split('.') as [string, string]
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
      const forged = Buffer.from(JSON.stringify({ ...claims, sub: '1' })).toString('base64url')
      await expectRefused(() => server.request('PUT', '/api/users/100', { token: `${forged}.${signature}`, body }), 401, 'INVALID_TOKEN')
      await expectRefused(() => server.request('PUT', '/api/users/100', { token: bob.token, body }), 403, 'FORBIDDEN')
      await expectRefused(() => server.request('PUT', '/api/users/999', { token: admin.token, body }), 404, 'NOT_FOUND')
    })
  })

  describe('PUT /api/users/batch', () => {
    it('applies every item for an admin and publishes each user to both topics', async () => {
      const { status, body } = await server.request('PUT', '/api/users/batch', {
        token: admin.token,
        body: { items: [{ userId: '100', tgUsername: 'Alice B' }, { userId: '200', photoUrl: 'https://example.com/bob.png' }] },
      })
      expect(status).toBe(200)
      expect(body.users).toMatchObject([
        { userId: '100', tgUsername: 'Alice B' },
        { userId: '200', photoUrl: 'https://example.com/bob.png' },
      ])
      expect(await server.app.users.get('200')).toEqual(body.users[1])
      await waitFor(() => patches.length >= 4, 3000)
      expect(patches.map((p) => p.topic).sort()).toEqual(['profile', 'profile', 'user:100', 'user:200'])
    })

    it('changes nothing when one item is bad', async () => {
      const items = [{ userId: '100', tgUsername: 'Fine' }, { userId: '200', photoUrl: 'javascript:alert(1)' }]
      const { body } = await expectRefused(() => server.request('PUT', '/api/users/batch', { token: admin.token, body: { items } }), 400, 'VALIDATION_FAILED')
      expect(body.error.fields).toHaveProperty(['items.1.photoUrl'])
      const late = [{ userId: '100', tgUsername: 'Fine' }, { userId: '200', photoUrl: 'https://a b' }]
      await expectRefused(() => server.request('PUT', '/api/users/batch', { token: admin.token, body: { items: late } }), 400, 'VALIDATION_FAILED')
    })

    it('rolls back every item when one names no user', async () => {
      const items = [{ userId: '100', tgUsername: 'Rolled back' }, { userId: '404', tgUsername: 'Nobody' }]
      const { body } = await expectRefused(() => server.request('PUT', '/api/users/batch', { token: admin.token, body: { items } }), 404, 'NOT_FOUND')
      expect(body.error.fields).toEqual({ 'items.1.userId': 'no such user' })
    })

    it('refuses non-admins, empty, repeated and unknown-field batches', async () => {
      const items = [{ userId: '100', tgUsername: 'x' }]
      await expectRefused(() => server.request('PUT', '/api/users/batch', { token: alice.token, body: { items } }), 403, 'FORBIDDEN')
      await expectRefused(() => server.request('PUT', '/api/users/batch', { body: { items } }), 401, 'UNAUTHORIZED')
      await expectRefused(() => server.request('PUT', '/api/users/batch', { token: admin.token, body: { items: [] } }), 400, 'VALIDATION_FAILED')
      await expectRefused(() => server.request('PUT', '/api/users/batch', { token: admin.token, body: { items: [...items, ...items] } }), 400, 'VALIDATION_FAILED')
      await expectRefused(
        () => server.request('PUT', '/api/users/batch', { token: admin.token, body: { items: [{ userId: '100', tgUsername: 'x', extra: 1 }] } }),
        400,
        'VALIDATION_FAILED',
      )
      await expectRefused(() => server.request('PUT', '/api/users/batch', { token: admin.token, body: { items: [{ userId: '100' }] } }), 400, 'VALIDATION_FAILED')
      await expectRefused(() => server.request('PUT', '/api/users/batch', { token: admin.token, raw: '{"items": [' }), 400, 'MALFORMED_JSON')
    })
  })

  describe('realtime topics', () => {
    const clients: RealtimeClient<Topics>[] = []
    afterEach(() => {
      for (const client of clients.splice(0)) client.close()
    })

    function connect(token: string) {
      const client = createRealtimeClient<Topics>({ url: `${server.url.replace('http', 'ws')}/ws`, auth: token, WebSocket })
      clients.push(client)
      return client
    }

    it('delivers a profile write to the user and to admins as a patch', async () => {
      const own = connect(alice.token)
      const watcher = connect(admin.token)
      const seen: string[] = []
      own.on('patch', (m) => seen.push(`alice ${m.topic} ${(m.payload as ProfileUpdated).tgUsername}`))
      watcher.on('patch', (m) => seen.push(`admin ${m.topic} ${(m.payload as ProfileUpdated).tgUsername}`))
      const subscribed = Promise.all([
        new Promise((r) => own.on('subscribed', r)),
        new Promise((r) => watcher.on('subscribed', r)),
      ])
      own.subscribe('user:100')
      watcher.subscribe('profile')
      await subscribed
      await server.request('PUT', '/api/users/100', { token: alice.token, body: { tgUsername: 'Live Alice' } })
      await waitFor(() => seen.length >= 2, 3000)
      expect(seen.sort()).toEqual(['admin profile Live Alice', 'alice user:100 Live Alice'])
    })

    it('refuses a non-admin on profile and on another user, and everyone on the cache topic', async () => {
      const client = connect(alice.token)
      const errors: string[] = []
      client.on('error', (error) => errors.push(`${error.topic} ${error.code}`))
      client.subscribe('profile')
      client.subscribe('user:200')
      client.subscribe('cache:users')
      await waitFor(() => errors.length >= 3, 3000)
      expect(errors.sort()).toEqual(['cache:users FORBIDDEN', 'profile FORBIDDEN', 'user:200 FORBIDDEN'])
    })
  })

  describe('two instances', () => {
    it('invalidates the read cache of every instance through the bus', async () => {
      // On the suite's bus: every instance on a database runs a relay over its outbox, so every one
      // of them must publish to the bus the others listen to (docs/outbox.md).
      const bus = server.app.realtime.bus
      const a = await startApp(storage.config, { bus })
      const b = await startApp(storage.config, { bus })
      try {
        expect((await a.request('GET', '/api/users/200', { token: bob.token })).status).toBe(200)
        expect(a.app.userCache.has('200')).toBe(true)
        await b.request('PUT', '/api/users/200', { token: bob.token, body: { tgUsername: 'Bob via B' } })
        await waitFor(() => !a.app.userCache.has('200'), 3000)
        expect((await a.request('GET', '/api/users/200', { token: bob.token })).body.tgUsername).toBe('Bob via B')
      } finally {
        await a.close()
        await b.close()
      }
    })
  })
}
