// Quick start, server side: attach to an HTTP server, publish after each database write.
import { createServer } from 'node:http'
import { createRealtimeServer } from '@app/realtime/server'
import type { ProfileUpdated, Topics } from './topics.js'

const http = createServer()
const realtime = createRealtimeServer<Topics>({
  server: http, // WebSocket endpoint at ws://localhost:3000/ws
  authorize: (_principal, topic) => topic !== 'profile', // e.g. `profile` for admins only
})
http.listen(3000)

export async function onProfileSaved(profile: ProfileUpdated): Promise<void> {
  await realtime.publishTopic(`user:${profile.userId}`, profile)
  await realtime.publishTopic('profile', profile)
}
