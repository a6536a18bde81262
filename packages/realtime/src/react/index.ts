/**
 * `@app/realtime/react`: `createRealtimeHooks<Topics>()` (the typed hooks, no type arguments at
 * call sites), and the untyped forms `RealtimeProvider`, `useTopic`, `useTopicState`,
 * `useConnectionState`, `useSubscription`, `usePresence`.
 */
export {
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
export { safeMerge } from './merge.js'
export type { PresenceChange, SubscribedInfo, TopicPatch } from '../client/subscription.js'
export type { PresenceMember } from '../protocol.js'
export { createRealtimeHooks, type RealtimeHooks } from './typed.js'
