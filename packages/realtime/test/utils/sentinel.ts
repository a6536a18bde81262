import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { OwnRedisServer, freePort } from './redis.js'
import { sleep, waitFor } from './wait.js'

/** The name every test sentinel monitors its primary under. */
export const SENTINEL_MASTER_NAME = 'rtprimary'

/** One `redis-server --sentinel` of the test's own, with its writable config in a tmp dir. */
class OwnSentinel {
  private child: ChildProcess | undefined

  constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  async start(primaryPort: number, timing: { downAfterMs: number; failoverTimeoutMs: number }): Promise<void> {
    const conf = join(this.dir, `sentinel-${this.port}.conf`)
    await writeFile(
      conf,
      [
        `port ${this.port}`,
        'bind 127.0.0.1',
        `dir ${this.dir}`,
        `sentinel monitor ${SENTINEL_MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} ${timing.downAfterMs}`,
        `sentinel failover-timeout ${SENTINEL_MASTER_NAME} ${timing.failoverTimeoutMs}`,
        `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
        '',
      ].join('\n'),
    )
    this.child = spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'ignore', 'pipe'] })
    this.child.once('exit', () => (this.child = undefined))
    await waitFor(() => answers(this.port), 5000, `sentinel on ${this.port} to answer`)
  }

  async stop(): Promise<void> {
    const child = this.child
    if (!child || child.exitCode !== null) return
    this.child = undefined
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve())
      child.kill('SIGKILL')
    })
  }

  /** Runs one command on this sentinel from a fresh connection. */
  async command(...args: string[]): Promise<unknown> {
    const redis = new Redis({ port: this.port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false })
    redis.on('error', () => {})
    try {
      return await redis.call(args[0] as string, ...args.slice(1))
    } finally {
      redis.disconnect()
    }
  }
}

async function answers(port: number): Promise<boolean> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500, enableReadyCheck: false })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return (await redis.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    redis.disconnect()
  }
}

/**
 * A TCP relay in front of the primary (everyone reaches it through the relay, so the sentinels see
 * nothing to correct in the replica's configuration) that can stop passing on the bytes of its
 * replication connections (those that sent `REPLCONF`/`PSYNC`), both ways and silently: no FIN,
 * no RST. The replica then sees a healthy link that carries nothing, and what the primary
 * confirms from then on is not replicated; every other connection works as before.
 */
export class ReplicationLink {
  private readonly sockets = new Set<Socket>()
  private readonly replication = new WeakSet<Socket>()
  private held = false

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<ReplicationLink> {
    const port = await freePort()
    let link: ReplicationLink | undefined
    const server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1')
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        link?.sockets.add(from)
        from.on('data', (chunk: Buffer) => {
          if (!link) return
          if (from === client && !link.replication.has(client) && /REPLCONF|PSYNC/i.test(chunk.toString('latin1'))) {
            link.replication.add(client)
            link.replication.add(upstream)
          }
          if (!(link.held && link.replication.has(from))) to.write(chunk)
        })
        from.on('close', () => {
          link?.sockets.delete(from)
          to.destroy()
        })
        from.on('error', () => undefined)
      }
    })
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    link = new ReplicationLink(server, port)
    return link
  }

  /** From now on, drops every byte of the replication connections in both directions. */
  hold(): void {
    this.held = true
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

/** Options of `SentinelSet.start`. */
export interface SentinelSetOptions {
  /** `down-after-milliseconds` of the sentinels. Default 1000. */
  downAfterMs?: number
  /** `failover-timeout`. Default 3000. */
  failoverTimeoutMs?: number
  /** Connect the replica to the primary through a `ReplicationLink` (to hold replication). */
  holdableLink?: boolean
}

/**
 * A primary, one replica (`--replicaof`) and three sentinels (quorum 2), each on a free port,
 * without persistence. `failover()` and `killPrimary()` make the replica the primary; the old
 * primary (restarted empty after a kill) is turned into a replica by the sentinels.
 */
export class SentinelSet {
  private constructor(
    readonly nodes: OwnRedisServer[],
    readonly sentinels: OwnSentinel[],
    private readonly dir: string,
    /** The link the replica replicates through, with `holdableLink`. */
    readonly link: ReplicationLink | undefined,
  ) {}

  static async start(options: SentinelSetOptions = {}): Promise<SentinelSet> {
    const dir = await mkdtemp(join(tmpdir(), 'rt-sentinel-'))
    // In the tmp dir: a replica's full sync writes an RDB file into the working directory.
    const primary = await OwnRedisServer.start({ args: ['--dir', dir] })
    const link = options.holdableLink ? await ReplicationLink.start(primary.port) : undefined
    const primaryPort = link ? link.port : primary.port
    const replica = await OwnRedisServer.start({
      args: ['--dir', dir, '--replicaof', '127.0.0.1', String(primaryPort), '--repl-timeout', '60'],
    })
    const timing = { downAfterMs: options.downAfterMs ?? 1000, failoverTimeoutMs: options.failoverTimeoutMs ?? 3000 }
    const sentinels: OwnSentinel[] = []
    for (let i = 0; i < 3; i++) sentinels.push(new OwnSentinel(await freePort(), dir))
    await Promise.all(sentinels.map((s) => s.start(primaryPort, timing)))
    const set = new SentinelSet([primary, replica], sentinels, dir, link)
    await set.settled()
    return set
  }

  /** `{ host, port }` of each sentinel, as `RedisBus`'s `sentinel.sentinels` takes them. */
  get addresses(): { host: string; port: number }[] {
    return this.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port }))
  }

  get name(): string {
    return SENTINEL_MASTER_NAME
  }

  /** The port of the primary as the first answering sentinel reports it. */
  async primaryPort(): Promise<number> {
    for (const sentinel of this.sentinels) {
      const reply = await sentinel.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER_NAME).catch(() => undefined)
      if (Array.isArray(reply)) return Number(reply[1])
    }
    throw new Error('no sentinel answered')
  }

  async primary(): Promise<OwnRedisServer> {
    return this.nodeAt(await this.primaryPort())
  }

  /** The node at `port` as the sentinels name it (the first primary's is the relay's, with `holdableLink`). */
  nodeAt(port: number): OwnRedisServer {
    const node = this.link?.port === port ? this.nodes[0] : this.nodes.find((n) => n.port === port)
    if (!node) throw new Error(`the sentinels name an unknown node ${port}`)
    return node
  }

  /**
   * Waits until every sentinel knows the other two and a replica in sync, and the replica's link
   * is up: a failover can then run (sentinels elect a leader among the ones they know).
   */
  async settled(timeoutMs = 20_000): Promise<void> {
    const started = Date.now()
    const port = await this.primaryPort()
    const primary = this.nodeAt(port)
    const replica = this.nodes.find((n) => n !== primary) as OwnRedisServer
    await waitFor(
      async () => {
        const info = String(await replica.command('INFO', 'replication').catch(() => ''))
        if (!info.includes('master_link_status:up') || !info.includes(`master_port:`)) return false
        for (const sentinel of this.sentinels) {
          const master = (await sentinel.command('SENTINEL', 'MASTER', SENTINEL_MASTER_NAME).catch(() => [])) as string[]
          const field = (name: string) => master[master.indexOf(name) + 1]
          if (Number(field('port')) !== port) return false
          if (Number(field('num-other-sentinels')) < 2 || Number(field('num-slaves')) < 1) return false
          if (String(field('flags')) !== 'master') return false
          const replicas = (await sentinel.command('SENTINEL', 'REPLICAS', SENTINEL_MASTER_NAME).catch(() => [])) as string[][]
          // Not the sentinels' 'master-link-status' (refreshed every 10 s): a replica whose link was
          // down for a moment at their last look is still eligible; its own INFO says it is in sync.
          const ok = replicas.some((r) => String(r[r.indexOf('flags') + 1]) === 'slave' && Number(r[r.indexOf('port') + 1]) === replica.port)
          if (!ok) return false
        }
        return true
      },
      timeoutMs,
      'the sentinels to know each other and an in-sync replica',
    )
    this.settleMs.push(Date.now() - started)
  }

  /** How long each `settled()` waited, in ms (for the reports). */
  readonly settleMs: number[] = []

  /** `SENTINEL FAILOVER`, then waits until the sentinels name the other node. Returns the new primary's port. */
  async failover(timeoutMs = 15_000): Promise<number> {
    const before = await this.primaryPort()
    await this.sentinels[0]?.command('SENTINEL', 'FAILOVER', SENTINEL_MASTER_NAME)
    return this.switched(before, timeoutMs)
  }

  /**
   * SIGKILLs the primary, waits until the sentinels promote the replica, then restarts the old
   * node (empty) so that the sentinels make it a replica. With `force`, asks for the failover at
   * once (`SENTINEL FAILOVER`) instead of waiting for `down-after-milliseconds`.
   */
  async killPrimary(options: { force?: boolean; restart?: boolean; timeoutMs?: number } = {}): Promise<number> {
    const before = await this.primaryPort()
    const primary = this.nodeAt(before)
    await primary.stop('SIGKILL')
    if (options.force) {
      // Retried: a sentinel refuses while it still sees the replica's last INFO as too old.
      await waitFor(
        async () => (await this.sentinels[0]?.command('SENTINEL', 'FAILOVER', SENTINEL_MASTER_NAME).then(() => true, () => false)) ?? false,
        5000,
        'SENTINEL FAILOVER to be accepted',
      )
    }
    const port = await this.switched(before, options.timeoutMs ?? 20_000)
    if (options.restart !== false) await primary.start()
    return port
  }

  private async switched(before: number, timeoutMs: number): Promise<number> {
    let now = before
    await waitFor(
      async () => {
        now = await this.primaryPort()
        if (now === before) return false
        const node = this.nodeAt(now)
        const role = String(await node?.command('ROLE').then((r) => (r as unknown[])[0], () => ''))
        return role === 'master'
      },
      timeoutMs,
      'the sentinels to promote the replica',
    )
    return now
  }

  async stop(): Promise<void> {
    await Promise.all(this.sentinels.map((s) => s.stop()))
    await this.link?.close()
    await Promise.all(this.nodes.map((n) => n.stop()))
    await rm(this.dir, { recursive: true, force: true })
    await sleep(0)
  }
}
