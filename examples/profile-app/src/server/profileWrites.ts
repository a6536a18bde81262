import type { FastifyInstance } from 'fastify'
import { userTopic, type User } from '../shared/topics.js'

/**
 * What follows every profile write that reached the database, in this order: the read cache is
 * invalidated here and (through the bus) on every other instance, then each patch is published
 * to `user:<id>` and `profile` in one call (one serialization, one bus round trip), then one log
 * line. The write itself has happened, so a failing bus is logged, not thrown: clients catch up
 * with `resync` when it is back.
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
    // This instance's cache is already fresh: the message is for the others (`from` tells them apart).
    await app.publishTopic('cache:users', { userIds, from: app.userCache.origin })
    // In flight together: each topic keeps the order of the calls.
    await Promise.all(
      users.map(async (user) => {
        await app.publishTopics([userTopic(user.userId), 'profile'], { type: 'profile_updated', ...user })
        published += 2
      }),
    )
    app.log.info({ event: 'profile_updated', userIds, ...context, published }, 'profile updated')
  } catch (error) {
    app.log.error({ event: 'profile_updated', userIds, ...context, published, err: error }, 'profile updated; publish failed')
  }
}
