/**
 * `@app/realtime/react`: `RealtimeProvider` and the hooks `useTopic`, `useTopicState`,
 * `useConnectionState`.
 */
export {
  RealtimeProvider,
  useConnectionState,
  useRealtimeClient,
  useTopic,
  useTopicState,
  type TopicStatus,
  type UseTopicOptions,
  type UseTopicStateOptions,
} from './hooks.js'
export { safeMerge } from './merge.js'
export type { TopicPatch } from '../client/subscription.js'
