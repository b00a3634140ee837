/**
 * A hand-written Prometheus text-format registry (exposition format 0.0.4): counters, gauges and histograms with
 * labels. No client library: we need a dozen series, not a dependency.
 */

type Labels = Readonly<Record<string, string>>

interface Series {
  render(name: string): string[]
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')

const labelText = (labels: Labels, extra?: readonly [string, string]): string => {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`)
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`)
  return parts.length ? `{${parts.join(',')}}` : ''
}

// Series are found by a key built from the sorted label pairs. Built by hand: it runs several times per review,
// and the unlabelled case (most series) must cost nothing.
const keyOf = (labels: Labels): string => {
  const names = Object.keys(labels)
  if (names.length > 1) names.sort()
  let key = ''
  for (const name of names) key += `${name}\u0000${labels[name]}\u0001`
  return key
}

const num = (v: number): string => (Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN')

/** A monotonically increasing counter, optionally labelled. */
export class Counter implements Series {
  readonly #values = new Map<string, { labels: Labels; value: number }>()
  /** Adds `by` (default 1) to the series with these labels. */
  inc(labels: Labels = {}, by = 1): void {
    const k = keyOf(labels)
    const cur = this.#values.get(k)
    if (cur) cur.value += by
    else this.#values.set(k, { labels, value: by })
  }
  /** Current value of the series with these labels (0 when never incremented). */
  get(labels: Labels = {}): number {
    return this.#values.get(keyOf(labels))?.value ?? 0
  }
  render(name: string): string[] {
    return [...this.#values.values()].map(s => `${name}${labelText(s.labels)} ${num(s.value)}`)
  }
}

/** A gauge: a value set directly, or computed when scraped. */
export class Gauge implements Series {
  readonly #values = new Map<string, { labels: Labels; value: number }>()
  readonly #collect: (() => number) | undefined
  constructor(collect?: () => number) {
    this.#collect = collect
  }
  /** Sets the series with these labels. */
  set(value: number, labels: Labels = {}): void {
    this.#values.set(keyOf(labels), { labels, value })
  }
  /** Adds `by` (may be negative) to the series with these labels. */
  add(by: number, labels: Labels = {}): void {
    this.set(this.get(labels) + by, labels)
  }
  /** Current value (the collector's, when one was given). */
  get(labels: Labels = {}): number {
    if (this.#collect) return this.#collect()
    return this.#values.get(keyOf(labels))?.value ?? 0
  }
  render(name: string): string[] {
    if (this.#collect) return [`${name} ${num(this.#collect())}`]
    return [...this.#values.values()].map(s => `${name}${labelText(s.labels)} ${num(s.value)}`)
  }
}

/** A histogram with fixed upper bounds (seconds, for durations). */
export class Histogram implements Series {
  readonly #bounds: readonly number[]
  // Buckets are kept cumulative (each counts observations ≤ its bound), as the exposition format wants them.
  readonly #values = new Map<
    string,
    { labels: Labels; buckets: { le: number; count: number }[]; sum: number; count: number }
  >()
  constructor(bounds: readonly number[]) {
    this.#bounds = [...bounds].sort((a, b) => a - b)
  }
  /** Records one observation. */
  observe(value: number, labels: Labels = {}): void {
    const k = keyOf(labels)
    let s = this.#values.get(k)
    if (!s) {
      s = { labels, buckets: this.#bounds.map(le => ({ le, count: 0 })), sum: 0, count: 0 }
      this.#values.set(k, s)
    }
    for (const b of s.buckets) if (value <= b.le) b.count++
    s.sum += value
    s.count++
  }
  /** Number of observations of the series with these labels. */
  count(labels: Labels = {}): number {
    return this.#values.get(keyOf(labels))?.count ?? 0
  }
  render(name: string): string[] {
    const out: string[] = []
    for (const s of this.#values.values()) {
      for (const b of s.buckets) out.push(`${name}_bucket${labelText(s.labels, ['le', num(b.le)])} ${b.count}`)
      out.push(`${name}_bucket${labelText(s.labels, ['le', '+Inf'])} ${s.count}`)
      out.push(`${name}_sum${labelText(s.labels)} ${num(s.sum)}`)
      out.push(`${name}_count${labelText(s.labels)} ${s.count}`)
    }
    return out
  }
}

/** Default buckets for request durations in seconds (sub-millisecond to the API server's 10 s default). */
const durationBuckets: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

/** Common prefix of every metric name. */
const metricPrefix = 'stackit_pod_identity_webhook_'

/** Holds named series and renders them in the Prometheus text format. */
export class Registry {
  readonly #series = new Map<string, { help: string; type: string; series: Series }>()

  #add<S extends Series>(name: string, help: string, type: string, series: S): S {
    const full = metricPrefix + name
    if (this.#series.has(full)) throw new Error(`metric ${full} registered twice`)
    this.#series.set(full, { help, type, series })
    return series
  }
  /** Registers a counter; `name` gets the project prefix. */
  counter(name: string, help: string): Counter {
    return this.#add(name, help, 'counter', new Counter())
  }
  /** Registers a gauge, computed at scrape time when `collect` is given. */
  gauge(name: string, help: string, collect?: () => number): Gauge {
    return this.#add(name, help, 'gauge', new Gauge(collect))
  }
  /** Registers a histogram with the given bucket bounds. */
  histogram(name: string, help: string, bounds: readonly number[] = durationBuckets): Histogram {
    return this.#add(name, help, 'histogram', new Histogram(bounds))
  }
  /** The whole registry in the Prometheus text exposition format. */
  render(): string {
    const out: string[] = []
    for (const [name, m] of this.#series) {
      out.push(`# HELP ${name} ${m.help}`, `# TYPE ${name} ${m.type}`, ...m.series.render(name))
    }
    return `${out.join('\n')}\n`
  }
}
