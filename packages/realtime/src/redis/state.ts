import type { BusMessage } from '../bus/types.js'
import type { CommandConnection } from './connection.js'

/**
 * Retained state of state topics on Redis: one string per topic, `epoch \n offset \n data`, under
 * the topic's hash tag (one Cluster slot with its stream) and without expiry: a state outlives the
 * history and every instance restart.
 */

/** The key of a topic's retained state. */
export function stateKey(prefix: string, topic: string): string {
  return `${prefix}{${topic}}:v`
}

/**
 * KEYS: the state key. ARGV: epoch, offset, data. Keeps the message unless the key holds a later
 * one: offsets are stream ids (`ms-seq`), ordered in time across epochs too, so a publish that lost
 * the race to set the state never replaces a newer one.
 */
export const RETAIN_SCRIPT = `
local kept = redis.call('GET', KEYS[1])
if kept then
  local a = string.find(kept, '\\n', 1, true)
  local b = string.find(kept, '\\n', a + 1, true)
  local offset = string.sub(kept, a + 1, b - 1)
  local ms, seq = string.match(offset, '^(%d+)-(%d+)$')
  local nms, nseq = string.match(ARGV[2], '^(%d+)-(%d+)$')
  if ms and nms then
    ms, seq, nms, nseq = tonumber(ms), tonumber(seq), tonumber(nms), tonumber(nseq)
    if ms > nms or (ms == nms and seq >= nseq) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
return 1
`

type WithRetain = CommandConnection & { realtimeBusRetain(key: string, epoch: string, offset: string, data: string): Promise<number> }

/** Defines the script on `redis` (once per connection). */
export function defineStateCommands(redis: CommandConnection): void {
  redis.defineCommand('realtimeBusRetain', { numberOfKeys: 1, lua: RETAIN_SCRIPT })
}

export function retain(redis: CommandConnection, prefix: string, message: BusMessage): Promise<number> {
  return (redis as WithRetain).realtimeBusRetain(stateKey(prefix, message.topic), message.epoch, message.offset, message.data)
}

export async function readRetained(redis: CommandConnection, prefix: string, topic: string): Promise<BusMessage | undefined> {
  const text = await redis.get(stateKey(prefix, topic))
  if (text === null) return undefined
  const a = text.indexOf('\n')
  const b = text.indexOf('\n', a + 1)
  if (a < 0 || b < 0) return undefined
  return { topic, epoch: text.slice(0, a), offset: text.slice(a + 1, b), data: text.slice(b + 1) }
}
