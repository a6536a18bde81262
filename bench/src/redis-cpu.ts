/**
 * `npx tsx bench/src/redis-cpu.ts [--messages N] [--no-cross]`: single Redis against Redis Cluster,
 * side by side in one run, each on Redis processes of its own (free ports, no persistence):
 *
 * 1. Redis CPU per published message: a publishing `RedisBus` and two subscribing instances (each
 *    with a listener on every one of 100 topics); `INFO cpu` (user + sys) and `INFO commandstats`
 *    of every node read before and after N publishes, less what each node spends idle over as
 *    long (measured right after).
 * 2. Deliveries/s cross-instance against Socket.IO: the bench's `cross-instance` scenario (`--quick`)
 *    run twice, on the single Redis (`createAdapter`) and on the cluster (`createShardedAdapter`;
 *    `BENCH_REDIS_CLUSTER`).
 *
 * It reuses the test helpers of `packages/realtime/test/utils/` to start the servers.
 */
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { RedisBus } from '../../packages/realtime/src/redis/index.js'
import { OwnRedisCluster } from '../../packages/realtime/test/utils/cluster.js'
import { OwnRedisServer } from '../../packages/realtime/test/utils/redis.js'
import { waitFor } from '../../packages/realtime/test/utils/wait.js'
import { REPO_ROOT } from './ipc.js'

const { values } = parseArgs({ options: { messages: { type: 'string' }, 'no-cross': { type: 'boolean' } } })
const MESSAGES = Number(values.messages ?? 20_000)
const TOPICS = 100
const IN_FLIGHT = 100

interface NodeSample {
  port: number
  role: string
  cpuUs: number
  commandUs: number
  calls: Record<string, number>
}

async function sample(nodes: { port: number; role: string }[], command: (port: number, ...args: string[]) => Promise<unknown>): Promise<NodeSample[]> {
  const out: NodeSample[] = []
  for (const node of nodes) {
    const cpu = String(await command(node.port, 'INFO', 'cpu'))
    const stats = String(await command(node.port, 'INFO', 'commandstats'))
    const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(cpu)?.[1] ?? 0)
    const calls: Record<string, number> = {}
    let commandUs = 0
    for (const match of stats.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+)/g)) {
      calls[match[1]!] = Number(match[2])
      // Scripts' inner commands are counted both in themselves and in the script: count evalsha/eval only once.
      if (['evalsha', 'eval', 'ssubscribe', 'sunsubscribe', 'subscribe', 'publish', 'ping'].includes(match[1]!)) commandUs += Number(match[3])
    }
    out.push({ port: node.port, role: node.role, cpuUs: (field('used_cpu_user') + field('used_cpu_sys')) * 1e6, commandUs, calls })
  }
  return out
}

interface CpuResult {
  setup: string
  messages: number
  deliveredToInstances: number
  totalCpuUsPerMessage: number
  busiestNodeCpuUsPerMessage: number
  commandUsPerMessage: number
  evalshaPerPrimary: number[]
  /** Each node's CPU µs per published message (of all messages), with its role. */
  perNode: string[]
  seconds: number
}

async function measureCpu(
  setup: string,
  busOptions: () => ConstructorParameters<typeof RedisBus>[0],
  nodes: { port: number; role: string }[],
  command: (port: number, ...args: string[]) => Promise<unknown>,
): Promise<CpuResult> {
  const publisher = new RedisBus({ ...busOptions(), flowControl: false })
  const receivers = [new RedisBus(busOptions()), new RedisBus(busOptions())]
  const topics = Array.from({ length: TOPICS }, (_, i) => `cpu:${i}`)
  let delivered = 0
  try {
    for (const bus of receivers) for (const topic of topics) await bus.subscribe(topic, () => delivered++)
    // Warm-up: script loaded, connections to every shard open.
    await Promise.all(topics.map((t) => publisher.publish(t, '{"warm":1}')))
    await waitFor(() => delivered === 2 * TOPICS, 20_000, 'warm-up delivered')
    delivered = 0
    const payload = JSON.stringify({ userId: 7, tgUsername: 'user7', photoUrl: 'https://t.me/i/userpic/320/u7.jpg' })
    const before = await sample(nodes, command)
    const started = performance.now()
    for (let sent = 0; sent < MESSAGES; sent += IN_FLIGHT) {
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, MESSAGES - sent) }, (_, i) => publisher.publish(topics[(sent + i) % TOPICS]!, payload)))
    }
    await waitFor(() => delivered === 2 * MESSAGES, 60_000, 'every message delivered')
    const seconds = (performance.now() - started) / 1000
    const after = await sample(nodes, command)
    // What each node spends idle over as long (cron, cluster bus, replication pings): not the publishes'.
    const idleStart = await sample(nodes, command)
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
    const idleEnd = await sample(nodes, command)
    const cpu = after.map((a, i) => Math.max(0, a.cpuUs - before[i]!.cpuUs - (idleEnd[i]!.cpuUs - idleStart[i]!.cpuUs)))
    const commandUs = after.reduce((sum, a, i) => sum + a.commandUs - before[i]!.commandUs, 0)
    const evalsha = after.filter((a) => a.role === 'master').map((a) => (a.calls.evalsha ?? 0) - (before.find((b) => b.port === a.port)!.calls.evalsha ?? 0))
    return {
      setup,
      messages: MESSAGES,
      deliveredToInstances: delivered,
      totalCpuUsPerMessage: cpu.reduce((a, b) => a + b, 0) / MESSAGES,
      busiestNodeCpuUsPerMessage: Math.max(...cpu) / MESSAGES,
      commandUsPerMessage: commandUs / MESSAGES,
      evalshaPerPrimary: evalsha,
      perNode: after.map((a, i) => `${a.role === 'master' ? 'primary' : 'replica'} ${(cpu[i]! / MESSAGES).toFixed(1)}`),
      seconds,
    }
  } finally {
    await Promise.all([publisher.close(), ...receivers.map((b) => b.close())])
  }
}

