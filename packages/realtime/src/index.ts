/**
 * `@app/realtime`: protocol types, topic typing helpers and error codes. Runs anywhere; no
 * dependencies.
 */
export {
  CloseCode,
  ErrorCode,
  MAX_TOPIC_LENGTH,
  PROTOCOL_VERSION,
  TOPIC_PATTERN,
  encodeFrame,
  isValidTopic,
  parseClientFrame,
  parseServerFrame,
} from './protocol.js'
export type {
  AuthFrame,
  AuthenticatedFrame,
  ClientFrame,
  ErrorFrame,
  FrameId,
  HelloFrame,
  MembersFrame,
  MembersReplyFrame,
  ParseResult,
  PatchFrame,
  PingFrame,
  PongFrame,
  PresenceFrame,
  PresenceMember,
  ServerFrame,
  SubscribeFrame,
  SubscribedFrame,
  UnsubscribeFrame,
  UnsubscribedFrame,
  WelcomeFrame,
} from './protocol.js'
export { RealtimeError, RealtimeErrorCode, isRealtimeError } from './errors.js'
export type { PatchMessage, Position, TopicMap, TopicName, TopicPayload, TopicsPayload } from './topics.js'
