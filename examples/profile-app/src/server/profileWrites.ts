import type { FastifyInstance } from 'fastify'
import { userTopic, type User } from '../shared/topics.js'
import type { Announce } from './storage/index.js'

/**
 * What every profile write records in the outbox, in its own transaction: the patch to
 * `user:<id>` and `profile` (one row, both topics), and the read-cache invalidation for the other
 * instances (`from` names this instance's cache, which the writer invalidates itself). The relay
 * publishes them once the write has committed — also when this process dies right after the
 * commit (another instance's relay, or this one after a restart, sends them).
 */
export function profileAnnouncements(cacheOrigin: string): Announce {
  return (users) => [
    { topics: ['cache:users'], payload: { userIds: users.map((user) => user.userId), from: cacheOrigin } },
    ...users.map((user) => ({ topics: [userTopic(user.userId), 'profile'] as const, payload: { type: 'profile_updated' as const, ...user } })),
  ]
}

/**
 * What follows every profile write that committed: this instance's read cache is invalidated
 * (the others hear of it through the outbox), the relay is run (so that when the request is
 * answered, its patches are on the bus, as a direct publish would be), and one log line. The
 * relay's failures are its own (logged, retried): the write has happened either way.
 */
export async function afterProfileWrite(
  app: FastifyInstance,
  users: User[],
  context: { actor: string; source: 'telegram' | 'dev_login' | 'edit' | 'batch' },
): Promise<void> {
  const userIds = users.map((user) => user.userId)
  app.userCache.invalidate(userIds)
  await app.outboxRelay.wake()
  app.log.info({ event: 'profile_updated', userIds, ...context }, 'profile updated')
}
