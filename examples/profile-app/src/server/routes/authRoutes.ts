import type { FastifyInstance, FastifyReply } from 'fastify'
import type { PublicConfig, SessionResponse, User } from '../../shared/topics.js'
import { ApiError } from '../errors.js'
import { requireSession } from '../principal.js'
import { afterProfileWrite } from '../profileWrites.js'
import { InitDataError, validateInitData } from '../telegram/initData.js'
import { devLoginSchema, telegramLoginSchema } from './schemas.js'

function sessionFor(app: FastifyInstance, user: User): SessionResponse {
  const { token, expiresAt } = app.sessions.sign(user.userId)
  return { token, expiresAt, user, isAdmin: app.appConfig.adminUserIds.has(user.userId) }
}

/** Sign-in: Telegram init data always; the dev login only when the config enables it. */
export async function authRoutes(app: FastifyInstance): Promise<void> {
  app.get('/api/config', async (): Promise<PublicConfig> => ({
    devLogin: app.appConfig.devLogin,
    telegramLogin: app.appConfig.botToken !== undefined,
  }))

  app.post<{ Body: { initData: string } }>(
    '/api/auth/telegram',
    { schema: { body: telegramLoginSchema } },
    async (request): Promise<SessionResponse> => {
      const { botToken, initDataMaxAgeSeconds } = app.appConfig
      if (!botToken) throw new ApiError(503, 'TELEGRAM_LOGIN_DISABLED', 'the server has no BOT_TOKEN')
      let telegramUser
      try {
        telegramUser = validateInitData(request.body.initData, { botToken, maxAgeSeconds: initDataMaxAgeSeconds })
      } catch (error) {
        if (error instanceof InitDataError) throw new ApiError(401, error.code, error.message)
        throw error
      }
      // Every Telegram sign-in refreshes name and photo: that is how a new avatar reaches open tabs.
      const user = await app.users.upsert(telegramUser)
      await afterProfileWrite(app, [user], { actor: user.userId, source: 'telegram' })
      return sessionFor(app, user)
    },
  )

  if (app.appConfig.devLogin) {
    app.post<{ Body: { userId: string; tgUsername?: string } }>(
      '/api/auth/dev',
      { schema: { body: devLoginSchema } },
      async (request): Promise<SessionResponse> => {
        const { userId, tgUsername } = request.body
        const existing = await app.users.get(userId)
        let user = existing
        if (!existing || (tgUsername !== undefined && tgUsername !== existing.tgUsername)) {
          user = await app.users.upsert({
            userId,
            tgUsername: tgUsername ?? `User ${userId}`,
            photoUrl: existing?.photoUrl ?? null,
          })
          await afterProfileWrite(app, [user], { actor: userId, source: 'dev_login' })
        }
        return sessionFor(app, user!)
      },
    )
  }

  app.get('/api/me', { onRequest: requireSession }, async (request, reply: FastifyReply) => {
    const principal = request.principal!
    const user = await app.users.get(principal.userId)
    if (!user) return reply.status(404).send({ error: { code: 'NOT_FOUND', message: 'no such user' } })
    return { user, isAdmin: principal.isAdmin }
  })
}
