import { channelOf, metaKey, publishedKey, streamKey } from './keys.js'

/**
 * Lua scripts of `RedisBus`. Each runs atomically in Redis, so a message is in the topic's stream
 * before any instance can receive it, and the epoch check and the stream read see one state.
 *
 * Keys of a topic (all carry the topic in a hash tag, so they live in one Redis Cluster slot):
 * - `<prefix>{<topic>}:s` — the stream: one entry per message, field `d` = payload; id = offset.
 * - `<prefix>{<topic>}:e` — a small hash: `e` = the epoch, `p` = set once a message was published
 *   under that epoch. A stream that is missing while `p` is set has lost its history (expired,
 *   evicted, flushed): the epoch is replaced so that no client can claim to have recovered from it.
 * - `<prefix>{<topic>}:c` — the channel, published with `SPUBLISH` (sharded pub/sub, Redis 7): on a
 *   Cluster only the nodes of the topic's shard carry it. It is passed in ARGV; it hashes to the
 *   slot of the keys, which is what a cluster node checks.
 */

/**
 * Publishes one payload to one or more topics in one call (one round trip). On a Cluster every
 * topic of one call must be in one slot (the bus groups a multi-topic publish by slot).
 * KEYS: stream and meta of each topic, in pairs; then, for a publish with an idempotency key, the
 * key's record. ARGV: data, maxlen, ttlMs, notAfter, then a channel and a fresh epoch for each
 * topic (ARGV[3 + 2t], ARGV[4 + 2t]). Returns `{epoch, id}` for each topic, flat, in the order given.
 * notAfter ('0': none) is a time in ms (Redis' clock) after which the script refuses to run with
 * an error starting `EXPIRED`: a call that a client library re-sent after a failover, once the
 * caller was told it failed, must not publish.
 * The published text is `epoch \n id \n data`, parsed by the subscribers. Each topic is appended
 * and published in turn, so every topic's messages keep their order, as with separate calls.
 * With a record key: if the record exists (the same key was published within ttlMs), nothing is
 * published and its positions are returned; else they are stored in it for ttlMs.
 */
export const PUBLISH_SCRIPT = `
if ARGV[4] ~= '0' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[4]) then
    return redis.error_reply('EXPIRED the publish arrived after its deadline')
  end
end
local n = math.floor(#KEYS / 2)
local record = nil
if #KEYS > 2 * n then
  record = KEYS[#KEYS]
  local seen = redis.call('GET', record)
  if seen then
    local result = {}
    for part in string.gmatch(seen, '[^\\n]+') do result[#result + 1] = part end
    return result
  end
end
local result = {}
for t = 1, n do
  local stream = KEYS[2 * t - 1]
  local meta = KEYS[2 * t]
  local epoch = redis.call('HGET', meta, 'e')
  local published = redis.call('HEXISTS', meta, 'p') == 1
  if (not epoch) or (published and redis.call('EXISTS', stream) == 0) then
    epoch = ARGV[4 + 2 * t]
    redis.call('DEL', meta)
    redis.call('HSET', meta, 'e', epoch, 'p', '1')
  elseif not published then
    redis.call('HSET', meta, 'p', '1')
  end
  local id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*', 'd', ARGV[1])
  redis.call('PEXPIRE', stream, ARGV[3])
  redis.call('PEXPIRE', meta, ARGV[3])
  redis.call('SPUBLISH', ARGV[3 + 2 * t], epoch .. '\\n' .. id .. '\\n' .. ARGV[1])
  result[2 * t - 1] = epoch
  result[2 * t] = id
end
if record then
  redis.call('SET', record, table.concat(result, '\\n'), 'PX', ARGV[3])
end
return result
`

/**
 * The arguments of `PUBLISH_SCRIPT` (called without a fixed key count): the number of keys, then
 * each topic's stream and epoch hash, then `data`, `maxlen`, `ttlMs`, `notAfter` (ms since the
 * epoch, 0 for none), then each topic's channel and a fresh epoch (used only if the topic has none). The record of an idempotency key is named after
 * the first topic, so it shares the topics' slot.
 */
export function publishArguments(
  prefix: string,
  topics: readonly string[],
  data: string,
  maxlen: number,
  ttlMs: number,
  freshEpoch: () => string,
  id: string | undefined,
  notAfter = 0,
): string[] {
  const args: string[] = [String(topics.length * 2 + (id === undefined ? 0 : 1))]
  for (const topic of topics) args.push(streamKey(prefix, topic), metaKey(prefix, topic))
  if (id !== undefined) args.push(publishedKey(prefix, topics[0] as string, id))
  args.push(data, String(maxlen), String(ttlMs), String(notAfter))
  for (const topic of topics) args.push(channelOf(prefix, topic), freshEpoch())
  return args
}

/**
 * KEYS: stream, meta. ARGV: since offset (exclusive, '' for none), fresh epoch, ttlMs.
 * Returns `{epoch, lastId, firstId, trimmed, nowMs, entries}`: lastId '' when there is no stream,
 * firstId '' when the stream holds no entry, trimmed = entries ever removed by trimming (-1 when
 * unknown: `entries-added` needs Redis 7), entries = XRANGE after `since` (empty without one).
 */
export const HISTORY_SCRIPT = `
local epoch = redis.call('HGET', KEYS[2], 'e')
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (not epoch) or ((not exists) and redis.call('HEXISTS', KEYS[2], 'p') == 1) then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'e', epoch)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not exists then
  return {epoch, '', '', 0, now, {}}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last = ''
local added = -1
local length = 0
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1]
  elseif info[i] == 'entries-added' then added = info[i + 1]
  elseif info[i] == 'length' then length = info[i + 1] end
end
local trimmed = -1
if added >= 0 then trimmed = added - length end
local first = ''
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #head > 0 then first = head[1][1] end
local entries = {}
if ARGV[1] ~= '' then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+')
end
return {epoch, last, first, trimmed, now, entries}
`
