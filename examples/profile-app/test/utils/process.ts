import { spawn, type ChildProcess } from 'node:child_process'
import { repoRoot } from './paths.js'

/** A server process started the way the README starts it (`npm run start -w profile-app`). */
export interface AppProcess {
  url: string
  output(): string
  stop(): Promise<void>
}

/**
 * Starts the app's `start` script (the demo: dev login on, user 1 admin) with `env` on a free
 * port (PORT=0; the URL is read from what the server prints).
 */
export async function startAppProcess(env: Record<string, string>): Promise<AppProcess> {
  const child: ChildProcess = spawn('npm', ['run', 'start', '-w', 'profile-app', '--silent'], {
    cwd: repoRoot,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    // Its own process group, so that stopping it also stops the node process npm started.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    try {
      process.kill(-child.pid!, 'SIGTERM')
    } catch {
      return
    }
    const killer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }, 5000)
    await exited
    clearTimeout(killer)
  }

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the app did not start in 30 s:\n${output}`)), 30_000)
    const check = () => {
      const match = /running at (http:\/\/\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        child.stdout!.off('data', check)
        resolve(match[1]!.replace('localhost', '127.0.0.1'))
      }
    }
    child.stdout!.on('data', check)
    void exited.then(() => {
      clearTimeout(timer)
      reject(new Error(`the app exited before it listened:\n${output}`))
    })
  }).catch(async (error: unknown) => {
    await stop()
    throw error
  })
  return { url, output: () => output, stop }
}

/** A JSON request to a running app (`url` is its base URL), with a session token when given. */
export async function apiRequest(url: string, method: string, path: string, token: string | null, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(url + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  return { status: response.status, body: (await response.json()) as any }
}
