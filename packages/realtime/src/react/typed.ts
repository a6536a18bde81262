import type { ReactElement, ReactNode } from 'react'
import type { ConnectionState, RealtimeClient } from '../client/client.js'
import type { TopicPatch } from '../client/subscription.js'
import type { TopicMap, TopicName } from '../topics.js'
import {
  RealtimeProvider,
  useConnectionState,
  usePresence,
  useRealtimeClient,
  useSubscription,
  useTopic,
  useTopicState,
  type PresenceState,
  type SubscriptionHandle,
  type TopicStatus,
  type UseTopicOptions,
  type UseTopicStateOptions,
} from './hooks.js'

/**
 * `S` not inferred from `initial`: it is the topic's payload unless given, so a wrong initial state
 * is an error instead of a new state type (the pre-TypeScript-5.4 form of `NoInfer`).
 */
type NoInfer<S> = [S][S extends unknown ? 0 : never]

/**
 * The hooks of `createRealtimeHooks<T, I>()`: every topic and payload checked against `T`, no type
 * arguments; `I` is the `info` of presence members.
 */
export interface RealtimeHooks<T extends TopicMap, I = Record<string, unknown>> {
  /** Makes `client` (a client of the same topic map) available to the hooks below it. */
  RealtimeProvider: (props: { client: RealtimeClient<T>; children?: ReactNode }) => ReactElement
  /** The client given to the nearest `RealtimeProvider`. */
  useRealtimeClient: () => RealtimeClient<T>
  /** Subscribes to `topic` while mounted and calls `onPatch` (the latest one) for each of its patches. */
  useTopic: <K extends TopicName<T>>(
    topic: K,
    onPatch: (message: TopicPatch<T, K>) => void,
    options?: UseTopicOptions<T, K>,
  ) => { status: TopicStatus }
  /** State kept live by `topic`: starts at `initial`, each patch merged into it. */
  useTopicState: <K extends TopicName<T>, S = T[K]>(
    topic: K,
    initial: NoInfer<S> | (() => NoInfer<S>),
    options?: UseTopicStateOptions<T, K, S>,
  ) => [S, (next: S | ((prev: S) => S)) => void, { status: TopicStatus }]
  /** The client's connection state, re-rendering on change. */
  useConnectionState: () => ConnectionState
  /** The topic's `Subscription` object, held while mounted, and its status. */
  useSubscription: <K extends TopicName<T>>(topic: K, options?: { enabled?: boolean }) => SubscriptionHandle<T, K>
  /** The members of presence topic `topic`, live, and its status. */
  usePresence: <K extends TopicName<T>>(topic: K, options?: { enabled?: boolean }) => PresenceState<I>
}

/**
 * The hooks bound to the app's topic map (and the `info` type of its presence members), so call
 * sites need no type arguments and a typo in a topic or a wrong payload field is a compile error:
 *
 * ```ts
 * export const { RealtimeProvider, useTopic, useTopicState, useConnectionState, useSubscription, usePresence } =
 *   createRealtimeHooks<Topics, { name: string }>()
 * ```
 *
 * They are the package's hooks themselves (one context), only typed: nothing is created at run time.
 */
export function createRealtimeHooks<T extends TopicMap, I = Record<string, unknown>>(): RealtimeHooks<T, I> {
  return { RealtimeProvider, useRealtimeClient, useTopic, useTopicState, useConnectionState, useSubscription, usePresence: usePresence as RealtimeHooks<T, I>['usePresence'] }
}
