/**
 * Summarizes `.cpuprofile` files (from `node --cpu-prof`): self time by function and by package
 * (node internals, ws, socket.io, @app/realtime, GC, idle), so that two contenders' profiles can be
 * compared side by side.  Usage: tsx bench/src/profile-summary.ts <file.cpuprofile>... [--top 25] [--during fn]
 *
 * `--during publishLoop` keeps only the samples from the first to the last one taken inside that
 * function (the bench server's publish phase), leaving out start-up and the connection phase.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}
interface Profile {
  nodes: Node[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

const args = process.argv.slice(2)
const topIdx = args.indexOf('--top')
const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 25
const duringIdx = args.indexOf('--during')
const during = duringIdx >= 0 ? args[duringIdx + 1] : undefined
const files = args.filter((a, i) => !a.startsWith('--') && (topIdx < 0 || i !== topIdx + 1) && (duringIdx < 0 || i !== duringIdx + 1))

function category(url: string, fn: string): string {
  if (fn === '(idle)') return '(idle)'
  if (fn === '(garbage collector)') return '(gc)'
  if (fn === '(program)') return '(program: native, incl. syscalls)'
  if (!url) return '(native)'
  if (url.includes('packages/realtime/')) return '@app/realtime'
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  if (url.startsWith('node:')) return 'node core'
  if (url.includes('/bench/')) return 'bench harness'
  return 'other'
}

for (const file of files) {
  const p: Profile = JSON.parse(readFileSync(file, 'utf8'))
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  let first = 0
  let last = p.samples.length - 1
  if (during !== undefined) {
    const parent = new Map<number, number>()
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
    const inside = (id: number) => {
      for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) if (byId.get(x)!.callFrame.functionName === during) return true
      return false
    }
    first = p.samples.findIndex(inside)
    last = first < 0 ? -1 : p.samples.findLastIndex(inside)
    if (first < 0) console.log(`\n${path.basename(file)}: no sample inside ${during}`)
  }
  const self = new Map<number, number>()
  for (let i = first; i >= 0 && i <= last; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0))
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  const idle = [...self.entries()].filter(([id]) => byId.get(id)!.callFrame.functionName === '(idle)').reduce((a, [, v]) => a + v, 0)
  const busy = total - idle
  const byFn = new Map<string, number>()
  const byCat = new Map<string, number>()
  for (const [id, us] of self) {
    const n = byId.get(id)!
    const { functionName, url, lineNumber } = n.callFrame
    if (functionName === '(idle)') continue
    const key = `${functionName || '(anonymous)'} ${url ? `${path.basename(url)}:${lineNumber + 1}` : ''}`
    byFn.set(key, (byFn.get(key) ?? 0) + us)
    const cat = category(url, functionName)
    byCat.set(cat, (byCat.get(cat) ?? 0) + us)
  }
  console.log(`\n== ${path.basename(file)}${during ? ` (during ${during})` : ''}: ${(total / 1e3).toFixed(0)} ms sampled, ${(busy / 1e3).toFixed(0)} ms busy`)
  console.log('-- self time by package (% of busy)')
  for (const [k, v] of [...byCat].sort((a, b) => b[1] - a[1])) console.log(`  ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`)
  console.log(`-- top ${top} functions by self time (% of busy)`)
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`)
}
