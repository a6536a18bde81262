/**
 * Compile-time checks (run by `npm run typecheck`): the plugin's decorators are typed by the
 * app's topic map, so a wrong payload or an unknown topic does not compile.
 */
import type { FastifyInstance } from 'fastify'
import '../src/server/principal.js'

export function typedPublish(app: FastifyInstance): void {
  const user = { userId: '1', tgUsername: 'a', photoUrl: null, updatedAt: '' }
  void app.publishTopic('profile', { type: 'profile_updated', ...user })
  void app.publishTopic('user:1', { type: 'profile_updated', ...user })
  void app.publishTopic('cache:users', { userIds: ['1'] })
  // @ts-expect-error unknown topic
  void app.publishTopic('nope', { type: 'profile_updated', ...user })
  // @ts-expect-error wrong payload for the topic
  void app.publishTopic('profile', { userIds: ['1'] })
  app.realtime.onTopic('cache:users', (payload) => {
    // @ts-expect-error the cache topic carries ids, not a profile
    void payload.tgUsername
  })
}
