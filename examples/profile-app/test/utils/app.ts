import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Bus } from '@app/realtime/server'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/server/app.js'
import type { AppConfig } from '../../src/server/config.js'
import type { StorageConfig } from '../../src/server/storage/index.js'
import type { SessionResponse, User } from '../../src/shared/topics.js'
import { dropSchema, requirePostgres, uniqueSchema } from './services.js'

export const BOT_TOKEN = '123456:TEST-bot-token-for-profile-app'
export const SESSION_SECRET = 'test-session-secret-0123456789abcdef'
export const ADMIN_ID = '1'

/** A storage for one test file, and how to dispose of it. */
export interface TestStorage {
  name: 'sqlite' | 'postgres'
  config: StorageConfig
  dispose(): Promise<void>
}

export function sqliteStorage(): TestStorage {
  const dir = mkdtempSync(join(tmpdir(), 'profile-app-'))
  return {
    name: 'sqlite',
    config: { sqlitePath: join(dir, 'profile.db') },
    dispose: async () => rmSync(dir, { recursive: true, force: true }),
  }
}

/** A unique schema in the test database, dropped by `dispose`. */
export async function postgresStorage(): Promise<TestStorage> {
  const databaseUrl = await requirePostgres()
  const pgSchema = uniqueSchema()
  return { name: 'postgres', config: { databaseUrl, pgSchema }, dispose: () => dropSchema(pgSchema) }
}

export function testConfig(storage: StorageConfig, overrides: Partial<AppConfig> = {}): AppConfig {
  return {
    port: 0,
    host: '127.0.0.1',
    storage,
    botToken: BOT_TOKEN,
    initDataMaxAgeSeconds: 86_400,
    adminUserIds: new Set([ADMIN_ID]),
    sessionSecret: SESSION_SECRET,
    sessionTtlMs: 3_600_000,
    devLogin: true,
    cacheTtlMs: 60_000,
    outboxStaleMs: 30_000,
    webRoot: join(tmpdir(), 'profile-app-no-web'),
    logger: false,
    logRequests: false,
    ...overrides,
  }
}

/** A running app on a free port, with a tiny HTTP client. */
export interface RunningApp {
  app: FastifyInstance
  url: string
  request(method: string, path: string, options?: { token?: string; body?: unknown; raw?: string; contentType?: string }): Promise<{ status: number; body: any }>
  signIn(userId: string, tgUsername?: string): Promise<SessionResponse>
  /** Every row, for "the database did not change" checks. */
  snapshot(): Promise<User[]>
  close(): Promise<void>
}

export async function startApp(storage: StorageConfig, options: { bus?: Bus; config?: Partial<AppConfig> } = {}): Promise<RunningApp> {
  const app = await buildApp(testConfig(storage, options.config), options.bus ? { bus: options.bus } : {})
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (!address || typeof address !== 'object') throw new Error('no address')
  const url = `http://127.0.0.1:${address.port}`
  const request: RunningApp['request'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = {}
    if (opts.token) headers.authorization = `Bearer ${opts.token}`
    let body: string | undefined
    if (opts.raw !== undefined) body = opts.raw
    else if (opts.body !== undefined) body = JSON.stringify(opts.body)
    if (body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json'
    const response = await fetch(url + path, { method, headers, body })
    const text = await response.text()
    let parsed: unknown = text
    try {
      parsed = JSON.parse(text)
    } catch {
      // Left as text: the assertion on it will say what came back.
    }
    return { status: response.status, body: parsed }
  }
  return {
    app,
    url,
    request,
    async signIn(userId, tgUsername) {
      const { status, body } = await request('POST', '/api/auth/dev', { body: tgUsername ? { userId, tgUsername } : { userId } })
      if (status !== 200) throw new Error(`sign-in failed: ${status} ${JSON.stringify(body)}`)
      return body as SessionResponse
    },
    async snapshot() {
      return (await app.users.list({ limit: 10_000, offset: 0 })).users
    },
    close: () => app.close(),
  }
}
