/**
 * `@app/realtime/react`: `createRealtimeHooks<Topics>()` (the typed hooks, no type arguments at
 * call sites), and the untyped forms `RealtimeProvider`, `useTopic`, `useTopicState`,
 * `useConnectionState`, `useSubscription`.
 */
export {
  RealtimeProvider,
  useConnectionState,
  useRealtimeClient,
  useSubscription,
  useTopic,
  useTopicState,
  type SubscriptionHandle,
  type TopicStatus,
  type UseTopicOptions,
  type UseTopicStateOptions,
} from './hooks.js'
export { safeMerge } from './merge.js'
export type { TopicPatch } from '../client/subscription.js'
export { createRealtimeHooks, type RealtimeHooks } from './typed.js'
