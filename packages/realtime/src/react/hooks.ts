import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactElement,
  type ReactNode,
} from 'react'
import type { ConnectionState, RealtimeClient } from '../client/client.js'
import type { Subscription, TopicPatch } from '../client/subscription.js'
import type { RealtimeError } from '../errors.js'
import type { PresenceMember } from '../protocol.js'
import type { TopicMap, TopicName } from '../topics.js'
import { safeMerge } from './merge.js'

// One context for every topic map: the type is kept by `RealtimeProvider<T>`'s prop and by the
// hooks of `createRealtimeHooks<T>()`, which read it back as `RealtimeClient<T>`.
const RealtimeContext = createContext<RealtimeClient<any> | null>(null)

/** Makes a realtime client available to the hooks below it. */
export function RealtimeProvider<T extends TopicMap>(props: { client: RealtimeClient<T>; children?: ReactNode }): ReactElement {
  return createElement(RealtimeContext.Provider, { value: props.client }, props.children)
}

/**
 * The client given to the nearest `RealtimeProvider`. Untyped form: `T` is whatever the caller
 * says; `createRealtimeHooks<T>().useRealtimeClient` ties it to the app's map.
 */
export function useRealtimeClient<T extends TopicMap = TopicMap>(): RealtimeClient<T> {
  const client: RealtimeClient<T> | null = useContext(RealtimeContext)
  if (!client) throw new Error('useRealtimeClient: no <RealtimeProvider client={...}> above this component')
  return client
}

/** The status of a topic hook: waiting for the server, live, or not subscribed (disabled or refused). */
export type TopicStatus = 'subscribing' | 'subscribed' | 'unsubscribed'

/** Options of `useTopic`. */
export interface UseTopicOptions<T extends TopicMap, K extends TopicName<T>> {
  /** Subscribe only while true. Default true. */
  enabled?: boolean
  /** Called when what was missed on the topic could not be recovered: refetch. */
  onResync?: (topic: K) => void
  /**
   * On a state topic: called with its current state when the hook starts on a subscription that
   * has one, and whenever the server sends it (each `subscribed` that was not recovered).
   */
  onState?: (state: T[K], topic: K) => void
}

/**
 * Subscribes to `topic` while mounted and calls `onPatch` for each of its patches. The latest
 * `onPatch` is always used (no stale closure) and a new function does not resubscribe; only a
 * change of `topic` or `enabled` does.
 */
export function useTopic<T extends TopicMap, K extends TopicName<T>>(
  topic: K,
  onPatch: (message: TopicPatch<T, K>) => void,
  options: UseTopicOptions<T, K> = {},
): { status: TopicStatus } {
  const client = useRealtimeClient<T>()
  const enabled = options.enabled ?? true
  const latest = useRef({ onPatch, options })
  latest.current = { onPatch, options }
  const [status, setStatus] = useState<TopicStatus>(enabled ? 'subscribing' : 'unsubscribed')

  useEffect(() => {
    if (!enabled) {
      setStatus('unsubscribed')
      return
    }
    // The topic's own subscription object: a patch of another topic never reaches this hook.
    const sub = client.subscription(topic)
    const offs = [
      sub.on('patch', (message) => latest.current.onPatch(message)),
      sub.on('resync', () => latest.current.options.onResync?.(topic)),
      sub.on('subscribed', (info) => 'state' in info && latest.current.options.onState?.(info.state as T[K], topic)),
      sub.on('state', setStatus),
    ]
    sub.subscribe()
    // Already live for another holder: its state is known now.
    if (sub.value !== undefined) latest.current.options.onState?.(sub.value, topic)
    setStatus(sub.state)
    return () => {
      for (const off of offs) off()
      sub.unsubscribe()
    }
  }, [client, topic, enabled])

  return { status }
}

/** Options of `useTopicState`. */
export interface UseTopicStateOptions<T extends TopicMap, K extends TopicName<T>, S> extends UseTopicOptions<T, K> {
  /** How a patch changes the state. Default: a safe shallow merge (`{...prev, ...payload}`). */
  merge?: (prev: S, payload: T[K]) => S
}

/**
 * State kept live by a topic: starts at `initial`, and each patch is merged into it. On a state
 * topic the server's state replaces it (through `merge` when given) as soon as it arrives, so no
 * fetch is needed. Returns the state, a setter (for the app's own fetches and optimistic edits)
 * and the topic status.
 */
