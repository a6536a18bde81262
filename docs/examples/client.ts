// Quick start, plain client (browser, or Node with `WebSocket` from 'ws').
import { createRealtimeClient } from '@app/realtime/client'
import type { Topics } from './topics.js'

export const client = createRealtimeClient<Topics>({ url: 'ws://localhost:3000/ws' })

client.subscribe('user:42')
client.on('patch', (msg) => {
  if (msg.type === 'patch' && msg.topic === 'user:42') console.log('new name', msg.payload.tgUsername)
})
client.on('resync', (topic) => console.log(`refetch ${topic}: what was missed is gone`))
