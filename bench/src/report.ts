/** Best-of-k aggregation, the printed tables and ratios, the results JSON and the latency plot. */
import { isRealtime, type ContenderName } from './contenders/types.js'
import type { Row } from './scenarios.js'

export interface Best {
  scenario: string
  phase: string
  size: number
  contender: ContenderName
  rounds: number
  [k: string]: unknown
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : NaN)
const maxOf = (rs: Row[], k: string) => Math.max(...rs.map((r) => num(r[k])).filter((v) => !Number.isNaN(v)))
const minOf = (rs: Row[], k: string) => Math.min(...rs.map((r) => num(r[k])).filter((v) => !Number.isNaN(v)))

/**
 * Best of k, figure by figure: the highest deliveries/s, the lowest CPU per delivery, the latency
 * of the round with the lowest p99, the lowest memory; but the worst loss, drops and peak RSS
 * (a loss in any round is a loss).
 */
export function aggregate(rows: Row[]): Best[] {
  const groups = new Map<string, Row[]>()
  for (const r of rows) {
    const k = `${r.scenario}\u0000${r.phase}\u0000${r.size}\u0000${r.contender}`
    if (!groups.has(k)) groups.set(k, [])
    groups.get(k)!.push(r)
  }
  const out: Best[] = []
  for (const rs of groups.values()) {
    const r0 = rs[0]!
    const b: Best = { scenario: r0.scenario, phase: r0.phase, size: r0.size, contender: r0.contender, rounds: rs.length }
    if (r0.multiTopicPath !== undefined) b.multiTopicPath = r0.multiTopicPath
    if (r0.scenario === 'memory') {
      b.rssPerConnKB = minOf(rs, 'rssPerConnKB')
      b.heapPerConnKB = minOf(rs, 'heapPerConnKB')
      b.connections = minOf(rs, 'connections')
      b.clientProcesses = maxOf(rs, 'clientProcesses')
      b.lost = 0
    } else if (r0.scenario === 'recovery') {
      b.recoverMs = minOf(rs, 'recoverMs')
      b.recovered = minOf(rs, 'recovered')
      b.resynced = maxOf(rs, 'resynced')
      b.lost = maxOf(rs, 'lost')
      b.timedOutRounds = rs.filter((r) => r.timedOut).length
    } else {
      const byP99 = [...rs].sort((a, z) => num(a.p99Ms) - num(z.p99Ms))[0]!
      b.deliveriesPerSec = maxOf(rs, 'deliveriesPerSec')
      b.cpuPerDeliveryUs = minOf(rs, 'cpuPerDeliveryUs')
      b.kernelShare = rs.find((r) => r.cpuPerDeliveryUs === b.cpuPerDeliveryUs)?.kernelShare
      b.p50Ms = byP99.p50Ms
      b.p99Ms = byP99.p99Ms
      b.maxMs = byP99.maxMs
      b.lost = maxOf(rs, 'lost')
      b.dupes = maxOf(rs, 'dupes')
      b.unexpectedCloses = maxOf(rs, 'unexpectedCloses')
      b.serverCpuPct = maxOf(rs, 'serverCpuPct')
      b.clientCpuPct = maxOf(rs, 'clientCpuPct')
      b.peakRssMB = maxOf(rs, 'peakRssMB')
      b.foreignCpuPct = rs.find((r) => r.deliveriesPerSec === b.deliveriesPerSec)?.foreignCpuPct
      b.rejected = maxOf(rs, 'rejected')
    }
    out.push(b)
  }
  return out
}

function fmt(v: unknown, d = 1): string {
  if (typeof v !== 'number') return v === undefined ? '' : String(v)
  if (!Number.isFinite(v)) return '—'
  return v >= 10_000 ? Math.round(v).toLocaleString('en-US') : v.toFixed(d)
}

