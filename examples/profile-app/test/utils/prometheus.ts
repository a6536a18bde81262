/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4): every line must be a
 * HELP, a TYPE or a sample of a declared family, in the grammar of the format; histogram buckets
 * must be cumulative and end with `+Inf` equal to `_count`. Throws on the first violation.
 */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Family {
  name: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  help: string
  samples: Sample[]
}

const METRIC_NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const LABEL = '([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"'
const VALUE = '([-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|[-+]?Inf|NaN)'
const SAMPLE_LINE = new RegExp(`^(${METRIC_NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? ${VALUE}(?: (-?\\d+))?$`)
const HELP_LINE = new RegExp(`^# HELP (${METRIC_NAME}) (.*)$`)
const TYPE_LINE = new RegExp(`^# TYPE (${METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$`)

function unescape(value: string): string {
  return value.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c))
}

function parseValue(text: string): number {
  if (/^[-+]?Inf$/.test(text)) return text.startsWith('-') ? -Infinity : Infinity
  return Number(text)
}

/** The family a sample name belongs to (`x_bucket` / `x_sum` / `x_count` of histogram `x`). */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name)
  if (direct) return direct
  const match = /^(.*)_(bucket|sum|count)$/.exec(name)
  const base = match ? families.get(match[1]!) : undefined
  return base && (base.type === 'histogram' || base.type === 'summary') ? base : undefined
}

export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline')
  const families = new Map<string, Family>()
  const closed = new Set<string>()
  let current: Family | undefined
  const lines = text.slice(0, -1).split('\n')
  lines.forEach((line, index) => {
    const where = `line ${index + 1} ${JSON.stringify(line)}`
    if (line === '') return
    const help = HELP_LINE.exec(line)
    const type = TYPE_LINE.exec(line)
    if (help || type) {
      const name = (help ?? type)![1]!
      if (closed.has(name)) throw new Error(`${where}: family ${name} appears twice`)
      if (current && current.name !== name) closed.add(current.name)
      let family = families.get(name)
      if (!family) {
        family = { name, type: 'untyped', help: '', samples: [] }
        families.set(name, family)
      } else if (family.samples.length > 0) {
        throw new Error(`${where}: HELP/TYPE of ${name} after its samples`)
      }
      if (help) family.help = help[2]!
      if (type) family.type = type[2] as Family['type']
      current = family
      return
    }
    if (line.startsWith('#')) return
    const sample = SAMPLE_LINE.exec(line)
    if (!sample) throw new Error(`${where}: not a sample line`)
    const name = sample[1]!
    const family = familyOf(name, families)
    if (!family) throw new Error(`${where}: sample of an undeclared family`)
    if (family !== current) throw new Error(`${where}: samples of ${family.name} are not together`)
    const labels: Record<string, string> = {}
    if (sample[2]) {
      for (const pair of sample[2].matchAll(new RegExp(LABEL, 'g'))) {
        if (pair[1]! in labels) throw new Error(`${where}: label ${pair[1]} twice`)
        labels[pair[1]!] = unescape(pair[2]!)
      }
    }
    // Groups: 1 name, 2 label list, 3-6 the first and last label pair, 7 value, 8 timestamp.
    family.samples.push({ name, labels, value: parseValue(sample[7]!) })
  })
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family)
  return families
}

function checkHistogram(family: Family): void {
  const buckets = family.samples.filter((s) => s.name === `${family.name}_bucket`)
  const count = family.samples.find((s) => s.name === `${family.name}_count`)
  const sum = family.samples.find((s) => s.name === `${family.name}_sum`)
  if (!count || !sum || buckets.length === 0) throw new Error(`histogram ${family.name} lacks _bucket, _sum or _count`)
  let previous = -Infinity
  let previousCount = 0
  for (const bucket of buckets) {
    const le = parseValue(bucket.labels.le ?? 'NaN')
    if (!(le > previous)) throw new Error(`histogram ${family.name}: le ${bucket.labels.le} out of order`)
    if (bucket.value < previousCount) throw new Error(`histogram ${family.name}: buckets not cumulative at le=${bucket.labels.le}`)
    previous = le
    previousCount = bucket.value
  }
  if (previous !== Infinity) throw new Error(`histogram ${family.name}: no +Inf bucket`)
  if (previousCount !== count.value) throw new Error(`histogram ${family.name}: +Inf bucket ${previousCount} != _count ${count.value}`)
}

/** The value of one series (0 when it is absent, as a counter that never moved is). */
export function valueOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue
      const keys = Object.keys(labels)
      if (keys.length === Object.keys(sample.labels).length && keys.every((k) => sample.labels[k] === labels[k])) return sample.value
    }
  }
  return 0
}
