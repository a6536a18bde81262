/**
 * `npm run bench [-- options]`: runs the scenarios on baseline-ws, Socket.IO and @app/realtime in
 * alternating rounds, prints the best of k per figure and the ratios, and writes the results JSON
 * and the latency plot.
 *
 *   --scenario fanout|per-user|cross-instance|memory|recovery|all   (repeatable, comma list; default all)
 *   --contender baseline-ws,socket.io,realtime                      (default all three)
 *   --quick            small sizes, one round (CI keeps it working; < 3 minutes)
 *   --rounds k         rounds (default 3; quick 1)
 *   --sizes 1000,5000  fanout subscriber counts
 *   --users N --admins N --cross N --memory N --recovery N --missed N --phase-ms N
 *   --rate K           fixed-rate phase: K thousand deliveries/s (default 20: 20 publishes/s to 1,000)
 *   --profile          run servers with --cpu-prof (bench/results/profiles/)
 *   --client wire|ws   client sockets: the bench's minimal RFC 6455 client (default) or the ws library
 *   --quiet-wait ms    before each session wait up to this long for a quiet machine (default 20000; quick 0)
 *   --retries n        re-measure a phase during which other processes took > 25% of a core (default 2; quick 0)
 *   --experiment cork  try a proposed hot-path change on @app/realtime (see src/experiments.ts)
 *   --realtime-ref REF measure @app/realtime's source as committed at git REF (e.g. HEAD), not the work tree
 *   --from-dist        load @app/realtime from its build (packages/realtime/dist) instead of src
 *   --out name         results file name (default: full | quick)
 *   --no-docs          do not write docs/performance-*.{json,svg} (quick runs never do)
 */
import { execFileSync, execSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { CONTENDERS, type ContenderName } from './contenders/types.js'
import { hasTaskset, REPO_ROOT } from './ipc.js'
import { aggregate, latencySvg, ratios, ratioTable, tables } from './report.js'
import { runScenario, SCENARIOS, type Row, type ScenarioName, type Settings } from './scenarios.js'

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', multiple: true },
    contender: { type: 'string' },
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    sizes: { type: 'string' },
    users: { type: 'string' },
    admins: { type: 'string' },
    cross: { type: 'string' },
    memory: { type: 'string' },
    recovery: { type: 'string' },
    missed: { type: 'string' },
    'phase-ms': { type: 'string' },
    rate: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'from-dist': { type: 'boolean', default: false },
    client: { type: 'string', default: 'wire' },
    retries: { type: 'string' },
    experiment: { type: 'string' },
    'realtime-ref': { type: 'string' },
    'quiet-wait': { type: 'string' },
    out: { type: 'string' },
    'no-docs': { type: 'boolean', default: false },
  },
  allowPositionals: false,
})

const quick = values.quick!
const int = (v: string | undefined, d: number) => (v === undefined ? d : Number.parseInt(v, 10))
const settings: Settings = {
  quick,
  fromDist: values['from-dist']!,
  profile: values.profile!,
  clientImpl: values.client === 'ws' ? 'ws' : 'wire',
  quietWaitMs: int(values['quiet-wait'], quick ? 0 : 20_000),
  retries: int(values.retries, quick ? 0 : 2),
  redisUrl: process.env.BENCH_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  fanoutSizes: values.sizes ? values.sizes.split(',').map(Number) : quick ? [1000] : [1000, 2500, 5000],
  perUserUsers: int(values.users, quick ? 1000 : 5000),
  perUserAdmins: int(values.admins, 50),
  crossSubscribers: int(values.cross, quick ? 300 : 1000),
  memoryConnections: int(values.memory, quick ? 1000 : 10_000),
  recoveryClients: int(values.recovery, quick ? 300 : 1000),
  recoveryMissed: int(values.missed, 50),
  phaseMs: int(values['phase-ms'], quick ? 1000 : 3000),
  fixedRate: int(values.rate, 20),
  fixedRateMs: quick ? 600 : 3000,
  burst: 10,
  overloadBurst: 50,
  overloadEvents: quick ? 100 : 1000,
}
const rounds = int(values.rounds, quick ? 1 : 3)
const scenarios: ScenarioName[] = (() => {
  const list = (values.scenario ?? ['all']).flatMap((s) => s.split(','))
  if (list.includes('all')) return SCENARIOS
  for (const s of list) if (!SCENARIOS.includes(s as ScenarioName)) throw new Error(`unknown scenario ${s}`)
  return list as ScenarioName[]
})()
const contenders = (values.contender ? values.contender.split(',') : CONTENDERS) as ContenderName[]