function table(headers: string[], body: string[][]): string {
  const w = headers.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`
  return [line(headers), `|${w.map((n, i) => (i < 3 ? ':' : '-') + '-'.repeat(n) + (i < 3 ? '-' : ':')).join('|')}|`, ...body.map(line)].join('\n')
}

/** Markdown tables of the best figures, one per kind of scenario. */
export function tables(best: Best[]): string {
  const parts: string[] = []
  const flow = best.filter((b) => b.scenario !== 'memory' && b.scenario !== 'recovery')
  if (flow.length) {
    parts.push(
      table(
        ['scenario', 'phase', 'contender', 'n', 'deliveries/s', 'µs CPU/delivery', 'kernel %', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'srv CPU %', 'cli CPU %', 'other CPU %', 'peak RSS MB'],
        flow.map((b) => [
          b.scenario,
          b.phase,
          b.contender,
          String(b.size),
          fmt(b.deliveriesPerSec, 0),
          fmt(b.cpuPerDeliveryUs, 2),
          fmt(100 * num(b.kernelShare), 0),
          fmt(b.p50Ms, 2),
          fmt(b.p99Ms, 2),
          fmt(b.maxMs, 1),
          fmt(b.lost, 0),
          fmt(b.serverCpuPct, 0),
          fmt(b.clientCpuPct, 0),
          fmt(b.foreignCpuPct, 0),
          fmt(b.peakRssMB, 0),
        ]),
      ),
    )
  }
  const mem = best.filter((b) => b.scenario === 'memory')
  if (mem.length) {
    parts.push(
      table(
        ['scenario', 'phase', 'contender', 'connections', 'client processes', 'RSS KB/conn', 'heap KB/conn'],
        mem.map((b) => [b.scenario, b.phase, b.contender, fmt(b.connections, 0), fmt(b.clientProcesses, 0), fmt(b.rssPerConnKB, 2), fmt(b.heapPerConnKB, 2)]),
      ),
    )
  }
  const rec = best.filter((b) => b.scenario === 'recovery')
  if (rec.length) {
    parts.push(
      table(
        ['scenario', 'phase', 'contender', 'clients', 'time to all recovered ms', 'recovered', 'resynced', 'lost'],
        rec.map((b) => [b.scenario, b.phase, b.contender, String(b.size), fmt(b.recoverMs, 0), fmt(b.recovered, 0), fmt(b.resynced, 0), fmt(b.lost, 0)]),
      ),
    )
  }
  return parts.join('\n\n')
}

export interface Ratio {
  scenario: string
  phase: string
  size: number
  figure: string
  /** The @app/realtime contender: 'realtime' (the work tree) or 'realtime@<commit>'. */
  contender: ContenderName
  realtime: number
  vsBaseline: number
  vsSocketIo: number
}

/** The figures compared, by scenario. */
function figuresOf(scenario: string): string[] {
  return scenario === 'memory' ? ['rssPerConnKB', 'heapPerConnKB'] : scenario === 'recovery' ? ['recoverMs'] : ['deliveriesPerSec', 'cpuPerDeliveryUs', 'p99Ms']
}

/** Lower is better for every figure but deliveries/s. */
const higherIsBetter = (figure: string) => figure === 'deliveriesPerSec'

function byPhase(best: Best[]): Map<string, Map<ContenderName, Best>> {
  const key = (b: Best) => `${b.scenario}\u0000${b.phase}\u0000${b.size}`
  const by = new Map<string, Map<ContenderName, Best>>()
  for (const b of best) {
    if (!by.has(key(b))) by.set(key(b), new Map())
    by.get(key(b))!.set(b.contender, b)
  }
  return by
}

/** Each @app/realtime contender's figures divided by the other contenders' (same run). */
export function ratios(best: Best[]): Ratio[] {
  const out: Ratio[] = []
  for (const g of byPhase(best).values()) {
    for (const [c, rt] of g) {
      if (!isRealtime(c)) continue
      for (const fig of figuresOf(rt.scenario)) {
        out.push({
          scenario: rt.scenario,
          phase: rt.phase,
          size: rt.size,
          figure: fig,
          contender: c,
          realtime: num(rt[fig]),
          vsBaseline: num(rt[fig]) / num(g.get('baseline-ws')?.[fig]),
          vsSocketIo: num(rt[fig]) / num(g.get('socket.io')?.[fig]),
        })
      }
    }
  }
  return out
}

const times = (v: number) => (Number.isFinite(v) ? `${fmt(v, 2)}×` : '—')

export function ratioTable(rs: Ratio[]): string {
  return table(
    ['scenario', 'phase', 'figure', 'n', 'contender', 'value', '÷ baseline-ws', '÷ socket.io'],
    rs.map((r) => [r.scenario, r.phase, r.figure, String(r.size), r.contender, fmt(r.realtime, 2), times(r.vsBaseline), times(r.vsSocketIo)]),
  )
}

/** The work tree against a commit of the library, figure by figure (same run). */
export interface BeforeAfter {
  scenario: string
  phase: string
  size: number
  figure: string
  /** 'realtime@<commit>' */
  ref: ContenderName
  realtime: number
  atRef: number
  /** realtime ÷ realtime@<commit> */
  ratio: number
  /** The change from the commit to the work tree, in %, positive when the work tree is better. */
  betterPct: number
}

/** `realtime` against each `realtime@<commit>` of the run: deliveries/s, CPU per delivery, memory per connection... */
export function beforeAfter(best: Best[]): BeforeAfter[] {
  const out: BeforeAfter[] = []
  for (const g of byPhase(best).values()) {
    const rt = g.get('realtime')
    if (!rt) continue
    for (const [c, ref] of g) {
      if (!c.startsWith('realtime@')) continue
      for (const fig of figuresOf(rt.scenario)) {
        const a = num(rt[fig])
        const b = num(ref[fig])
        const ratio = a / b
        out.push({ scenario: rt.scenario, phase: rt.phase, size: rt.size, figure: fig, ref: c, realtime: a, atRef: b, ratio, betterPct: 100 * (higherIsBetter(fig) ? ratio - 1 : 1 - ratio) })
      }
    }
  }
  return out
}

export function beforeAfterTable(rs: BeforeAfter[]): string {
  return table(
    ['scenario', 'phase', 'figure', 'n', 'reference', 'realtime', 'at reference', 'realtime ÷ reference', 'change'],
    rs.map((r) => [
      r.scenario,
      r.phase,
      r.figure,
      String(r.size),
      r.ref,
      fmt(r.realtime, 2),
      fmt(r.atRef, 2),
      `${fmt(r.ratio, 3)}×`,
      Number.isFinite(r.betterPct) ? `${Math.abs(r.betterPct).toFixed(1)}% ${r.betterPct >= 0 ? 'better' : 'worse'}` : '—',
    ]),
  )
}

/** How each contender published one payload to two topics (the per-user scenario), one line each. */
export function multiTopicPaths(best: Best[]): string[] {
  const seen = new Map<ContenderName, string>()
  for (const b of best) if (b.scenario === 'per-user' && typeof b.multiTopicPath === 'string') seen.set(b.contender, b.multiTopicPath)
  return [...seen].map(([c, p]) => `${c}: ${p}`)
}

const COLORS: Record<string, string> = { 'baseline-ws': '#4c78a8', 'socket.io': '#e45756', realtime: '#54a24b' }
/** Colors of the realtime@<commit> contenders, in order of appearance. */
const REF_COLORS = ['#b279a2', '#f58518', '#72b7b2', '#9d755d']

/** SVG: p50 (dashed) and p99 (solid) latency at the fixed publish rate against subscribers, per contender. */
export function latencySvg(best: Best[], title: string): string {
  const pts = best.filter((b) => b.scenario === 'fanout' && String(b.phase).startsWith('fixed'))
  const W = 640
  const H = 400
  const refs = [...new Set(pts.map((p) => p.contender).filter((c) => c.startsWith('realtime@')))]
  const m = { l: 64, r: refs.length ? 210 : 150, t: 40, b: 48 }
  const xs = [...new Set(pts.map((p) => p.size))].sort((a, b) => a - b)
  const ymax = Math.max(1, ...pts.map((p) => num(p.p99Ms)).filter(Number.isFinite)) * 1.1
  const xmin = Math.min(...xs, 0)
  const xmax = Math.max(...xs, 1)
  const X = (v: number) => m.l + ((v - xmin) / (xmax - xmin || 1)) * (W - m.l - m.r)
  const Y = (v: number) => H - m.b - (v / ymax) * (H - m.t - m.b)
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - 60}" y="20" text-anchor="middle" font-size="14">${title}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">subscribers of one topic</text>`,
    `<text x="16" y="${(m.t + H - m.b) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(m.t + H - m.b) / 2})">publish-to-receive latency, ms</text>`,
  ]
  for (let i = 0; i <= 5; i++) {
    const v = (ymax / 5) * i
    out.push(`<line x1="${m.l - 4}" y1="${Y(v)}" x2="${W - m.r}" y2="${Y(v)}" stroke="#ddd"/>`, `<text x="${m.l - 8}" y="${Y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`)
  }
  for (const x of xs) out.push(`<text x="${X(x)}" y="${H - m.b + 16}" text-anchor="middle">${x}</text>`)
  let ly = m.t + 10
  const colors: Record<string, string> = { ...COLORS }
  refs.forEach((c, i) => (colors[c] = REF_COLORS[i % REF_COLORS.length]!))
  for (const c of Object.keys(colors) as ContenderName[]) {
    const mine = pts.filter((p) => p.contender === c).sort((a, b) => a.size - b.size)
    if (!mine.length) continue
    for (const [k, dash] of [['p99Ms', ''], ['p50Ms', '5,4']] as const) {
      const path = mine.map((p) => `${X(p.size)},${Y(num(p[k]))}`).join(' ')
      out.push(`<polyline points="${path}" fill="none" stroke="${colors[c]}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''}/>`)
      for (const p of mine) out.push(`<circle cx="${X(p.size)}" cy="${Y(num(p[k]))}" r="3" fill="${colors[c]}"/>`)
      out.push(
        `<line x1="${W - m.r + 12}" y1="${ly}" x2="${W - m.r + 36}" y2="${ly}" stroke="${colors[c]}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''}/>`,
        `<text x="${W - m.r + 40}" y="${ly + 4}">${c === 'realtime' ? '@app/realtime' : c.startsWith('realtime@') ? `@app/realtime ${c.slice('realtime@'.length)}` : c} ${k === 'p99Ms' ? 'p99' : 'p50'}</text>`,
      )
      ly += 18
    }
  }
  out.push('</svg>')
  return out.join('\n')
}