function crossInstance(label: string, env: Record<string, string>): string {
  const result = spawnSync(
    'npx',
    ['tsx', 'src/cli.ts', '--scenario', 'cross-instance', '--quick', '--contender', 'socket.io,realtime', '--no-docs', '--out', `redis-cpu-${label}`],
    { cwd: path.join(REPO_ROOT, 'bench'), env: { ...process.env, ...env }, encoding: 'utf8', timeout: 300_000 },
  )
  const text = result.stdout + result.stderr
  const table = text.slice(text.indexOf('## Best of'), text.indexOf('## @app/realtime ratios'))
  return table || text
}

const single = await OwnRedisServer.start()
// The same, with a replica (what a Sentinel deployment runs): replication costs the primary too.
const replicated = await OwnRedisServer.start()
const replica = await OwnRedisServer.start({ args: ['--replicaof', '127.0.0.1', String(replicated.port)] })
const cluster = await OwnRedisCluster.start()
try {
  await waitFor(async () => String(await replica.command('INFO', 'replication')).includes('master_link_status:up'), 20_000, 'the replica in sync')
  const clusterNodes = (await cluster.topology()).map((n) => ({ port: n.port, role: n.role }))
  const rows: CpuResult[] = []
  rows.push(await measureCpu('single Redis', () => ({ url: single.url, prefix: 'cpu:' }), [{ port: single.port, role: 'master' }], (port, ...args) => single.command(...args)))
  const pair = [replicated, replica]
  rows.push(
    await measureCpu(
      'single Redis + 1 replica',
      () => ({ url: replicated.url, prefix: 'cpu:' }),
      [
        { port: replicated.port, role: 'master' },
        { port: replica.port, role: 'slave' },
      ],
      (port, ...args) => pair.find((s) => s.port === port)!.command(...args),
    ),
  )
  rows.push(await measureCpu('Redis Cluster (3 primaries + 3 replicas)', () => ({ cluster: { nodes: cluster.nodes }, prefix: 'cpu:' }), clusterNodes, (port, ...args) => cluster.command(port, ...args)))
  console.log(`\n## Redis CPU per published message (${MESSAGES} publishes on ${TOPICS} topics, 2 subscribed instances, payload 86 B)\n`)
  console.log('| setup | Redis CPU µs/message, all nodes | busiest node µs/message | command time µs/message | scripts per primary | each node µs/message | publishes/s |')
  console.log('|---|---:|---:|---:|---|---|---:|')
  for (const r of rows) {
    console.log(
      `| ${r.setup} | ${r.totalCpuUsPerMessage.toFixed(1)} | ${r.busiestNodeCpuUsPerMessage.toFixed(1)} | ${r.commandUsPerMessage.toFixed(1)} | ${r.evalshaPerPrimary.join(' / ')} | ${r.perNode.join(', ')} | ${Math.round(r.messages / r.seconds)} |`,
    )
  }
  if (!values['no-cross']) {
    console.log('\n## Cross-instance deliveries/s, single Redis (createAdapter for Socket.IO)\n')
    console.log(crossInstance('single', { BENCH_REDIS_URL: single.url }))
    console.log('## Cross-instance deliveries/s, Redis Cluster (createShardedAdapter for Socket.IO)\n')
    console.log(crossInstance('cluster', { BENCH_REDIS_CLUSTER: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',') }))
  }
} finally {
  await single.stop()
  await replica.stop()
  await replicated.stop()
  await cluster.stop()
}
