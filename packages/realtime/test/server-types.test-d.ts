import { describe, expectTypeOf, it } from 'vitest'
import { createRealtimeServer, type RealtimeServer } from '../src/server/index.js'
import type { Position } from '../src/index.js'

type Profile = { userId: string; name: string }
type Audit = { userId: string; name: string; by: string }
type Topics = {
  profile: Profile
  audit: Audit
  $stats: { connections: number }
  [k: `user:${string}`]: Profile
}

declare const server: RealtimeServer<Topics>
declare const profile: Profile

describe('publishTopics', () => {
  it('takes topics of the map and a payload that fits every one of them', () => {
    expectTypeOf(server.publishTopics([`user:${'7'}`, 'profile'], profile)).toEqualTypeOf<Promise<Position[]>>()
    // The payload must fit both topics: `audit` needs `by` as well.
    void server.publishTopics(['profile', 'audit'], { ...profile, by: 'admin' })
    // @ts-expect-error a payload missing a field of one of the topics
    void server.publishTopics(['profile', 'audit'], profile)
    // @ts-expect-error an unknown topic among them
    void server.publishTopics(['profile', 'nope'], profile)
    // @ts-expect-error topics whose payload types cannot both hold
    void server.publishTopics(['profile', '$stats'], profile)
  })
})

describe('the principal type', () => {
  it('reaches authorize and revoke from the type argument', () => {
    type Session = { userId: string; admin: boolean }
    const realtime = createRealtimeServer<Topics, Session>({
      noServer: true,
      authenticate: () => ({ userId: '1', admin: false }),
      authorize: (session, topic) => {
        expectTypeOf(session).toEqualTypeOf<Session>()
        return session.admin || topic === `user:${session.userId}`
      },
    })
    realtime.revoke('profile', (session) => {
      expectTypeOf(session).toEqualTypeOf<Session>()
      return !session.admin
    })
  })
})
