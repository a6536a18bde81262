/**
 * Where the heap of an idle subscribed connection goes: starts one contender in this process,
 * opens N connections from a child process (the bench's wire client), each subscribed to its own
 * `user:<i>`, takes a heap snapshot before and after (both after GC), and prints the difference by
 * node type and constructor name (count and self bytes per connection), after the heap spaces'
 * committed sizes (new space, old space...) before and after.
 *
 *   node --expose-gc --import tsx bench/src/heap-per-connection.ts [realtime|baseline-ws] [N] [--keep] [--by-retainer] [--no-snapshot]
 *
 * `--by-retainer` names arrays, strings and plain objects after what holds them (`array <-
 * object:Set.table`); `--keep` leaves the two .heapsnapshot files in bench/results/profiles/ (for
 * Chrome DevTools); `--no-snapshot` prints only the heap spaces and RSS (snapshots inflate RSS).
 * `ulimit -n` must exceed N.
 */
import { fork } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import v8 from 'node:v8'
import { REPO_ROOT, sleep } from './ipc.js'
import { connectWire } from './wire.js'
import { touchYoungGeneration } from './young-generation.js'

const args = process.argv.slice(2)
const byRetainer = args.includes('--by-retainer')
const noSnapshot = args.includes('--no-snapshot')

if (args[0] === '--clients') {
  // Child: opens the connections and reports once every one is subscribed; stays until killed.
  const port = Number(args[1])
  const n = Number(args[2])
  let subscribed = 0
  let next = 0
  const openOne = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const sock = connectWire(port, '/ws', {
        onOpen: () => sock.send(JSON.stringify({ type: 'subscribe', id: 1, topic: `user:${i}` })),
        onText: (data) => {
          if (JSON.parse(data.toString()).type === 'subscribed') {
            subscribed++
            resolve()
          }
        },
        onClose: () => reject(new Error('closed')),
        onError: reject,
      })
    })
  const worker = async () => {
    while (next < n) await openOne(next++)
  }
  await Promise.all(Array.from({ length: 50 }, worker))
  process.send!({ subscribed })
  setInterval(() => {}, 1 << 30)
} else {
  const contender = (args[0] ?? 'realtime') as 'realtime' | 'baseline-ws'
  const n = Number(args[1] ?? 5000)
  const keep = args.includes('--keep')
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with node --expose-gc')
  const httpServer = http.createServer()
  const o = { http: httpServer, bus: 'memory', redisUrl: '', prefix: '', recovery: false, fromDist: false } as const
  const server =
    contender === 'realtime'
      ? await (await import('./contenders/realtime.js')).createRealtime(o)
      : await (await import('./contenders/baseline-ws.js')).createBaselineWs(o)
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', 4096, r))
  const port = (httpServer.address() as { port: number }).port
  const dir = path.join(REPO_ROOT, 'bench/results/profiles')
  mkdirSync(dir, { recursive: true })

  const snapshot = (name: string) => {
    gc()
    gc()
    const file = path.join(dir, `${contender}-${name}-${Date.now()}.heapsnapshot`)
    v8.writeHeapSnapshot(file)
    return file
  }
  const spaces = () => {
    gc()
    gc()
    const out: Record<string, number> = { rss: process.memoryUsage.rss(), heapUsed: process.memoryUsage().heapUsed }
    for (const sp of v8.getHeapSpaceStatistics()) out[sp.space_name] = sp.space_size
    return out
  }
  touchYoungGeneration(gc)
  await sleep(200)
  const spacesBefore = spaces()
  const before = noSnapshot ? '' : snapshot('before')
  const heapBefore = process.memoryUsage().heapUsed
  const child = fork(fileURLToPath(import.meta.url), ['--clients', String(port), String(n)], { execArgv: ['--import', 'tsx'] })
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    child.once('exit', (code) => reject(new Error(`clients exited ${code}`)))
  })
  await sleep(1000)
  const spacesAfter = spaces()
  const after = noSnapshot ? '' : snapshot('after')
  const heapAfter = process.memoryUsage().heapUsed
  child.kill('SIGKILL')

  if (noSnapshot) {
    console.log(`${contender}, ${n} idle subscribed connections`)
    console.log(
      Object.entries(spacesAfter)
        .filter(([k, v]) => v !== 0 || spacesBefore[k] !== 0)
        .map(([k, v]) => `${k} ${((v - (spacesBefore[k] ?? 0)) / n).toFixed(0)} B/conn (${((spacesBefore[k] ?? 0) / 2 ** 20).toFixed(1)} → ${(v / 2 ** 20).toFixed(1)} MiB)`)
        .join(', '),
    )
    await server.close()
    httpServer.close()
    process.exit(0)
  }
  const a = summarize(before)
  const b = summarize(after)
  const rows: { key: string; count: number; bytes: number }[] = []
  for (const [key, v] of b) {
    const w = a.get(key) ?? { count: 0, bytes: 0 }
    rows.push({ key, count: v.count - w.count, bytes: v.bytes - w.bytes })
  }
  rows.sort((x, y) => y.bytes - x.bytes)
  const total = rows.reduce((s, r) => s + r.bytes, 0)
  console.log(`${contender}, ${n} idle subscribed connections`)
  console.log(`heapUsed difference: ${((heapAfter - heapBefore) / n).toFixed(0)} B/conn; snapshot self-size difference: ${(total / n).toFixed(0)} B/conn\n`)
  console.log(
    'committed B/conn (before the snapshots):',
    Object.entries(spacesAfter)
      .filter(([k, v]) => v !== 0 || spacesBefore[k] !== 0)
      .map(([k, v]) => `${k} ${((v - (spacesBefore[k] ?? 0)) / n).toFixed(0)} (${((spacesBefore[k] ?? 0) / 2 ** 20).toFixed(1)} → ${(v / 2 ** 20).toFixed(1)} MiB)`)
      .join(', '),
    '\n',
  )
  console.log('objects/conn  bytes/conn  type:name')
  for (const r of rows.slice(0, 60)) {
    if (Math.abs(r.bytes / n) < 2) continue
    console.log(`${(r.count / n).toFixed(2).padStart(12)}  ${(r.bytes / n).toFixed(1).padStart(10)}  ${r.key}`)
  }
  if (!keep) {
    rmSync(before)
    rmSync(after)
  } else console.log(`\nsnapshots: ${before} ${after}`)
  await server.close()
  httpServer.close()
  process.exit(0)
}

