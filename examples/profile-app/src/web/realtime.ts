/** The realtime hooks bound to the app's topic map, so call sites need no type arguments. */
import { useTopic, useTopicState, type TopicPatch, type UseTopicOptions, type UseTopicStateOptions } from '@app/realtime/react'
import type { TopicName } from '@app/realtime/client'
import type { Topics } from '../shared/topics.js'

export function useAppTopic<K extends TopicName<Topics>>(
  topic: K,
  onPatch: (message: TopicPatch<Topics, K>) => void,
  options?: UseTopicOptions<Topics, K>,
) {
  return useTopic<Topics, K>(topic, onPatch, options)
}

export function useAppTopicState<K extends TopicName<Topics>, S>(
  topic: K,
  initial: S | (() => S),
  options?: UseTopicStateOptions<Topics, K, S>,
) {
  return useTopicState<Topics, K, S>(topic, initial, options)
}

/** The page's WebSocket endpoint (same host, `/ws`). */
export function realtimeUrl(): string {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws'
  return `${scheme}://${window.location.host}/ws`
}
