/**
 * Rebuilds the tables, ratios and plot of a run from its printed log (one line per phase and
 * round), for a run that was stopped before it wrote its JSON. Figures not printed per round
 * (server kernel share, peak RSS) are absent.  Usage: tsx bench/src/from-log.ts <log> <name>
 */
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { REPO_ROOT } from './ipc.js'
import { aggregate, beforeAfter, beforeAfterTable, latencySvg, ratios, ratioTable, tables } from './report.js'
import type { Row } from './scenarios.js'

const [file, name = 'from-log'] = process.argv.slice(2)
const rows: Row[] = []
const num = (s: string | undefined) => (s === undefined || s === '—' ? NaN : Number(s))
for (const line of readFileSync(file!, 'utf8').split('\n')) {
  const m = /^\s+(\S+) \| (.+?) \| n=(\d+) \| (\S+) \| round (\d+): (.*)$/.exec(line)
  if (!m) continue
  const [, scenario, phase, size, contender, round, rest] = m
  const row: Row = { scenario: scenario!, phase: phase!, size: Number(size), contender: contender as Row['contender'], round: Number(round) }
  const g = (re: RegExp) => num(re.exec(rest!)?.[1])
  if (scenario === 'memory') {
    row.rssPerConnKB = g(/([\d.]+) KB RSS\/conn/)
    row.heapPerConnKB = g(/([\d.]+) KB heap\/conn/)
    row.connections = Number(size)
  } else if (scenario === 'recovery') {
    row.recoverMs = g(/^([\d.—]+) ms/)
    row.recovered = g(/recovered (\d+)/)
    row.resynced = g(/resynced (\d+)/)
    row.lost = g(/lost (\d+)/)
  } else {
    row.deliveriesPerSec = g(/^([\d.]+) deliveries\/s/)
    row.cpuPerDeliveryUs = g(/([\d.—]+) µs CPU\/delivery/)
    row.p50Ms = g(/p50 ([\d.]+)/)
    row.p99Ms = g(/p99 ([\d.]+)/)
    row.maxMs = g(/max ([\d.]+) ms/)
    row.lost = g(/lost (\d+)/)
    row.foreignCpuPct = g(/other CPU (\d+)%/)
    row.serverCpuPct = g(/server CPU (\d+)%/)
    row.clientCpuPct = g(/client CPU (\d+)%/)
  }
  rows.push(row)
}
const best = aggregate(rows)
const rts = ratios(best)
const ba = beforeAfter(best)
const md = [tables(best), '', ratioTable(rts), '', ...(ba.length ? [beforeAfterTable(ba), ''] : [])].join('\n')
console.log(md)
const dir = path.join(REPO_ROOT, 'bench/results')
writeFileSync(path.join(dir, `${name}.md`), md)
writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ source: path.basename(file!), best, ratios: rts, beforeAfter: ba, rows }, null, 2))
writeFileSync(path.join(dir, `${name}-latency.svg`), latencySvg(best, 'Latency at 20k deliveries/s, Node v20.20.2'))
