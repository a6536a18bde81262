import { describe, expectTypeOf, it } from 'vitest'
import type { RealtimeClient } from '../src/client/index.js'
import type { TopicPatch } from '../src/react/index.js'
import { useTopic, useTopicState } from '../src/react/index.js'
import type { RealtimeServer } from '../src/server/index.js'
import type { PatchMessage, Position } from '../src/index.js'

type ProfileUpdated = { type: 'profile_updated'; userId: string; tgUsername: string; photoUrl: string; updatedAt: string }
type Stats = { connections: number }
type Topics = {
  profile: ProfileUpdated
  $stats: Stats
  [k: `user:${string}`]: ProfileUpdated
}

declare const server: RealtimeServer<Topics>
declare const client: RealtimeClient<Topics>
declare const profile: ProfileUpdated

describe('typed topics', () => {
  it('checks publishTopic against the topic map', () => {
    expectTypeOf(server.publishTopic('profile', profile)).toEqualTypeOf<Promise<Position>>()
    expectTypeOf(server.publishTopic(`user:${'42'}`, profile)).toEqualTypeOf<Promise<Position>>()
    // @ts-expect-error an unknown topic
    void server.publishTopic('nope', profile)
    // @ts-expect-error a wrong payload for a pattern topic
    void server.publishTopic('user:1', { type: 'profile_updated' })
    // @ts-expect-error a payload of another topic
    void server.publishTopic('$stats', profile)
  })

  it('checks subscribe and the patch listener', () => {
    client.subscribe('user:7')
    client.subscribe('profile')
    // @ts-expect-error an unknown topic
    client.subscribe('users')
    client.on('patch', (msg) => {
      expectTypeOf(msg.type).toEqualTypeOf<'patch'>()
      if (msg.topic === 'profile') expectTypeOf(msg.payload).toEqualTypeOf<ProfileUpdated>()
      if (msg.topic === '$stats') expectTypeOf(msg.payload).toEqualTypeOf<Stats>()
    })
    client.on('resync', (topic) => expectTypeOf(topic).toEqualTypeOf<'profile' | '$stats' | `user:${string}`>())
    // @ts-expect-error no such event
    client.on('patches', () => {})
    expectTypeOf<PatchMessage<Topics>['topic']>().toEqualTypeOf<'profile' | '$stats' | `user:${string}`>()
  })

  it('checks onTopic', () => {
    server.onTopic('profile', (payload) => expectTypeOf(payload).toEqualTypeOf<ProfileUpdated>())
    // @ts-expect-error an unknown topic
    server.onTopic('unknown', () => {})
  })

  it('checks the hooks', () => {
    useTopic<Topics, 'user:1'>('user:1', (msg) => expectTypeOf(msg.payload).toEqualTypeOf<ProfileUpdated>())
    expectTypeOf<TopicPatch<Topics, 'profile'>['payload']>().toEqualTypeOf<ProfileUpdated>()
    const [state] = useTopicState<Topics, 'profile'>('profile', profile)
    expectTypeOf(state).toEqualTypeOf<ProfileUpdated>()
    // @ts-expect-error the initial state must match the topic's payload
    useTopicState<Topics, 'profile'>('profile', { nope: true })
    // @ts-expect-error an unknown topic
    useTopic<Topics, 'nope'>('nope', () => {})
  })
})
