/**
 * Request/response over the Node IPC channel between the orchestrator and its server and client
 * processes, and the spawning of those processes pinned to a core with `taskset`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

/** Microseconds on CLOCK_MONOTONIC: the same clock in every process of the machine. */
export function nowUs(): number {
  const [s, ns] = process.hrtime()
  return s * 1e6 + Math.floor(ns / 1e3)
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/**
 * This process's soft limit of open files (Infinity where /proc is not there). Node raises its soft
 * limit to the hard limit at start-up, so this is `ulimit -Hn` of the shell that started the bench.
 */
export function openFilesLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0]
    return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft)
  } catch {
    return Infinity
  }
}

let tasksetChecked: boolean | undefined
export function hasTaskset(): boolean {
  if (tasksetChecked === undefined) {
    tasksetChecked = spawnSync('taskset', ['-c', '0', 'true']).status === 0
  }
  return tasksetChecked
}

const children = new Set<ChildProcess>()
function killAll() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }
}
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll()
    process.exit(130)
  })
}

interface Pending {
  resolve: (v: any) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
}

/** A child process spoken to by requests with ids. */
export class Peer {
  private nextId = 1
  private pending = new Map<number, Pending>()
  private exited: Promise<void>
  readonly events: Record<string, any>[] = []
  private eventWaiters: ((m: any) => void)[] = []

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    children.add(child)
    child.on('message', (m: any) => {
      if (m && typeof m.id === 'number' && this.pending.has(m.id)) {
        const p = this.pending.get(m.id)!
        this.pending.delete(m.id)
        clearTimeout(p.timer)
        if (m.ok) p.resolve(m.result)
        else p.reject(new Error(`${name}: ${m.error}`))
      } else {
        this.events.push(m)
        for (const w of this.eventWaiters.splice(0)) w(m)
      }
    })
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        children.delete(child)
        for (const p of this.pending.values()) {
          clearTimeout(p.timer)
          p.reject(new Error(`${name} exited (code ${code}, signal ${signal})`))
        }
        this.pending.clear()
        resolve()
      })
    })
  }

  /** Waits for an unsolicited message of a given type (e.g. 'listening'). */
  async waitEvent(type: string, timeoutMs: number): Promise<any> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const i = this.events.findIndex((e) => e.type === type)
      if (i >= 0) return this.events.splice(i, 1)[0]
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`${this.name}: no '${type}' within ${timeoutMs} ms`)
      await Promise.race([
        new Promise((r) => this.eventWaiters.push(r)),
        sleep(left),
        this.exited.then(() => {
          throw new Error(`${this.name} exited before '${type}'`)
        }),
      ])
    }
  }

  request<T = any>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`${this.name}: '${cmd}' timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      this.child.send({ id, cmd, ...args })
    })
  }

  /** Asks the process to exit, then kills it if it has not within `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    try {
      this.child.send({ id: 0, cmd: 'exit' })
    } catch {
      /* channel already closed */
    }
    await Promise.race([this.exited, sleep(graceMs)])
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL')
      await this.exited
    }
  }
}

export interface SpawnOptions {
  name: string
  script: string
  core?: number
  args?: string[]
  nodeArgs?: string[]
  env?: Record<string, string>
}

/** Starts `bench/src/<script>` under tsx, pinned to `core` when taskset works. */
export function spawnPeer(o: SpawnOptions): Peer {
  const node = [
    ...(o.nodeArgs ?? []),
    '--import',
    'tsx',
    path.join(REPO_ROOT, 'bench/src', o.script),
    ...(o.args ?? []),
  ]
  const pinned = o.core !== undefined && hasTaskset()
  const cmd = pinned ? 'taskset' : process.execPath
  const argv = pinned ? ['-c', String(o.core), process.execPath, ...node] : node
  const child = spawn(cmd, argv, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...o.env },
  })
  return new Peer(o.name, child)
}

/** Child side: answers requests with the handlers given. `exit` is built in. */
export function serve(handlers: Record<string, (msg: any) => unknown>, onExit?: () => Promise<void> | void) {
  process.on('message', async (msg: any) => {
    if (msg.cmd === 'exit') {
      try {
        await onExit?.()
      } finally {
        process.exit(0)
      }
    }
    const h = handlers[msg.cmd]
    try {
      if (!h) throw new Error(`unknown command ${msg.cmd}`)
      const result = await h(msg)
      process.send!({ id: msg.id, ok: true, result })
    } catch (err) {
      process.send!({ id: msg.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) })
    }
  })
  // The orchestrator went away: do not linger.
  process.on('disconnect', () => process.exit(0))
}