export function useTopicState<T extends TopicMap, K extends TopicName<T>, S = T[K]>(
  topic: K,
  initial: S | (() => S),
  options: UseTopicStateOptions<T, K, S> = {},
): [S, (next: S | ((prev: S) => S)) => void, { status: TopicStatus }] {
  const [state, setState] = useState<S>(initial)
  const mergeRef = useRef(options.merge)
  mergeRef.current = options.merge
  const onPatch = useCallback((message: TopicPatch<T, K>) => {
    const merge = mergeRef.current
    setState((prev) => (merge ? merge(prev, message.payload) : safeMerge(prev, message.payload)))
  }, [])
  const { status } = useTopic<T, K>(topic, onPatch, {
    ...options,
    onState(value, key) {
      const merge = mergeRef.current
      setState((prev) => (merge ? merge(prev, value) : (value as unknown as S)))
      options.onState?.(value, key)
    },
  })
  return [state, setState, { status }]
}

/** What `usePresence` returns. */
export interface PresenceState<I = Record<string, unknown>> {
  /** The topic's members now, in the order they came. Empty until the first reply, and while unsubscribed. */
  members: PresenceMember<I>[]
  status: TopicStatus
  /** Why the last `members` request failed (the next `subscribed` asks again). */
  error: RealtimeError | undefined
}

/**
 * The members of presence topic `topic`, live: subscribes to it while mounted (and `enabled`),
 * asks for the members after each `subscribed` (so after every reconnect too), and applies the
 * `presence` frames in between (a join adds or replaces, a leave removes).
 */
export function usePresence<T extends TopicMap = TopicMap, K extends TopicName<T> = TopicName<T>, I = Record<string, unknown>>(
  topic: K,
  options: { enabled?: boolean } = {},
): PresenceState<I> {
  const client = useRealtimeClient<T>()
  const enabled = options.enabled ?? true
  const [members, setMembers] = useState<PresenceMember<I>[]>([])
  const [error, setError] = useState<RealtimeError>()
  const { status } = useTopic<T, K>(topic, ignore, { enabled })

  useEffect(() => {
    setMembers([])
    if (!enabled) return
    const sub = client.subscription(topic)
    const byId = new Map<string, PresenceMember<I>>()
    // Replies to an older request (before a reconnect) are stale once a newer one was sent.
    let asked = 0
    const show = () => setMembers([...byId.values()])
    const ask = () => {
      const mine = ++asked
      client.members<I>(topic).then(
        (list) => {
          if (mine !== asked) return
          byId.clear()
          for (const member of list) byId.set(member.id, member)
          setError(undefined)
          show()
        },
        (reason: RealtimeError) => mine === asked && setError(reason),
      )
    }
    const offs = [
      sub.on('subscribed', ask),
      // Refused or revoked: no members to show.
      sub.on('state', (state) => state === 'unsubscribed' && (byId.clear(), show())),
      sub.on('presence', ({ join, leave }) => {
        for (const id of leave) byId.delete(id)
        for (const member of join) byId.set(member.id, member as PresenceMember<I>)
        show()
      }),
    ]
    if (sub.state === 'subscribed') ask()
    return () => {
      asked = -1
      for (const off of offs) off()
    }
  }, [client, topic, enabled])

  return { members, status, error }
}

function ignore(): void {}

/** What `useSubscription` returns. */
export interface SubscriptionHandle<T extends TopicMap, K extends TopicName<T>> {
  /** The topic's subscription, held while mounted; `undefined` while disabled. */
  subscription: Subscription<T, K> | undefined
  status: TopicStatus
}

/**
 * Holds `topic`'s `Subscription` object while mounted (and `enabled`), for what the other hooks
 * do not cover (its `position`, `ready()`, its events). Re-renders on a change of its state.
 */
export function useSubscription<T extends TopicMap, K extends TopicName<T>>(
  topic: K,
  options: { enabled?: boolean } = {},
): SubscriptionHandle<T, K> {
  const client = useRealtimeClient<T>()
  const enabled = options.enabled ?? true
  const [handle, setHandle] = useState<SubscriptionHandle<T, K>>({ subscription: undefined, status: enabled ? 'subscribing' : 'unsubscribed' })

  useEffect(() => {
    if (!enabled) {
      setHandle({ subscription: undefined, status: 'unsubscribed' })
      return
    }
    const sub = client.subscription(topic)
    const off = sub.on('state', (status) => setHandle({ subscription: sub, status }))
    sub.subscribe()
    setHandle({ subscription: sub, status: sub.state })
    return () => {
      off()
      sub.unsubscribe()
    }
  }, [client, topic, enabled])

  return handle
}

/** The client's connection state, re-rendering on change. */
export function useConnectionState(): ConnectionState {
  const client = useRealtimeClient()
  const subscribe = useCallback((onChange: () => void) => client.on('state', onChange), [client])
  const get = useCallback(() => client.state, [client])
  return useSyncExternalStore(subscribe, get, get)
}
