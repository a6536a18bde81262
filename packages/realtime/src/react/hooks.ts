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
      sub.on('state', setStatus),
    ]
    sub.subscribe()
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
 * State kept live by a topic: starts at `initial`, and each patch is merged into it. Returns the
 * state, a setter (for the app's own fetches and optimistic edits) and the topic status.
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
  const { status } = useTopic<T, K>(topic, onPatch, options)
  return [state, setState, { status }]
}

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
