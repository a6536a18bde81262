/**
 * `npm run bench [-- options]`: runs the scenarios on baseline-ws, Socket.IO and @app/realtime in
 * alternating rounds, prints the best of k per figure and the ratios, and writes the results JSON
 * and the latency plot.
 *
 *   --scenario fanout|per-user|cross-instance|memory|recovery|all   (repeatable, comma list; default all)
 *   --contender baseline-ws,socket.io,realtime                      (default these three)
 *              realtime@REF: @app/realtime's packages/realtime/src as committed at git REF (a
 *              commit, HEAD~3, a branch), beside `realtime` (the work tree) in the same run, e.g.
 *              --contender baseline-ws,socket.io,realtime,realtime@HEAD~3: prints a before/after
 *              table of realtime ÷ realtime@<commit>
 *   --quick            small sizes, one round (CI keeps it working; < 3 minutes)
 *   --rounds k         rounds (default 3; quick 1)
 *   --sizes 1000,5000  fanout subscriber counts
 *   --users 1000,5000  per-user: users (each on its own user:<id>), one session per count
 *   --admins N --cross N --memory N --recovery N --missed N --phase-ms N
 *   --conns-per-client N  sockets per client process (default 9500): the memory scenario spreads
 *              its N connections (all to one server) over ceil(N / this) client processes
 *   --rate K           fixed-rate phase: K thousand deliveries/s (default 20: 20 publishes/s to 1,000)
 *   --profile          run servers with --cpu-prof (bench/results/profiles/)
 *   --client wire|ws   client sockets: the bench's minimal RFC 6455 client (default) or the ws library
 *   --quiet-wait ms    before each session wait up to this long for a quiet machine (default 20000; quick 0)
 *   --retries n        re-measure a phase during which other processes took > 25% of a core (default 2; quick 0)
 *   --experiment cork  try a proposed hot-path change on @app/realtime (see src/experiments.ts)
 *   --realtime-ref REF the `realtime` contender measures the source as committed at git REF, not the
 *              work tree (to compare two commits: --contender realtime@A,realtime@B instead)
 *   --from-dist        the `realtime` contender loads its build (packages/realtime/dist) instead of src
 *   --out name         results file name (default: full | quick)
 *   --no-docs          do not write docs/performance-*.{json,svg} (quick runs never do)
 */
import { execFileSync, execSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { CONTENDERS, isRealtime, kindOf, type ContenderName } from './contenders/types.js'
import { hasTaskset, REPO_ROOT } from './ipc.js'
import { aggregate, beforeAfter, beforeAfterTable, latencySvg, multiTopicPaths, ratios, ratioTable, tables } from './report.js'
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
    'conns-per-client': { type: 'string' },
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
  realtimeSrc: {},
  connsPerClient: int(values['conns-per-client'], 9500),
  profile: values.profile!,
  clientImpl: values.client === 'ws' ? 'ws' : 'wire',
  quietWaitMs: int(values['quiet-wait'], quick ? 0 : 20_000),
  retries: int(values.retries, quick ? 0 : 2),
  redisUrl: process.env.BENCH_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  fanoutSizes: values.sizes ? values.sizes.split(',').map(Number) : quick ? [1000] : [1000, 2500, 5000],
  perUserUsers: values.users ? values.users.split(',').map(Number) : [quick ? 1000 : 5000],
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

/**
 * `packages/realtime/src` as committed at `commit`, extracted once into bench/results/.snapshot/
 * (git archive; a snapshot is never changed, so a later run reuses it): edits in progress in the
 * work tree cannot leak into it, and its internal layout does not matter (only its public entry
 * points are loaded).
 */
function snapshot(commit: string): string {
  const dir = path.join(REPO_ROOT, 'bench/results/.snapshot', commit)
  const src = path.join(dir, 'packages/realtime/src')
  if (!existsSync(path.join(src, 'server/index.ts'))) {
    const tmp = `${dir}.tmp-${process.pid}`
    rmSync(tmp, { recursive: true, force: true })
    mkdirSync(tmp, { recursive: true })
    execSync(`git archive ${commit} packages/realtime/src | tar -x -C ${JSON.stringify(tmp)}`, { cwd: REPO_ROOT })
    rmSync(dir, { recursive: true, force: true })
    renameSync(tmp, dir)
  }
  return src
}
const resolveCommit = (ref: string) => execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: REPO_ROOT, encoding: 'utf8' }).trim()

