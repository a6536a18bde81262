import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FENCE_SCRIPT, parseFenceNotice } from '../src/redis/failover.js'
import { channelOf, metaKey, streamKey } from '../src/redis/keys.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'
import { waitFor } from './utils/wait.js'

beforeAll(requireSharedRedis)

const prefix = uniquePrefix('fence')
const TTL_MS = 60_000

/**
 * The fence script on its own, against the shared Redis under a prefix of its own: which positions
 * of an old primary it treats as lost on the new one (the Sentinel tests show it through failovers).
 */
describe('FENCE_SCRIPT', () => {
  const redis = new Redis(REDIS_URL)
  const sub = new Redis(REDIS_URL)
  const notices: string[] = []

  beforeAll(async () => {
    // The notice goes out on the topic's sharded channel, as its messages do.
    await sub.ssubscribe(channelOf(prefix, 'lost'), channelOf(prefix, 'late'))
    sub.on('smessage', (_channel, text) => notices.push(text))
  })
  afterAll(async () => {
    await deleteKeys(REDIS_URL, prefix)
    redis.disconnect()
    sub.disconnect()
  })

  async function topicWith(topic: string, entries: number, epoch = 'E1'): Promise<string[]> {
    await redis.hset(metaKey(prefix, topic), 'e', epoch, 'p', '1')
    const ids: string[] = []
    for (let i = 0; i < entries; i++) ids.push((await redis.xadd(streamKey(prefix, topic), '*', 'd', String(i))) as string)
    return ids
  }

  const fence = (topic: string, epoch: string, offset: string) =>
    redis.eval(FENCE_SCRIPT, 2, streamKey(prefix, topic), metaKey(prefix, topic), epoch, offset, 'E2', channelOf(prefix, topic), String(TTL_MS)) as Promise<number>

  const fenceAs = (topic: string, epoch: string, offset: string, fresh: string) =>
    redis.eval(FENCE_SCRIPT, 2, streamKey(prefix, topic), metaKey(prefix, topic), epoch, offset, fresh, channelOf(prefix, topic), String(TTL_MS)) as Promise<number>

  it('leaves a topic whose position the primary holds', async () => {
    const ids = await topicWith('held', 3)
    expect(await fence('held', 'E1', ids[2] as string)).toBe(0)
    expect(await fence('held', 'E1', ids[0] as string)).toBe(0)
    expect(await redis.hget(metaKey(prefix, 'held'), 'e')).toBe('E1')
  })

  it('replaces the epoch of a topic that lacks the position, and publishes a notice', async () => {
    const ids = await topicWith('lost', 3)
    const [ms] = (ids[2] as string).split('-')
    // A later id the old primary had confirmed (before the fence: not in the future of it).
    const missing = `${ms}-99`
    expect(await fence('lost', 'E1', missing)).toBe(1)
    expect(await redis.hget(metaKey(prefix, 'lost'), 'e')).toBe('E2')
    // The stream stays: new positions are read under the new epoch.
    expect(await redis.xlen(streamKey(prefix, 'lost'))).toBe(3)
    await waitFor(() => notices.some((n) => parseFenceNotice(n)?.to === 'E2'), 2000, 'the notice')
    expect(parseFenceNotice(notices.find((n) => n.startsWith('!')) as string)).toEqual({ from: 'E1', to: 'E2' })
    // Once replaced, the old epoch's positions from before the fence are not looked at again (one
    // fence per loss) ...
    expect(await fence('lost', 'E1', missing)).toBe(0)
  })

  it('fences again for a message the old primary confirmed after the topic was fenced', async () => {
    const ids = await topicWith('late', 2)
    const [ms] = (ids[1] as string).split('-')
    expect(await fence('late', 'E1', `${Number(ms) + 1}-0`)).toBe(1)
    const fencedAt = Number(await redis.hget(metaKey(prefix, 'late'), 'f'))
    expect(fencedAt).toBeGreaterThan(0)
    // Another instance's publish, confirmed by the old primary 5 s after the fence and lost with it.
    const late = `${fencedAt + 5000}-0`
    expect(await fenceAs('late', 'E1', late, 'E3')).toBe(1)
    expect(await redis.hget(metaKey(prefix, 'late'), 'e')).toBe('E3')
    await waitFor(() => notices.some((n) => parseFenceNotice(n)?.to === 'E3'), 2000, 'the second notice')
    // One from before the fence is still covered by the first one.
    expect(await fenceAs('late', 'E1', `${fencedAt - 1}-0`, 'E4')).toBe(0)
  })

  it('also fences a hole inside the stream (an id between kept entries that is not there)', async () => {
    await redis.hset(metaKey(prefix, 'hole'), 'e', 'E1', 'p', '1')
    await redis.xadd(streamKey(prefix, 'hole'), '1000-1', 'd', 'a')
    await redis.xadd(streamKey(prefix, 'hole'), '1000-5', 'd', 'b')
    expect(await fence('hole', 'E1', '1000-1')).toBe(0)
    expect(await fence('hole', 'E1', '1000-3')).toBe(1)
  })

  it('leaves a position older than the first kept entry (trimmed away, not lost)', async () => {
    const ids = await topicWith('trimmed', 5)
    await redis.xtrim(streamKey(prefix, 'trimmed'), 'MAXLEN', 2)
    expect(await fence('trimmed', 'E1', ids[0] as string)).toBe(0)
    expect(await redis.hget(metaKey(prefix, 'trimmed'), 'e')).toBe('E1')
  })

  it('leaves a topic of another epoch, and a position at offset 0', async () => {
    const ids = await topicWith('other', 1, 'E9')
    expect(await fence('other', 'E1', `${Number((ids[0] as string).split('-')[0]) + 5}-0`)).toBe(0)
    expect(await fence('other', 'E9', '0')).toBe(0)
  })

  it('fences a topic whose keys are gone when the position is younger than the history age, not when older', async () => {
    const now = Date.now()
    expect(await fence('gone-recent', 'E1', `${now - 1000}-0`)).toBe(1)
    expect(await redis.hget(metaKey(prefix, 'gone-recent'), 'e')).toBe('E2')
    expect(await fence('gone-old', 'E1', `${now - TTL_MS - 5000}-0`)).toBe(0)
    expect(await redis.exists(metaKey(prefix, 'gone-old'))).toBe(0)
  })
})
