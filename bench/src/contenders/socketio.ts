/**
 * Socket.IO 4 with rooms: a `subscribe` event (acknowledged) joins the room, a publish is
 * `io.to(topic).emit('patch', payload)`. WebSocket transport only, no compression. In-memory
 * adapter, or `@socket.io/redis-adapter` with bus 'redis' (`createShardedAdapter`, sharded pub/sub,
 * on a Redis Cluster). Connection state recovery is turned on
 * for the recovery scenario only (it adds an offset to every broadcast packet).
 */
import { Server } from 'socket.io'
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter'
import { Cluster, Redis } from 'ioredis'
import type { ContenderOptions, ContenderServer } from './types.js'

export async function createSocketIo(o: ContenderOptions): Promise<ContenderServer> {
  const io = new Server(o.http, {
    path: '/socket.io',
    transports: ['websocket'],
    serveClient: false,
    perMessageDeflate: false,
    ...(o.recovery ? { connectionStateRecovery: { maxDisconnectionDuration: 120_000, skipMiddlewares: true } } : {}),
  })
  let pub: Redis | Cluster | undefined
  let sub: Redis | Cluster | undefined
  if (o.bus === 'redis' && o.redisCluster) {
    pub = new Cluster(o.redisCluster)
    // ioredis routes SSUBSCRIBE to the shard of the channel only with shardedSubscribers.
    sub = new Cluster(o.redisCluster, { shardedSubscribers: true })
    io.adapter(createShardedAdapter(pub, sub, { channelPrefix: `${o.prefix}socket.io` }))
  } else if (o.bus === 'redis') {
    pub = new Redis(o.redisUrl)
    sub = pub.duplicate()
    io.adapter(createAdapter(pub, sub, { key: `${o.prefix}socket.io` }))
  }
  io.on('connection', (socket) => {
    socket.on('subscribe', (topic: string, ack?: (r: unknown) => void) => {
      void socket.join(topic)
      ack?.({ ok: true, recovered: socket.recovered })
    })
  })
  return {
    publish(topic, payload) {
      io.to(topic).emit('patch', payload)
      return undefined
    },
    multiTopicPath: 'io.to(topic).emit per topic',
    connections: () => io.engine.clientsCount,
    async close() {
      await new Promise<void>((r) => io.close(() => r()))
      pub?.disconnect()
      sub?.disconnect()
    },
  }
}