if (values.experiment) process.env.BENCH_EXPERIMENT = values.experiment
// The contenders, each realtime@<ref> named after its short commit; and the source each
// @app/realtime contender measures: the work tree, or a snapshot of a commit.
const sources: Record<string, string> = {}
const contenders: ContenderName[] = []
for (const given of values.contender ? values.contender.split(',').filter(Boolean) : CONTENDERS) {
  kindOf(given)
  let name = given as ContenderName
  if (given.startsWith('realtime@')) {
    const ref = given.slice('realtime@'.length)
    const commit = resolveCommit(ref)
    name = `realtime@${commit.slice(0, 7)}`
    settings.realtimeSrc[name] = snapshot(commit)
    sources[name] = `commit ${commit.slice(0, 10)}${ref.startsWith(commit.slice(0, ref.length)) ? '' : ` (${ref})`}`
  }
  if (contenders.includes(name)) throw new Error(`contender ${given} given twice`)
  contenders.push(name)
}
if (contenders.includes('realtime')) {
  if (values['realtime-ref']) {
    const commit = resolveCommit(values['realtime-ref'])
    settings.realtimeSrc.realtime = snapshot(commit)
    sources.realtime = `commit ${commit.slice(0, 10)}`
  } else {
    settings.realtimeSrc.realtime = path.join(REPO_ROOT, 'packages/realtime/src')
    sources.realtime = 'work tree'
    try {
      const head = execFileSync('git', ['rev-parse', '--short=10', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim()
      const dirty = execFileSync('git', ['status', '--porcelain', '--', 'packages/realtime/src'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim()
      sources.realtime = `work tree at ${head}${dirty ? ' (with uncommitted changes)' : ''}`
    } catch {
      /* not a git checkout */
    }
  }
  if (settings.fromDist) sources.realtime = 'built package (dist)'
}
const realtimeSource = Object.entries(sources)
  .map(([c, src]) => `${c} = ${src}`)
  .join('; ')
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
console.log(`# @app/realtime source: ${realtimeSource || 'none (no @app/realtime contender)'}${values.experiment ? `; experiment ${values.experiment}` : ''}`)
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
const ba = beforeAfter(best)
const paths = multiTopicPaths(best)
const seconds = (Date.now() - started) / 1000
console.log(`\n## Best of ${rounds} (${seconds.toFixed(0)} s)\n`)
console.log(tables(best))
if (rts.length) {
  console.log('\n## @app/realtime ratios (same run)\n')
  console.log(ratioTable(rts))
}
if (ba.length) {
  console.log('\n## @app/realtime work tree against the reference commit (same run)\n')
  console.log(beforeAfterTable(ba))
}
if (paths.length) console.log(`\nper-user, one payload to user:<id> and profile: ${paths.join('; ')}`)
const rtLost = best.filter((b) => isRealtime(b.contender)).reduce((n, b) => n + (Number(b.lost) || 0), 0)
if (failures.length) console.log(`\n## Failures\n\n${failures.map((f) => `- ${f}`).join('\n')}`)

const result = { command, realtimeSource, realtimeSources: sources, experiment: values.experiment ?? null, date: new Date(started).toISOString(), seconds, machine, settings, rounds, scenarios, contenders, best, ratios: rts, beforeAfter: ba, multiTopicPaths: paths, rows, failures }
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
  `@app/realtime: ${realtimeSource || 'not measured'}.`,
  `Date: ${result.date}; ${rounds} round(s), best of ${rounds}; ${seconds.toFixed(0)} s.${values.experiment ? ` Experiment: ${values.experiment}.` : ''}`,
  '',
  tables(best),
  '',
  rts.length ? ratioTable(rts) : '',
  '',
  ba.length ? `${beforeAfterTable(ba)}\n` : '',
  paths.length ? `Per-user, one payload to \`user:<id>\` and \`profile\`: ${paths.join('; ')}.\n` : '',
].join('\n')
writeFileSync(path.join(resultsDir, `${name}.md`), md)
if (!quick && !values['no-docs'] && !values.profile) {
  writeFileSync(path.join(REPO_ROOT, 'docs/performance-results.json'), JSON.stringify(result, null, 2))
  if (svg) writeFileSync(path.join(REPO_ROOT, 'docs/performance-latency.svg'), svg)
}
console.log(`\nresults: bench/results/${name}.json${svg ? `, plot: bench/results/${name}-latency.svg` : ''}`)
console.log(`@app/realtime lost messages: ${rtLost}; failures: ${failures.length}; ${seconds.toFixed(0)} s`)
process.exit(failures.length || rtLost ? 1 : 0)
