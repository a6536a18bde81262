import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { OwnRedisServer, freePort } from './redis.js'
import { sleep } from './wait.js'

const run = promisify(execFile)

/** One node of `CLUSTER NODES`: its id, port, role and the primary it replicates. */
export interface ClusterNodeInfo {
  id: string
  port: number
  role: 'master' | 'slave'
  /** The id of its primary (replicas only). */
  primaryId?: string
  /** Slot ranges it serves, e.g. `['0-5460']` (primaries only). */
  slots: string[]
  failed: boolean
}

/**
 * A Redis Cluster of the test's own: 3 primaries and 3 replicas (`redis-server --cluster-enabled yes`
 * on free ports, `--cluster-node-timeout 1000`), created with `redis-cli --cluster create` and ready
 * (`cluster_state:ok` on every node). Start it once per file in `beforeAll`, `stop()` in `afterAll`.
 */
export class OwnRedisCluster {
  private constructor(
    readonly servers: OwnRedisServer[],
    private readonly dir: string,
  ) {}

  static async start(options: { primaries?: number } = {}): Promise<OwnRedisCluster> {
    const primaries = options.primaries ?? 3
    const dir = await mkdtemp(join(tmpdir(), 'rt-cluster-'))
    const servers: OwnRedisServer[] = []
    try {
      for (let i = 0; i < primaries * 2; i++) {
        const port = await freePort()
        servers.push(
          await OwnRedisServer.start({
            port,
            args: [
              '--cluster-enabled', 'yes',
              '--cluster-config-file', join(dir, `nodes-${port}.conf`),
              '--cluster-node-timeout', '1000',
              '--dir', dir,
            ],
          }),
        )
      }
      const cluster = new OwnRedisCluster(servers, dir)
      await run('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '1', '--cluster-yes'], {
        timeout: 20_000,
      })
      await cluster.waitUntilOk()
      return cluster
    } catch (error) {
      for (const server of servers) await server.stop()
      await rm(dir, { recursive: true, force: true })
      throw error
    }
  }

  /** Seed nodes for ioredis `Cluster`. */
  get nodes(): { host: string; port: number }[] {
    return this.servers.map((s) => ({ host: '127.0.0.1', port: s.port }))
  }

  server(port: number): OwnRedisServer {
    const server = this.servers.find((s) => s.port === port)
    if (!server) throw new Error(`no node on port ${port}`)
    return server
  }

  /** `CLUSTER NODES` as seen by a running node. */
  async topology(): Promise<ClusterNodeInfo[]> {
    for (const server of this.servers) {
      if (!server.running) continue
      try {
        const text = String(await server.command('CLUSTER', 'NODES'))
        return text
          .trim()
          .split('\n')
          .map((line) => {
            const [id, address, flags, primary, , , , , ...slots] = line.split(' ')
            const f = (flags ?? '').split(',')
            return {
              id: id!,
              port: Number(address!.split('@')[0]!.split(':')[1]),
              role: f.includes('master') ? 'master' : 'slave',
              primaryId: primary === '-' ? undefined : primary,
              slots: slots.filter((s) => !s.startsWith('[')),
              failed: f.includes('fail') || f.includes('fail?'),
            } as ClusterNodeInfo
          })
      } catch {
        // Try the next node.
      }
    }
    throw new Error('no cluster node answers')
  }

  /** The running primaries with slots, by port. */
  async primaries(): Promise<ClusterNodeInfo[]> {
    return (await this.topology()).filter((n) => n.role === 'master' && !n.failed && n.slots.length > 0)
  }

  /** The port of the primary serving `key`'s slot. */
  async primaryOf(key: string): Promise<number> {
    for (const server of this.servers) {
      if (!server.running) continue
      const slot = Number(await server.command('CLUSTER', 'KEYSLOT', key))
      for (const node of await this.primaries()) {
        for (const range of node.slots) {
          const [a, b] = range.split('-').map(Number)
          if (slot >= a! && slot <= (b ?? a!)) return node.port
        }
      }
    }
    throw new Error(`no primary serves ${key}`)
  }

  /** The running replica of the primary on `port`. */
  async replicaOf(port: number): Promise<number> {
    const nodes = await this.topology()
    const primary = nodes.find((n) => n.port === port)
    const replica = nodes.find((n) => n.primaryId === primary?.id && !n.failed && this.server(n.port).running)
    if (!replica) throw new Error(`no replica of ${port}`)
    return replica.port
  }

  /**
   * Waits until every running node reports `cluster_state:ok`, there are 3 running primaries with
   * slots, and every running replica is in sync with its primary.
   */
  async waitUntilOk(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      let ok = true
      for (const server of this.servers) {
        if (!server.running) continue
        const info = String(await server.command('CLUSTER', 'INFO').catch(() => ''))
        if (!info.includes('cluster_state:ok')) ok = false
      }
      if (ok) {
        const nodes = await this.topology().catch(() => [])
        const primaries = nodes.filter((n) => n.role === 'master' && !n.failed && n.slots.length > 0)
        let synced = true
        // Every replica has finished its sync with its primary: a failover then loses nothing.
        for (const replica of nodes.filter((n) => n.role === 'slave' && this.server(n.port).running)) {
          const info = String(await this.command(replica.port, 'INFO', 'replication').catch(() => ''))
          if (!info.includes('master_link_status:up') || info.includes('master_sync_in_progress:1')) synced = false
        }
        if (synced && primaries.length === this.servers.length / 2 && primaries.every((p) => this.server(p.port).running)) return
      }
      if (Date.now() > deadline) throw new Error(`cluster not ok within ${timeoutMs} ms`)
      await sleep(100)
    }
  }

  /** Runs one command on the node on `port`. */
  command(port: number, ...args: (string | number)[]): Promise<unknown> {
    return this.server(port).command(...args)
  }

  /** A plain connection to one node (the caller disconnects it). */
  connect(port: number): Redis {
    const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0, retryStrategy: () => null })
    redis.on('error', () => {})
    return redis
  }

  /** Deletes every key under `prefix` on every primary. */
  async deleteKeys(prefix: string): Promise<void> {
    for (const node of await this.primaries()) {
      const redis = this.connect(node.port)
      try {
        let cursor = '0'
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`, 'COUNT', 500)
          cursor = next
          // One key at a time: a cluster node refuses multi-key commands across slots.
          for (const key of keys) await redis.unlink(key)
        } while (cursor !== '0')
      } finally {
        redis.disconnect()
      }
    }
  }

  async stop(): Promise<void> {
    for (const server of this.servers) await server.stop()
    await rm(this.dir, { recursive: true, force: true })
  }
}
