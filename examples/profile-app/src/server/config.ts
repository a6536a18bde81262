import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Limits } from '@app/realtime/server'
import type { FastifyServerOptions } from 'fastify'
import { demoSessionSecret, SecretFileError } from './demoSecret.js'
import type { StorageConfig } from './storage/index.js'

const appRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Everything `buildApp` needs; `loadConfig` reads it from the environment. */
export interface AppConfig {
  port: number
  host: string
  storage: StorageConfig
  /** Redis for the realtime bus; unset means the in-memory bus (one instance). */
  redisUrl?: string
  /** Key prefix in Redis, so that several apps (or test runs) can share one server. */
  redisPrefix?: string
  /** The bot token that signs Telegram init data; without it Telegram sign-in answers 503. */
  botToken?: string
  /** Oldest accepted init data, in seconds. */
  initDataMaxAgeSeconds: number
  adminUserIds: ReadonlySet<string>
  sessionSecret: string | Buffer
  sessionTtlMs: number
  /** The dev login (any user id, no Telegram). Only the demo sets it. */
  devLogin: boolean
  cacheTtlMs: number
  /** `/healthz` answers 503 once the oldest unpublished outbox row is older than this. Default 30 000. */
  outboxStaleMs: number
  /** The built web app; not served when the folder does not exist. */
  webRoot: string
  logger: FastifyServerOptions['logger']
  /** One log line per HTTP request (off in the demo, where the write log lines tell the story). */
  logRequests: boolean
  /** When set, `/metrics` wants `Authorization: Bearer <metricsToken>`. */
  metricsToken?: string
  /** This instance's id in `$stats`. Default: host name, process id and a random suffix. */
  instanceId?: string
  /** How often this instance publishes its `$stats` sample; 0 turns it off. Default 1000. */
  activityIntervalMs?: number
  /** Limits of the realtime server (defaults of @app/realtime where unset). */
  realtimeLimits?: Limits
  /**
   * On shutdown (SIGTERM), the window over which the open WebSockets are moved to the other
   * instances (`close({ drainMs })`); `/healthz` answers 503 from its start. Default 5000.
   */
  drainMs?: number
}

/** A default instance id: unique per process, readable in the activity page. */
export function defaultInstanceId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(2).toString('hex')}`
}

/** Error for an environment the app cannot start with. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

function parseIds(value: string | undefined): Set<string> {
  const ids = (value ?? '')
    .split(',')
    .map((id) => id.trim())
    .filter(Boolean)
  for (const id of ids) if (!/^\d{1,20}$/.test(id)) throw new ConfigError(`ADMIN_USER_IDS: "${id}" is not a user id`)
  return new Set(ids)
}

function parseInteger(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined || value === '') return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be an integer in ${min}..${max}`)
  return n
}

/**
 * Reads the configuration from environment variables. `demo` (the `npm start` of the README)
 * turns on the dev login and makes user 1 an admin unless ADMIN_USER_IDS says otherwise.
 */
export function loadConfig(env: NodeJS.ProcessEnv, options: { demo?: boolean } = {}): AppConfig {
  const demo = options.demo === true
  const devLogin = env.DEV_LOGIN === '1' || (demo && env.DEV_LOGIN === undefined)
  const sessionSecret = env.SESSION_SECRET || undefined
  if (sessionSecret !== undefined && sessionSecret.length < 16) {
    throw new ConfigError('SESSION_SECRET must be at least 16 characters')
  }
  if (env.NODE_ENV === 'production' && devLogin) throw new ConfigError('DEV_LOGIN=1 is refused when NODE_ENV=production')
  // The app's data folder: the SQLite file and, in the demo, the session secret.
  const dataDir = env.DATA_DIR || join(appRoot, '.data')
  return {
    port: parseInteger('PORT', env.PORT, 3000, 0, 65535),
    host: env.HOST || 'localhost',
    storage: env.DATABASE_URL
      ? { databaseUrl: env.DATABASE_URL, pgSchema: env.PG_SCHEMA || 'public' }
      : { sqlitePath: env.SQLITE_PATH || join(dataDir, 'profile.db') },
    redisUrl: env.REDIS_URL || undefined,
    redisPrefix: env.REDIS_PREFIX || 'profile-app:',
    botToken: env.BOT_TOKEN || undefined,
    initDataMaxAgeSeconds: parseInteger('INIT_DATA_MAX_AGE', env.INIT_DATA_MAX_AGE, 86_400, 1, 30 * 86_400),
    adminUserIds: parseIds(env.ADMIN_USER_IDS ?? (demo ? '1' : '')),
    // The demo keeps its secret in the data folder, so that a restart keeps every tab signed in.
    // Otherwise random per process: tokens die with the process and do not work on another instance.
    sessionSecret: sessionSecret ?? (demo ? demoSecret(dataDir) : randomBytes(32)),
    sessionTtlMs: parseInteger('SESSION_TTL_SECONDS', env.SESSION_TTL_SECONDS, 12 * 3600, 60, 30 * 86_400) * 1000,
    devLogin,
    cacheTtlMs: 30_000,
    outboxStaleMs: parseInteger('OUTBOX_STALE_MS', env.OUTBOX_STALE_MS, 30_000, 100, 3_600_000),
    webRoot: env.WEB_ROOT || join(appRoot, 'dist', 'web'),
    logger: { level: env.LOG_LEVEL || 'info' },
    logRequests: env.LOG_REQUESTS ? env.LOG_REQUESTS === '1' : !demo,
    metricsToken: env.METRICS_TOKEN || undefined,
    instanceId: env.INSTANCE_ID || undefined,
    activityIntervalMs: parseInteger('ACTIVITY_INTERVAL_MS', env.ACTIVITY_INTERVAL_MS, 1000, 0, 3_600_000),
    drainMs: parseInteger('DRAIN_MS', env.DRAIN_MS, 5000, 0, 600_000),
  }
}

function demoSecret(dataDir: string): Buffer {
  try {
    return demoSessionSecret(dataDir)
  } catch (error) {
    if (error instanceof SecretFileError) throw new ConfigError(error.message)
    throw new ConfigError(`cannot keep the session secret in ${dataDir}: ${(error as Error).message} (set DATA_DIR or SESSION_SECRET)`)
  }
}
