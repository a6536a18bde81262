import { describe, expectTypeOf, it } from 'vitest'
import { createRealtimeClient, type RealtimeClient, type Subscription } from '../src/client/index.js'
import { createRealtimeHooks, usePresence, type PresenceMember, type TopicStatus } from '../src/react/index.js'
import type { RealtimeError } from '../src/errors.js'
import type { RealtimeServer } from '../src/server/index.js'
import type { Position } from '../src/index.js'

type Profile = { userId: string; tgUsername: string; photoUrl: string }
type Stats = { connections: number }
type Topics = {
  profile: Profile
  $stats: Stats
  [k: `user:${string}`]: Profile
}
// The natural way to write a map, as `RealtimeRegister` is: no implicit index signature.
interface InterfaceTopics {
  profile: Profile
  [k: `user:${string}`]: Profile
}

const { RealtimeProvider, useTopic, useTopicState, useConnectionState, useSubscription, useRealtimeClient } = createRealtimeHooks<Topics>()
declare const profile: Profile
declare const client: RealtimeClient<Topics>
declare const otherClient: RealtimeClient<{ chat: { text: string } }>

describe('createRealtimeHooks<Topics>()', () => {
  it('checks the topic of useTopic and types its patch, with no type arguments', () => {
    useTopic('user:1', (msg) => {
      expectTypeOf(msg.topic).toEqualTypeOf<'user:1'>()
      expectTypeOf(msg.payload).toEqualTypeOf<Profile>()
    })
    useTopic('$stats', (msg) => expectTypeOf(msg.payload.connections).toBeNumber())
    // @ts-expect-error an unknown topic
    useTopic('nope', () => {})
    // @ts-expect-error a typo in a pattern topic
    useTopic('usr:1', () => {})
    // @ts-expect-error the patch handler reads a field the payload does not have
    useTopic('user:1', (msg) => msg.payload.nope)
    useTopic('profile', () => {}, { onResync: (topic) => expectTypeOf(topic).toEqualTypeOf<'profile'>() })
  })

  it('checks the initial state and payload of useTopicState', () => {
    const [state, setState, { status }] = useTopicState('profile', profile)
    expectTypeOf(state).toEqualTypeOf<Profile>()
    expectTypeOf(status).toEqualTypeOf<TopicStatus>()
    setState((prev) => ({ ...prev, tgUsername: 'x' }))
    // @ts-expect-error a wrong payload field type in the initial state
    useTopicState('profile', { ...profile, userId: 1 })
    // @ts-expect-error a field the payload does not have
    useTopicState('profile', { ...profile, nope: true })
    // @ts-expect-error an unknown topic
    useTopicState('users', profile)
    // @ts-expect-error a setter value of the wrong type
    setState({ userId: 1 })
    // An explicit state type, e.g. nullable until the first fetch.
    const [nullable] = useTopicState<'user:7', Profile | null>('user:7', null)
    expectTypeOf(nullable).toEqualTypeOf<Profile | null>()
    const [merged] = useTopicState<'user:7', number>('user:7', 0, { merge: (count, payload) => count + payload.tgUsername.length })
    expectTypeOf(merged).toEqualTypeOf<number>()
  })

  it('types useSubscription, useConnectionState and useRealtimeClient', () => {
    const { subscription, status } = useSubscription('user:3')
    expectTypeOf(subscription).toEqualTypeOf<Subscription<Topics, 'user:3'> | undefined>()
    expectTypeOf(status).toEqualTypeOf<TopicStatus>()
    subscription?.on('patch', (msg) => expectTypeOf(msg.payload).toEqualTypeOf<Profile>())
    expectTypeOf(subscription!.position).toEqualTypeOf<Position | undefined>()
    // @ts-expect-error an unknown topic
    useSubscription('nope')
    expectTypeOf(useConnectionState()).toEqualTypeOf<'connecting' | 'connected' | 'disconnected'>()
    expectTypeOf(useRealtimeClient()).toEqualTypeOf<RealtimeClient<Topics>>()
  })

  it('keeps the client type of the provider', () => {
    RealtimeProvider({ client })
    // @ts-expect-error a client of another topic map
    RealtimeProvider({ client: otherClient })
  })

  it('accepts a topic map written as an interface', () => {
    const hooks = createRealtimeHooks<InterfaceTopics>()
    hooks.useTopic('user:1', (msg) => expectTypeOf(msg.payload).toEqualTypeOf<Profile>())
    // @ts-expect-error an unknown topic of the interface map
    hooks.useTopic('$stats', () => {})
    const typed = createRealtimeClient<InterfaceTopics>({ url: 'ws://localhost/ws', lazy: true })
    hooks.RealtimeProvider({ client: typed })
    typed.subscription('profile').on('patch', (msg) => expectTypeOf(msg.payload).toEqualTypeOf<Profile>())
    expectTypeOf<RealtimeServer<InterfaceTopics>['publishTopic']>().toBeFunction()
  })
})

describe('client.subscription(topic)', () => {
  it('types the object by its topic', () => {
    const sub = client.subscription('$stats')
    expectTypeOf(sub.topic).toEqualTypeOf<'$stats'>()
    sub.on('patch', (msg) => expectTypeOf(msg.payload).toEqualTypeOf<Stats>())
    sub.on('state', (state) => expectTypeOf(state).toEqualTypeOf<'subscribing' | 'subscribed' | 'unsubscribed'>())
    expectTypeOf(sub.ready(100)).toEqualTypeOf<Promise<void>>()
    // @ts-expect-error an unknown topic
    client.subscription('nope')
    // @ts-expect-error no such event
    sub.on('patches', () => {})
  })
})

describe('state topics and presence', () => {
  type Info = { name: string }
  const presenceHooks = createRealtimeHooks<Topics & { $online: never }, Info>()

  it('types the members of usePresence by the I of createRealtimeHooks<T, I>(), and checks its topic', () => {
    const { members, status, error } = presenceHooks.usePresence('$online')
    expectTypeOf(members).toEqualTypeOf<PresenceMember<Info>[]>()
    expectTypeOf(members[0]!.info).toEqualTypeOf<Info | undefined>()
    expectTypeOf(status).toEqualTypeOf<TopicStatus>()
    expectTypeOf(error).toEqualTypeOf<RealtimeError | undefined>()
    // @ts-expect-error a topic outside the map
    presenceHooks.usePresence('$offline')
    // The untyped form: the info as the third type argument.
    expectTypeOf(usePresence<Topics, 'profile', Info>('profile').members).toEqualTypeOf<PresenceMember<Info>[]>()
  })

  it("types a state topic's value, the state in `subscribed`, members() and presence events", () => {
    const sub = client.subscription('user:1')
    expectTypeOf(sub.value).toEqualTypeOf<Profile | undefined>()
    sub.on('subscribed', (info) => expectTypeOf(info.state).toEqualTypeOf<Profile | undefined>())
    sub.on('presence', ({ join, leave }) => {
      expectTypeOf(join).toEqualTypeOf<PresenceMember[]>()
      expectTypeOf(leave).toEqualTypeOf<string[]>()
    })
    client.on('presence', (topic, change) => {
      expectTypeOf(topic).toEqualTypeOf<keyof Topics & string>()
      expectTypeOf(change.join).toEqualTypeOf<PresenceMember[]>()
    })
    expectTypeOf(client.members<Info>('profile')).toEqualTypeOf<Promise<PresenceMember<Info>[]>>()
    // @ts-expect-error a topic outside the map
    void client.members('nope')
    useTopic('user:1', () => {}, { onState: (state) => expectTypeOf(state).toEqualTypeOf<Profile>() })
  })
})
