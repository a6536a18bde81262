import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const FIXTURE = fileURLToPath(new URL('../fixtures/redis-instance.ts', import.meta.url))

/** A server instance running `test/fixtures/redis-instance.ts` in a child process. */
export interface Instance {
  readonly port: number
  /** The WebSocket URL of its realtime endpoint. */
  readonly url: string
  readonly process: ChildProcess
  /** Publishes `{"n":from}` … `{"n":to}` on `topic`, in order, from this instance. */
  publish(topic: string, from: number, to: number): Promise<{ published: number; failed: { n: number; code: string }[] }>
  stats(): Promise<{ stats: Record<string, unknown>; subscribedTopics: string[] }>
  /** Whether `GET /healthz` answers 200 (bus up, not draining): ready for the load balancer. */
  ready(): Promise<boolean>
  /**
   * Drains (`close()`, over the instance's `drainMs`) and exits; resolves with when each of its
   * connections was accepted (`Date.now()`) and its last stats.
   */
  drain(): Promise<{ opens: number[]; stats: Record<string, unknown> }>
  /** When each connection was accepted so far (`Date.now()`). */
  opens(): Promise<number[]>
  /** Ends the process with `signal` (SIGTERM: graceful close) and waits for its exit. */
  stop(signal?: NodeJS.Signals): Promise<void>
}

/** Starts an instance sharing `redisUrl` (keys under `prefix`) and waits until it listens. */
export async function startInstance(options: {
  redisUrl: string
  prefix: string
  historySize?: number
  /** `close()`'s window (the server's `drainMs`). Default 5000. */
  drainMs?: number
  /** The server's `rebalance` option. Default off. */
  rebalance?: true | { intervalMs?: number; tolerance?: number; maxPerInterval?: number }
}): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: {
      ...process.env,
      REDIS_URL: options.redisUrl,
      REDIS_PREFIX: options.prefix,
      HISTORY_SIZE: String(options.historySize ?? 100),
      DRAIN_MS: String(options.drainMs ?? 5000),
      REBALANCE: options.rebalance ? JSON.stringify(options.rebalance === true ? {} : options.rebalance) : '',
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const pending = new Map<number, (value: never) => void>()
  let nextId = 1
  let exited = false
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true
      resolve()
    }),
  )
  const port = await new Promise<number>((resolve, reject) => {
    // Generous: on a loaded machine a fresh `node --import tsx` process takes seconds to compile.
    const timer = setTimeout(() => reject(new Error('instance did not start within 30 s')), 30_000)
    child.once('exit', (code) => reject(new Error(`instance exited with ${code} before listening`)))
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as { ready?: number; id?: number }
      if (message.ready !== undefined) {
        clearTimeout(timer)
        resolve(message.ready)
      } else if (message.id !== undefined) {
        pending.get(message.id)?.(message as never)
        pending.delete(message.id)
      }
    })
  })
  const request = <T>(command: Record<string, unknown>): Promise<T> => {
    const id = nextId++
    return new Promise<T>((resolve) => {
      pending.set(id, resolve as (value: never) => void)
      child.stdin!.write(JSON.stringify({ id, ...command }) + '\n')
    })
  }
  return {
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    process: child,
    publish: (topic, from, to) => request({ cmd: 'publish', topic, from, to }),
    stats: () => request({ cmd: 'stats' }),
    async ready() {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined)
      return response?.status === 200
    },
    drain: () => request({ cmd: 'drain' }),
    opens: async () => (await request<{ opens: number[] }>({ cmd: 'opens' })).opens,
    async stop(signal = 'SIGTERM') {
      if (exited) return
      child.kill(signal)
      await exit
    },
  }
}
