import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
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
 * A `redis-server` process of the test's own on a free port, without persistence, for tests that
 * stop and start the bus's Redis (the shared one must stay up for the other tests).
 */
export class OwnRedis {
  private child: ChildProcess | undefined

  private constructor(readonly port: number) {}

  static async start(): Promise<OwnRedis> {
    const redis = new OwnRedis(await freePort())
    await redis.start()
    return redis
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Starts it (again, on the same port) and waits until it answers PING, at most 5 s. */
  async start(): Promise<void> {
    if (this.child) return
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    })
    this.child = child
    let failure: Error | undefined
    child.once('error', (error) => (failure = new Error(`cannot start redis-server (apt-get install redis-server): ${error.message}`)))
    child.once('exit', () => {
      if (this.child === child) this.child = undefined
    })
    const deadline = Date.now() + 5000
    while (!(await answers(this.url))) {
      if (failure) throw failure
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not start within 5 s`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  /** Kills it (as a crash) and waits until the process is gone. */
  async stop(): Promise<void> {
    const child = this.child
    this.child = undefined
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve())
      child.kill('SIGKILL')
    })
  }
}
