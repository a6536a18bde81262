/**
 * `npm run chaos -w bench [-- options]`: runs the chaos scenarios (each a file of this folder that
 * exports `run(options): Promise<ChaosRow[]>`), prints their rows as a markdown table and writes
 * it to bench/results/chaos.md. Every scenario starts its own Redis processes on free ports.
 *
 *   --scenario a,b   the scenarios to run, by name (default: all listed in SCENARIOS)
 *   --quick          each scenario's short version
 *   --seconds n      each scenario's length (they have their own defaults)
 *   --out name       results file name under bench/results (default: chaos.md; --quick: chaos-quick.md)
 *
 * Exits 1 when a row does not pass (or a scenario throws).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { ChaosOptions, ChaosRow } from './types.js'

/** Every scenario the runner knows, by name: add yours here. */
const SCENARIOS: Record<string, () => Promise<{ run(options: ChaosOptions): Promise<ChaosRow[]> }>> = {
  'rolling-deploy': () => import('./rolling-deploy.js'),
  sentinel: () => import('./sentinel.js'),
  cluster: () => import('./cluster.js'),
  presence: () => import('./presence.js'),
}

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', multiple: true },
    quick: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    out: { type: 'string' },
  },
})

const wanted = (values.scenario ?? []).flatMap((list) => list.split(',')).map((name) => name.trim()).filter(Boolean)
const names = wanted.length > 0 ? wanted : Object.keys(SCENARIOS)
const unknown = names.filter((name) => !(name in SCENARIOS))
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`)
  process.exit(2)
}
const options: ChaosOptions = { quick: values.quick }
if (values.seconds !== undefined) options.seconds = Number(values.seconds)

const rows: ChaosRow[] = []
let failed = false
for (const name of names) {
  console.log(`chaos: ${name}${options.quick ? ' (quick)' : ''}`)
  const started = performance.now()
  try {
    const scenario = await SCENARIOS[name]!()
    rows.push(...(await scenario.run(options)))
  } catch (error) {
    failed = true
    console.error(`chaos: ${name} failed:`, error)
    rows.push({ scenario: name, clients: 0, published: 0, confirmed: 0, rejected: 0, silentGaps: 0, duplicates: 0, resyncs: 0, notes: `threw: ${String(error)}`, pass: false })
  }
  console.log(`chaos: ${name} took ${((performance.now() - started) / 1000).toFixed(0)} s`)
}

/** The rows as a markdown table. */
export function chaosTable(table: readonly ChaosRow[]): string {
  const header = '| scenario | clients | published | confirmed | rejected | silent gaps | duplicates | resyncs | pass | notes |'
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|---|---|'
  const lines = table.map((r) => {
    const resyncs = r.resyncReason ? `${r.resyncs} (${r.resyncReason})` : String(r.resyncs)
    const cells = [r.scenario, r.clients, r.published, r.confirmed, r.rejected, r.silentGaps, r.duplicates, resyncs, r.pass ? 'yes' : '**no**', r.notes ?? '']
    return `| ${cells.map((cell) => String(cell).replace(/\|/g, '\\|')).join(' | ')} |`
  })
  return [header, rule, ...lines].join('\n')
}

const table = chaosTable(rows)
console.log(`\n${table}\n`)
const resultsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../results')
mkdirSync(resultsDir, { recursive: true })
const out = path.join(resultsDir, values.out ?? (options.quick ? 'chaos-quick.md' : 'chaos.md'))
const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
writeFileSync(out, `# Chaos run, ${when}${options.quick ? ' (--quick)' : ''}\n\n${table}\n`)
console.log(`written to ${path.relative(process.cwd(), out)}`)
if (failed || rows.some((r) => !r.pass)) process.exit(1)