if (values.experiment) process.env.BENCH_EXPERIMENT = values.experiment
// The source measured: the work tree, or a snapshot of a commit (others may be editing the tree).
let realtimeSource = 'work tree'
if (values['realtime-ref']) {
  const commit = execFileSync('git', ['rev-parse', values['realtime-ref']], { cwd: REPO_ROOT, encoding: 'utf8' }).trim()
  const dir = path.join(REPO_ROOT, 'bench/results/.snapshot', commit)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  execSync(`git archive ${commit} packages/realtime/src | tar -x -C ${JSON.stringify(dir)}`, { cwd: REPO_ROOT })
  process.env.BENCH_REALTIME_SRC = path.join(dir, 'packages/realtime/src')
  realtimeSource = `commit ${commit.slice(0, 10)}`
} else {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=10', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'packages/realtime/src'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim()
    realtimeSource = `work tree at ${head}${dirty ? ' (with uncommitted changes)' : ''}`
  } catch {
    /* not a git checkout */
  }
}
const started = Date.now()
const machine = {
  cpu: os.cpus()[0]?.model,
  cores: os.cpus().length,
  memGB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${os.platform()} ${os.release()}`,
  taskset: hasTaskset(),
}
const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`
console.log(`# @app/realtime bench: ${command}`)
console.log(`# ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}; server on core 0, clients on core 1${machine.taskset ? '' : ' (taskset missing: NOT pinned)'}`)
console.log(`# @app/realtime source: ${settings.fromDist ? 'built package (dist)' : realtimeSource}${values.experiment ? `; experiment ${values.experiment}` : ''}`)
console.log(`# scenarios ${scenarios.join(', ')}; contenders ${contenders.join(', ')}; ${rounds} round(s), alternating order\n`)

const rows: Row[] = []
const failures: string[] = []
for (const scenario of scenarios) {
  const scenarioStart = Date.now()
  for (let round = 1; round <= rounds; round++) {
    // Alternate the order every round so that no contender always runs first (or last).
    const order = contenders.map((_, i) => contenders[(i + round - 1) % contenders.length]!)
    for (const c of order) {
      try {
        rows.push(...(await runScenario(settings, scenario, c, round, (m) => console.log(`  ${m}`))))
      } catch (err) {
        const msg = `${scenario} / ${c} / round ${round}: ${err instanceof Error ? err.message : String(err)}`
        failures.push(msg)
        console.log(`  FAILED ${msg}`)
      }
    }
  }
  console.log(`  (${scenario}: ${((Date.now() - scenarioStart) / 1000).toFixed(0)} s, load average ${os.loadavg()[0]!.toFixed(1)})`)
}

const best = aggregate(rows)
const rts = ratios(best)
const seconds = (Date.now() - started) / 1000
console.log(`\n## Best of ${rounds} (${seconds.toFixed(0)} s)\n`)
console.log(tables(best))
if (rts.length) {
  console.log('\n## @app/realtime ratios (same run)\n')
  console.log(ratioTable(rts))
}
const rtLost = best.filter((b) => b.contender === 'realtime').reduce((n, b) => n + (Number(b.lost) || 0), 0)
if (failures.length) console.log(`\n## Failures\n\n${failures.map((f) => `- ${f}`).join('\n')}`)

const result = { command, realtimeSource, experiment: values.experiment ?? null, date: new Date(started).toISOString(), seconds, machine, settings, rounds, scenarios, contenders, best, ratios: rts, rows, failures }
const name = values.out ?? (quick ? 'quick' : 'full')
const resultsDir = path.join(REPO_ROOT, 'bench/results')
mkdirSync(resultsDir, { recursive: true })
// The plot is of the fanout scenario's fixed-rate phases: a run without them has nothing to plot.
const plotted = best.some((b) => b.scenario === 'fanout' && String(b.phase).startsWith('fixed'))
const svg = plotted ? latencySvg(best, `Latency at ${settings.fixedRate}k deliveries/s, Node ${machine.node}`) : undefined
writeFileSync(path.join(resultsDir, `${name}.json`), JSON.stringify(result, null, 2))
if (svg) writeFileSync(path.join(resultsDir, `${name}-latency.svg`), svg)
const md = [
  `Command: \`${command}\``,
  `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGB} GB, ${machine.platform}; Node ${machine.node}; ${machine.taskset ? 'server on core 0, clients on core 1 (taskset)' : 'NOT pinned (no taskset)'}; client sockets: ${settings.clientImpl}.`,
  `@app/realtime: ${settings.fromDist ? 'built package (dist)' : realtimeSource}.`,
  `Date: ${result.date}; ${rounds} round(s), best of ${rounds}; ${seconds.toFixed(0)} s.${values.experiment ? ` Experiment: ${values.experiment}.` : ''}`,
  '',
  tables(best),
  '',
  rts.length ? ratioTable(rts) : '',
  '',
].join('\n')
writeFileSync(path.join(resultsDir, `${name}.md`), md)
if (!quick && !values['no-docs'] && !values.profile) {
  writeFileSync(path.join(REPO_ROOT, 'docs/performance-results.json'), JSON.stringify(result, null, 2))
  if (svg) writeFileSync(path.join(REPO_ROOT, 'docs/performance-latency.svg'), svg)
}
console.log(`\nresults: bench/results/${name}.json${svg ? `, plot: bench/results/${name}-latency.svg` : ''}`)
console.log(`@app/realtime lost messages: ${rtLost}; failures: ${failures.length}; ${seconds.toFixed(0)} s`)
process.exit(failures.length || rtLost ? 1 : 0)
