/**
 * The ServiceAccount cache at scale, measured in a process of its own (started with --expose-gc) against the
 * fake API server that run.ts hosts. Two modes, each in a fresh process so neither inherits the other's heap:
 * - `cache`: the real ServiceAccountCache: initial sync time, memory added per ServiceAccount, lookup latency.
 * - `floor`: what any cache must at least do: fetch and JSON.parse the same paginated metadata-only LIST and keep
 *   only the namespace/name pairs (a two-level Map of names), and look names up in a flat Map.
 *
 * Memory is measured after full GCs as heapUsed (live objects) and as RSS, and the young generation's growth is
 * reported beside them: V8 grows the young generation (up to 2 × 16 MiB) with the allocation and survival rate and
 * keeps it committed, which a webhook under admission load does anyway, cache or not. The baseline is taken after one
 * discarded pass over the same LIST, so code and parser warm-up are not charged to the cache either.
 *
 * Usage: node --expose-gc cache-probe.js cache|floor URL COUNT LOOKUPS → one JSON line on stdout.
 */
import http from 'node:http'
import v8 from 'node:v8'
import { KubeClient } from '../../lib/kube/kube-client.js'
import { silentLogger } from '../../lib/log.js'
import { ServiceAccountCache } from '../../lib/kube/serviceaccount-cache.js'
import { ServiceAccountApi, accepts, serviceAccountsPath } from '../../lib/kube/serviceaccount-api.js'

/** Figures of one probe run. */
export interface CacheProbeResult {
  readonly held: number
  readonly syncMs: number
  readonly rssBytesPerServiceAccount: number
  /** How much of the RSS growth is the young generation growing (see the file comment). */
  readonly youngGenerationGrowthBytes: number
  readonly heapBytesPerServiceAccount: number
  readonly lookupNs: number
}

const [mode, url, countText, lookupsText] = process.argv.slice(2)
const count = Number(countText)
const lookups = Number(lookupsText)
const gc = (globalThis as { gc?: () => void }).gc
if ((mode !== 'cache' && mode !== 'floor') || !url || !(count > 0) || !(lookups > 0) || !gc) {
  process.stderr.write('usage: node --expose-gc cache-probe.js cache|floor URL COUNT LOOKUPS\n')
  process.exit(2)
}

/** Settles the heap so before/after figures compare live data, not garbage. */
const memory = (): { rss: number; heap: number; young: number } => {
  for (let i = 0; i < 4; i++) gc()
  const m = process.memoryUsage()
  const young = v8.getHeapSpaceStatistics().find(s => s.space_name === 'new_space')?.space_size ?? 0
  return { rss: m.rss, heap: m.heapUsed, young }
}

const perServiceAccount = (
  before: ReturnType<typeof memory>,
  after: ReturnType<typeof memory>,
  held: number,
): Pick<
  CacheProbeResult,
  'rssBytesPerServiceAccount' | 'youngGenerationGrowthBytes' | 'heapBytesPerServiceAccount'
> => ({
  rssBytesPerServiceAccount: (after.rss - before.rss) / held,
  youngGenerationGrowthBytes: after.young - before.young,
  heapBytesPerServiceAccount: (after.heap - before.heap) / held,
})

/** Existing names in random order (the same naming as workloads.clusterServiceAccounts), fixed seed. */
const lookupKeys = (): Array<[string, string]> => {
  let seed = 12345
  const keys: Array<[string, string]> = []
  for (let k = 0; k < Math.min(lookups, 10_000); k++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    const i = seed % count
    keys.push([`team-${String(Math.floor(i / 10)).padStart(5, '0')}`, `app-${i}`])
  }
  return keys
}

/** Mean nanoseconds per awaited lookup over `lookups` calls; throws if any name is missing. */
const timeLookups = async (get: (ns: string, name: string) => Promise<unknown>): Promise<number> => {
  const keys = lookupKeys()
  for (const [ns, name] of keys) if ((await get(ns, name)) === undefined) throw new Error(`${ns}/${name} not found`)
  const start = process.hrtime.bigint()
  for (let i = 0; i < lookups; i++) {
    const [ns, name] = keys[i % keys.length]!
    await get(ns, name)
  }
  return Number(process.hrtime.bigint() - start) / lookups
}

/** Fetches every LIST page as the cache does (metadata only, 500 per page) and hands each parsed item over. */
const listPages = async (onItem: (item: { metadata: { namespace: string; name: string } }) => void): Promise<void> => {
  const agent = new http.Agent({ keepAlive: true })
  let cont = ''
  do {
    const page = await new Promise<string>((resolve, reject) => {
      const q = `limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`
      http
        .get(`${url}${serviceAccountsPath}?${q}`, { agent, headers: { accept: accepts.list } }, res => {
          const chunks: Buffer[] = []
          res
            .on('data', (c: Buffer) => chunks.push(c))
            .on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
            .on('error', reject)
        })
        .on('error', reject)
    })
    const list = JSON.parse(page) as {
      metadata: { continue?: string }
      items: Array<{ metadata: { namespace: string; name: string } }>
    }
    for (const item of list.items) onItem(item)
    cont = list.metadata.continue ?? ''
  } while (cont)
  agent.destroy()
}

const runCache = async (): Promise<CacheProbeResult> => {
  const client = new KubeClient({ connection: { server: new URL(url) } })
  const cache = new ServiceAccountCache({ api: new ServiceAccountApi(client, silentLogger) })
  await listPages(() => {})
  const before = memory()
  const started = performance.now()
  await cache.start()
  const syncMs = performance.now() - started
  const after = memory()
  const lookupNs = await timeLookups((ns, name) => cache.get(ns, name))
  const held = cache.size
  await cache.stop()
  client.close()
  return { held, syncMs, ...perServiceAccount(before, after, held), lookupNs }
}

const runFloor = async (): Promise<CacheProbeResult> => {
  const names = new Map<string, Map<string, true>>()
  let held = 0
  await listPages(() => {})
  const before = memory()
  const started = performance.now()
  await listPages(({ metadata: { namespace, name } }) => {
    let inNs = names.get(namespace)
    if (!inNs) names.set(namespace, (inNs = new Map()))
    inNs.set(name, true)
    held++
  })
  const syncMs = performance.now() - started
  const after = memory()
  const flat = new Map<string, true>()
  for (const [ns, inNs] of names) for (const name of inNs.keys()) flat.set(`${ns}/${name}`, true)
  const lookupNs = await timeLookups(async (ns, name) => flat.get(`${ns}/${name}`))
  return { held, syncMs, ...perServiceAccount(before, after, held), lookupNs }
}

process.stdout.write(`${JSON.stringify(await (mode === 'cache' ? runCache() : runFloor()))}\n`)
