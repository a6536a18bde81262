import type { FastifyInstance } from 'fastify'
import type { User, UserPage } from '../../shared/topics.js'
import { ApiError } from '../errors.js'
import { requireAdmin, requireSession } from '../principal.js'
import { afterProfileWrite } from '../profileWrites.js'
import { UserNotFoundError, type UserChanges } from '../storage/index.js'
import { isHttpsUrl } from '../telegram/initData.js'
import { batchSchema, pageQuerySchema, userChangesSchema, userParamsSchema } from './schemas.js'

interface Params {
  userId: string
}
interface BatchBody {
  items: Array<{ userId: string } & UserChanges>
}

/** The schema admits any `https://…` text; this refuses what is not a URL (`https://a b`, no host). */
function checkPhotoUrl(changes: UserChanges, field: string): void {
  if (typeof changes.photoUrl === 'string' && !isHttpsUrl(changes.photoUrl)) {
    throw new ApiError(400, 'VALIDATION_FAILED', 'invalid body', { [field]: 'must be an https URL' })
  }
}

/** Profiles: read one, list (admins), edit one (the user or an admin), edit many (admins). */
export async function userRoutes(app: FastifyInstance): Promise<void> {
  app.get<{ Params: Params }>(
    '/api/users/:userId',
    { schema: { params: userParamsSchema }, onRequest: requireSession },
    async (request): Promise<User> => {
      const { userId } = request.params
      const principal = request.principal!
      if (principal.userId !== userId && !principal.isAdmin) throw new ApiError(403, 'FORBIDDEN', 'not your profile')
      const user = await app.userCache.get(userId, () => app.users.get(userId))
      if (!user) throw new ApiError(404, 'NOT_FOUND', `no user ${userId}`)
      return user
    },
  )

  app.get<{ Querystring: { limit?: string; offset?: string } }>(
    '/api/users',
    { schema: { querystring: pageQuerySchema }, onRequest: requireAdmin },
    async (request): Promise<UserPage> => {
      const limit = Math.min(Math.max(Number(request.query.limit ?? 50), 1), 200)
      const offset = Number(request.query.offset ?? 0)
      const { users, total } = await app.users.list({ limit, offset })
      return { users, total, limit, offset }
    },
  )

  app.put<{ Body: BatchBody }>(
    '/api/users/batch',
    { schema: { body: batchSchema }, onRequest: requireAdmin },
    async (request): Promise<{ users: User[] }> => {
      const { items } = request.body
      const seen = new Set<string>()
      items.forEach((item, index) => {
        if (seen.has(item.userId)) {
          throw new ApiError(400, 'VALIDATION_FAILED', 'invalid body', { [`items.${index}.userId`]: 'repeats a user' })
        }
        seen.add(item.userId)
        checkPhotoUrl(item, `items.${index}.photoUrl`)
      })
      let users: User[]
      try {
        users = await app.users.updateMany(
          items.map(({ userId, ...changes }) => ({ userId, changes })),
        )
      } catch (error) {
        if (error instanceof UserNotFoundError) {
          const index = items.findIndex((item) => item.userId === error.userId)
          throw new ApiError(404, 'NOT_FOUND', `no user ${error.userId}; nothing was changed`, {
            [`items.${index}.userId`]: 'no such user',
          })
        }
        throw error
      }
      await afterProfileWrite(app, users, { actor: request.principal!.userId, source: 'batch' })
      return { users }
    },
  )

  app.put<{ Params: Params; Body: UserChanges }>(
    '/api/users/:userId',
    { schema: { params: userParamsSchema, body: userChangesSchema }, onRequest: requireSession },
    async (request): Promise<User> => {
      const { userId } = request.params
      const principal = request.principal!
      if (principal.userId !== userId && !principal.isAdmin) {
        throw new ApiError(403, 'FORBIDDEN', 'only the user or an admin may edit a profile')
      }
      checkPhotoUrl(request.body, 'photoUrl')
      const user = await app.users.update(userId, request.body)
      if (!user) throw new ApiError(404, 'NOT_FOUND', `no user ${userId}`)
      await afterProfileWrite(app, [user], { actor: principal.userId, source: 'edit' })
      return user
    },
  )
}
