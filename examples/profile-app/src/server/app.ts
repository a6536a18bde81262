import { existsSync } from 'node:fs'
import { join } from 'node:path'
import fastifyStatic from '@fastify/static'
import realtime from '@app/realtime/fastify'
import { createOutboxRelay, type OutboxRelay } from '@app/realtime/outbox'
import type { Bus } from '@app/realtime/server'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import { UserCache } from './cache.js'
import { defaultInstanceId, type AppConfig } from './config.js'
import { ApiError, registerErrorHandling } from './errors.js'
import { RefusalLog, registerMetricsRoutes, startActivityPublisher } from './observability.js'
import { profileAnnouncements } from './profileWrites.js'
import { bearerToken, isStateTopic, mayRead, onlinePresence, type Principal } from './principal.js'
import { authRoutes } from './routes/authRoutes.js'
import { userRoutes } from './routes/userRoutes.js'
import { SessionError, SessionSigner } from './session.js'
import { openRepository, type UserRepository } from './storage/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    appConfig: AppConfig
    users: UserRepository
    userCache: UserCache
    /** Publishes what the writes recorded in the outbox, once committed. */
    outboxRelay: OutboxRelay
    sessions: SessionSigner
    /** The principal of a session token; throws a 401 `ApiError` when it is not valid. */
    principalOf(token: string): Principal
  }
}

/**
 * Never in a log line, whatever a future log call passes: credentials, Telegram init data and
 * session tokens (the realtime `hello` carries one as `auth`).
 */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'initData',
  '*.initData',
  'token',
  '*.token',
  'auth',
  '*.auth',
  'sessionSecret',
  'botToken',
]

/** Fastify's logger option with the redaction added (the config says level and destination). */
function loggerOptions(logger: AppConfig['logger']): AppConfig['logger'] {
  if (!logger) return logger
  const options = logger === true ? {} : logger
  return { ...options, redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' } }
}

/** Extra wiring, for tests that bring their own bus (two apps on one RedisBus, say). */
export interface BuildOptions {
  bus?: Bus
}

async function createBus(config: AppConfig): Promise<Bus | undefined> {
  if (!config.redisUrl) return undefined
  // Loaded only when asked for, so that a single instance needs neither Redis nor ioredis.
  const { RedisBus } = await import('@app/realtime/redis')
  return new RedisBus({ url: config.redisUrl, prefix: config.redisPrefix })
}

/**
 * The whole server, not yet listening: `await app.listen(...)` starts it, `app.close()` stops
 * the realtime server, the bus and the database.
 */
export async function buildApp(config: AppConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config.logger),
    // Through a LogController: the top-level disableRequestLogging is deprecated (FSTDEP023).
    logController: new LogController({ disableRequestLogging: !config.logRequests }),
    bodyLimit: 256 * 1024,
    // Unknown fields must be refused (not silently dropped) and types not coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } },
  })
  registerErrorHandling(app)

  const userCache = new UserCache({ ttlMs: config.cacheTtlMs })
  const users = await openRepository(config.storage, profileAnnouncements(userCache.origin))
  app.decorate('appConfig', config)
  app.decorate('users', users)
  app.decorate('userCache', userCache)
  const sessions = new SessionSigner(config.sessionSecret, config.sessionTtlMs)
  app.decorate('sessions', sessions)
  app.decorate('principalOf', (token: string): Principal => {
    try {
      const { userId } = sessions.verify(token)
      return { userId, isAdmin: config.adminUserIds.has(userId) }
    } catch (error) {
      if (error instanceof SessionError) throw new ApiError(401, 'INVALID_TOKEN', `session token refused: ${error.message}`)
      throw error
    }
  })
  app.decorateRequest('principal', null)
  app.addHook('onClose', async () => {
    await users.close()
  })

  const bus = options.bus ?? (await createBus(config))
  const refusals = new RefusalLog()
  // Before the realtime server's own preClose (hooks run in order): the relay stops publishing
  // first; rows it has not sent stay in the outbox for the next relay.
  let relay: OutboxRelay | undefined
  app.addHook('preClose', async () => {
    await relay?.close()
  })
  await app.register(realtime, {
    path: '/ws',
    ...(bus ? { bus } : {}),
    ...(config.realtimeLimits ? { limits: config.realtimeLimits } : {}),
    // SIGTERM (app.close()) moves the open WebSockets to the other instances over this window.
    ...(config.drainMs !== undefined ? { drainMs: config.drainMs } : {}),
    // A bus handed in by the caller may serve other apps too: the caller closes it.
    closeBus: options.bus === undefined,
    // The browser sends its session token in `hello`; other clients may use the header.
    authenticate: async (request, auth) => {
      let session: ReturnType<SessionSigner['verify']>
      try {
        session = sessions.verify(auth ?? bearerToken(request.headers))
      } catch (error) {
        refusals.record({ reason: 'unauthorized' })
        throw error
      }
      const { userId, expiresAt } = session
      // The name shown in the dashboard's online list (the read cache spares most lookups).
      const user = await userCache.get(userId, () => users.get(userId))
      const principal: Principal = { userId, isAdmin: config.adminUserIds.has(userId) }
      if (user) principal.name = user.tgUsername
      return { principal, expiresAt }
    },
    // The profile page opens from its `user:<id>` topic's state; `$online` lists who has one open.
    stateTopics: isStateTopic,
    presence: onlinePresence,
    authorize: (principal, topic) => {
      const allowed = mayRead(principal, topic)
      if (!allowed) refusals.record({ reason: 'forbidden', topic, userId: principal.userId })
      return allowed
    },
  })
  // Every other instance drops its cached copies when one instance writes (the writer already did).
  const stopInvalidation = app.realtime.onTopic('cache:users', ({ userIds, from }) => {
    if (from !== app.userCache.origin) app.userCache.invalidate(userIds)
  })
  await stopInvalidation.ready
  // Rows a previous process committed but did not publish (it died) go out now.
  relay = await createOutboxRelay({ outbox: users.outbox, realtime: app.realtime, logger: app.log })
  app.decorate('outboxRelay', relay)

  await app.register(authRoutes)
  await app.register(userRoutes)
  registerMetricsRoutes(app, config.metricsToken)
  startActivityPublisher(app, {
    instanceId: config.instanceId ?? defaultInstanceId(),
    intervalMs: config.activityIntervalMs ?? 1000,
    refusals,
  })

  const hasWeb = existsSync(join(config.webRoot, 'index.html'))
  if (hasWeb) await app.register(fastifyStatic, { root: config.webRoot, wildcard: false })
  else app.log.warn({ webRoot: config.webRoot }, 'web app not built: run `npm run build -w profile-app`')

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? ''
    // The web app routes on the client: any page that is not a file or an API gets index.html.
    if (hasWeb && request.method === 'GET' && !path.startsWith('/api/') && !path.includes('.')) {
      return reply.sendFile('index.html')
    }
    return reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${path}` } })
  })
  return app
}
