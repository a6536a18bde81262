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
  type TopicPatch,
  type TopicStatus,
  type UseTopicOptions,
  type UseTopicStateOptions,
} from './hooks.js'
export { safeMerge } from './merge.js'
