import type { FastifyInstance } from 'fastify'
import { userTopic, type User } from '../shared/topics.js'

/**
 * What follows every profile write that reached the database, in this order: the read cache is
 * invalidated here and (through the bus) on every other instance, then the patch is published
 * to `user:<id>` and `profile`, then one log line. The write itself has happened, so a failing
 * bus is logged, not thrown: clients catch up with `resync` when it is back.
 */
export async function announceProfileWrite(
  app: FastifyInstance,
  users: User[],
  context: { actor: string; source: 'telegram' | 'dev_login' | 'edit' | 'batch' },
): Promise<void> {
  const userIds = users.map((user) => user.userId)
  app.userCache.invalidate(userIds)
  let published = 0
  try {
    await app.publishTopic('cache:users', { userIds })
    for (const user of users) {
      const patch = { type: 'profile_updated' as const, ...user }
      await app.publishTopic(userTopic(user.userId), patch)
      await app.publishTopic('profile', patch)
      published += 2
    }
    app.log.info({ event: 'profile_updated', userIds, ...context, published }, 'profile updated')
  } catch (error) {
    app.log.error({ event: 'profile_updated', userIds, ...context, published, err: error }, 'profile updated; publish failed')
  }
}
