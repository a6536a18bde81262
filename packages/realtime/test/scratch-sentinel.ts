import { Redis } from 'ioredis'
import { SentinelSet } from './utils/sentinel.js'
const t0 = Date.now()
const set = await SentinelSet.start()
console.log('settled in', Date.now() - t0)
const r = new Redis({ sentinels: set.addresses, name: set.name, failoverDetector: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 })
const s = new Redis({ sentinels: set.addresses, name: set.name, failoverDetector: true, autoResubscribe: false })
for (const [n, c] of [['pub', r], ['sub', s]] as const) {
  c.on('error', (e) => console.log(Date.now() - t0, n, 'error', e.message))
  c.on('close', () => console.log(Date.now() - t0, n, 'close'))
  c.on('ready', () => console.log(Date.now() - t0, n, 'ready', (c as any).stream?.remotePort))
}
await new Promise((res) => r.once('ready', res))
await s.subscribe('x')
let t1 = Date.now()
console.log('failover ->', await set.failover(), Date.now() - t1)
await new Promise((res) => setTimeout(res, 1500))
t1 = Date.now()
console.log('kill ->', await set.killPrimary(), Date.now() - t1)
await new Promise((res) => setTimeout(res, 1500))
r.disconnect(); s.disconnect()
await set.stop()
