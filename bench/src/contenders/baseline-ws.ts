/**
 * The floor: a bare `ws` server with a Map from topic to sockets. It speaks the subset of the
 * @app/realtime protocol the bench clients use (subscribe/subscribed/patch, `since` recovery from
 * a small in-memory history), serializes each publish once into one Buffer and sends that Buffer to
 * every socket. No backpressure, no limits, no heartbeat: nothing a library would leave out.
 * With bus 'redis', a publish is a Redis PUBLISH of the ready frame, and every instance fans out
 * the frames of every channel of the run (one PSUBSCRIBE) to its local subscribers.
 */
import { WebSocketServer, type WebSocket } from 'ws'
import { Redis } from 'ioredis'
import type { ContenderOptions, ContenderServer } from './types.js'

const HISTORY = 1000

export async function createBaselineWs(o: ContenderOptions): Promise<ContenderServer> {
  const wss = new WebSocketServer({ server: o.http, path: '/ws', perMessageDeflate: false, clientTracking: false })
  const topics = new Map<string, Set<WebSocket>>()
  const history = new Map<string, { offset: number; frame: Buffer }[]>()
  const epoch = Math.random().toString(36).slice(2)
  let counter = 0
  let open = 0

  let pub: Redis | undefined
  let sub: Redis | undefined
  if (o.bus === 'redis') {
    pub = new Redis(o.redisUrl)
    sub = new Redis(o.redisUrl)
    // The floor needs no per-topic interest tracking: one pattern subscription for the run.
    sub.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, frame: Buffer) => {
      fanout(channel.toString().slice(o.prefix.length), frame)
    })
    await sub.psubscribe(`${o.prefix}*`)
  }

  function fanout(topic: string, frame: Buffer) {
    const set = topics.get(topic)
    if (!set) return
    for (const ws of set) ws.send(frame, { binary: false })
  }

  wss.on('connection', (ws) => {
    open++
    const mine = new Set<string>()
    ws.on('error', () => {})
    ws.on('message', async (data) => {
      let f: any
      try {
        f = JSON.parse(String(data))
      } catch {
        return
      }
      if (f.type !== 'subscribe' || typeof f.topic !== 'string') return
      let set = topics.get(f.topic)
      if (!set) {
        topics.set(f.topic, (set = new Set()))
      }
      set.add(ws)
      mine.add(f.topic)
      const h = history.get(f.topic) ?? []
      const since = f.since
      const from = since && since.epoch === epoch ? Number(since.offset) : NaN
      const recovered = Number.isFinite(from) && (h.length === 0 ? from === counter : h[0]!.offset <= from + 1)
      ws.send(
        JSON.stringify({ type: 'subscribed', id: f.id, topic: f.topic, epoch, offset: String(counter), recovered }),
      )
      if (recovered) for (const m of h) if (m.offset > from) ws.send(m.frame, { binary: false })
    })
    ws.on('close', () => {
      open--
      for (const t of mine) topics.get(t)?.delete(ws)
    })
  })

  return {
    publish(topic, payload) {
      const offset = ++counter
      const frame = Buffer.from(JSON.stringify({ type: 'patch', topic, payload, offset: String(offset), epoch }))
      if (pub) return pub.publish(o.prefix + topic, frame)
      let h = history.get(topic)
      if (!h) history.set(topic, (h = []))
      h.push({ offset, frame })
      if (h.length > HISTORY) h.shift()
      fanout(topic, frame)
      return undefined
    },
    multiTopicPath: 'publish per topic',
    connections: () => open,
    async close() {
      wss.close()
      pub?.disconnect()
      sub?.disconnect()
    },
  }
}