/** Count and self size of the snapshot's nodes by `type:name` (strings and arrays by type only). */
function summarize(file: string): Map<string, { count: number; bytes: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8'))
  const meta = snap.snapshot.meta
  const fields: string[] = meta.node_fields
  const types: string[] = meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const nodes: number[] = snap.nodes
  const strings: string[] = snap.strings
  // Arrays, strings and property arrays are named after what holds them (first retainer and edge).
  const edgeFields: string[] = meta.edge_fields
  const edgeTypes: string[] = meta.edge_types[0]
  const edgeWidth = edgeFields.length
  const edges: number[] = snap.edges
  const edgeCountAt = fields.indexOf('edge_count')
  const holder = new Int32Array(nodes.length / width).fill(-1)
  const holderEdge: string[] = []
  for (let i = 0, e = 0; i < nodes.length; i += width) {
    const count = nodes[i + edgeCountAt]!
    for (let k = 0; k < count; k++, e += edgeWidth) {
      const target = edges[e + 2]! / width
      if (holder[target] !== -1) continue
      const edgeType = edgeTypes[edges[e]!]!
      if (edgeType === 'weak' || edgeType === 'shortcut') continue
      holder[target] = i / width
      const nameOrIndex = edges[e + 1]!
      holderEdge[target] = edgeType === 'element' || edgeType === 'hidden' ? `[${edgeType}]` : strings[nameOrIndex]!
    }
  }
  const plain = (j: number) => {
    const type = types[nodes[j * width + typeAt]!]!
    return `${type}:${strings[nodes[j * width + nameAt]!]!.slice(0, 40)}`
  }
  const out = new Map<string, { count: number; bytes: number }>()
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]!]!
    const name = strings[nodes[i + nameAt]!]!
    const byName = type === 'object' || type === 'closure' || type === 'hidden' || type === 'native' || type === 'code'
    let key = byName ? `${type}:${name.slice(0, 60)}` : type
    if (byRetainer && (type === 'array' || type === 'string' || type === 'concatenated string' || name === 'system / PropertyArray' || name === 'Object' || name === 'Array')) {
      const h = holder[i / width]!
      key += h >= 0 ? ` <- ${plain(h)}.${holderEdge[i / width]}` : ' <- (root)'
    }
    const v = out.get(key) ?? { count: 0, bytes: 0 }
    v.count++
    v.bytes += nodes[i + sizeAt]!
    out.set(key, v)
  }
  return out
}
