/** The realtime hooks bound to the app's topic map, so call sites need no type arguments. */
import { createRealtimeHooks } from '@app/realtime/react'
import type { OnlineInfo, Topics } from '../shared/topics.js'

export const { RealtimeProvider, useTopic, useTopicState, useConnectionState, useSubscription, useRealtimeClient, usePresence } =
  createRealtimeHooks<Topics, OnlineInfo>()

// The names the components were written against.
export { useTopic as useAppTopic, useTopicState as useAppTopicState }

/** The page's WebSocket endpoint (same host, `/ws`). */
export function realtimeUrl(): string {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws'
  return `${scheme}://${window.location.host}/ws`
}
