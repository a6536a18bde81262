import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import { sleep, waitFor } from './wait.js'

export { sleep }

/** The shared Redis of the ordinary tests. Tests only touch keys under their own prefix. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

const HOW_TO_START = "redis-server --daemonize yes --port 6379 --save '' --appendonly no"

/**
 * Fails (never skips) with instructions when the shared Redis cannot be reached: a Redis test that
 * silently does not run proves nothing.
 */
export async function requireSharedRedis(): Promise<void> {
  const probe = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 })
  probe.on('error', () => {})
  try {
    await probe.connect()
    await probe.ping()
  } catch (error) {
    throw new Error(
      `Redis tests need a Redis at ${REDIS_URL} (set REDIS_URL to use another), and none answered (${(error as Error).message}).\n` +
        `Start one with: ${HOW_TO_START}`,
    )
  } finally {
    probe.disconnect()
  }
}

/** A key prefix no other test (or test run) uses, so tests share one Redis without a flush. */
export function uniquePrefix(label = 't'): string {
  return `rt-test:${label}:${process.pid}:${randomBytes(4).toString('hex')}:`
}

/** Deletes every key under `prefix` (never FLUSHALL/FLUSHDB: the shared Redis is not ours). */
export async function deleteKeys(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  let deleted = 0
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 500)
      cursor = next
      if (keys.length > 0) deleted += await redis.unlink(...keys)
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
  return deleted
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

/** A TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * A `redis-server` of the test's own, on a free port, without persistence: stopping it loses every
 * key, as a crash of a cache-only Redis would. Fault tests stop, restart and flush it freely.
 */
export class OwnRedisServer {
  private child: ChildProcess | undefined

  private constructor(
    readonly port: number,
    /** Extra `redis-server` arguments (e.g. `--cluster-enabled yes`, `--replicaof …`). */
    private readonly args: readonly string[] = [],
  ) {}

  /** Starts a server on a free port (or `port`) with extra `args` and waits until it answers. */
  static async start(options: { args?: readonly string[]; port?: number } = {}): Promise<OwnRedisServer> {
    const server = new OwnRedisServer(options.port ?? (await freePort()), options.args)
    await server.start()
    return server
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get running(): boolean {
    return this.child !== undefined
  }

  /** Starts the server (again, on the same port) and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.child) return
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...this.args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    this.child = child
    let failure: Error | undefined
    child.once('error', (error) => {
      failure = new Error(`cannot start redis-server (is it installed? apt-get install redis-server): ${error.message}`)
    })
    child.once('exit', () => {
      if (this.child === child) this.child = undefined
    })
    const deadline = Date.now() + 5000
    for (;;) {
      if (failure) throw failure
      if (await answers(this.url)) return
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not start within 5 s`)
      await sleep(50)
    }
  }

  /** Stops the server (SIGKILL by default, as a crash) and waits until the process is gone. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child
    if (!child) return
    this.child = undefined
    if (child.exitCode !== null || child.signalCode !== null) return
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve())
      child.kill(signal)
    })
  }

  /** Runs one command on this server from a fresh connection. */
  async command(...args: (string | number)[]): Promise<unknown> {
    const redis = new Redis(this.url, { maxRetriesPerRequest: 0, retryStrategy: () => null })
    redis.on('error', () => {})
    try {
      return await redis.call(String(args[0]), ...args.slice(1).map(String))
    } finally {
      redis.disconnect()
    }
  }
}

async function answers(url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 })
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
 * @deprecated `waitFor(check, timeoutMs, what)` from `./wait.js`, the one wait of the tests; this
 * is it with its arguments in the old order, for tests written before it.
 */
export function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  return waitFor(check, timeoutMs, what)
}
