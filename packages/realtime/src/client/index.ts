/**
 * `@app/realtime/client`: the typed, reconnecting client, for the browser and Node.
 */
export {
  createRealtimeClient,
  type ConnectionState,
  type RealtimeClient,
  type RealtimeClientEvents,
  type RealtimeClientOptions,
  type WebSocketLike,
} from './client.js'
export type { PresenceChange, SubscribedInfo, Subscription, SubscriptionEvents, SubscriptionState, TopicPatch } from './subscription.js'
export { CloseCode, ErrorCode, PROTOCOL_VERSION, isValidTopic } from '../protocol.js'
export type { PatchFrame, PresenceMember } from '../protocol.js'
export { RealtimeError, isRealtimeError, RealtimeErrorCode } from '../errors.js'
export type { PatchMessage, Position, TopicMap, TopicName, TopicPayload } from '../topics.js'
