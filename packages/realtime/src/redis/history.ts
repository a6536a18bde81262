import { compareOffsets, type BusMessage, type HistoryResult } from '../bus/types.js'
import type { Position } from '../topics.js'

/** What `HISTORY_SCRIPT` returns: epoch, last id, first id, entries trimmed (-1: unknown), now, entries. */
export type HistoryReply = [string, string, string, number, number, [string, string[]][]]

const OFFSET = /^(0|\d{1,20}-\d{1,20})$/

/** The stream id to read after, or '' when `since` is missing or not an offset of a RedisBus. */
export function streamIdOf(since: Position | undefined): string {
  if (!since || !OFFSET.test(since.offset)) return ''
  return since.offset === '0' ? '0-0' : since.offset
}

/**
 * Decides from the script's reply whether every message after `since` is still there: `since` is
 * not past the last id, and either nothing was ever trimmed or `since` is not before the first
 * retained entry (trimming only removes the oldest entries, and the stream keeps one more than the
 * history size so that a client's last message survives), and none is older than the history age.
 */
export function historyResult(topic: string, since: Position | undefined, reply: HistoryReply, ttlMs: number): HistoryResult {
  const [epoch, lastId, firstId, trimmed, now, entries] = reply
  const position: Position = { epoch, offset: lastId || '0' }
  const refused: HistoryResult = { messages: [], recovered: false, position }
  const sinceId = streamIdOf(since)
  if (!since || !sinceId || since.epoch !== epoch) return refused
  const last = lastId || '0-0'
  if (compareOffsets(sinceId, last) > 0) return refused
  const intact = trimmed === 0 || (firstId ? compareOffsets(sinceId, firstId) >= 0 : sinceId === last)
  if (!intact) return refused
  const messages: BusMessage[] = []
  for (const [id, fields] of entries) {
    if (messages.length === 0 && Number(id.slice(0, id.indexOf('-'))) < now - ttlMs) return refused
    messages.push({ topic, data: fieldValue(fields, 'd'), epoch, offset: id })
  }
  return { messages, recovered: true, position }
}

function fieldValue(fields: string[], name: string): string {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1] as string
  return ''
}

/**
 * A message as `PUBLISH_SCRIPT` publishes it on a topic's channel: `epoch \n offset \n data`;
 * undefined for text of another shape.
 */
export function parseChannelMessage(topic: string, text: string): BusMessage | undefined {
  const a = text.indexOf('\n')
  const b = text.indexOf('\n', a + 1)
  if (a < 0 || b < 0) return undefined
  const offset = text.slice(a + 1, b)
  const message: BusMessage = { topic, epoch: text.slice(0, a), offset, data: text.slice(b + 1) }
  // The stream id starts with Redis' clock at XADD, in ms: the publish time, to the millisecond.
  const publishedAt = parseInt(offset, 10)
  if (publishedAt > 0) message.publishedAt = publishedAt
  return message
}
