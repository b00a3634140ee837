// 600 randomly built Pods (seeded, so every run checks the same ones) against the mutation's invariants.
import { posix } from 'node:path'
import t from 'tap'
import jsonpatch from 'fast-json-patch'
import { decidePod } from '../../lib/admission/admission-review.js'
import type { ServiceAccount } from '../../lib/admission/serviceaccount.js'
import type { JsonObject } from '../../lib/json.js'

const P = 'workload-identity.stackit.cloud/'
const seed = 0x5eed

/** mulberry32: a tiny deterministic PRNG. */
const rng = (s: number): (() => number) => () => {
  s = (s + 0x6d2b79f5) | 0
  let x = Math.imul(s ^ (s >>> 15), 1 | s)
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296
}
const random = rng(seed)
const int = (n: number): number => Math.floor(random() * n)
const chance = (p: number): boolean => random() < p
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T
/**
 * The same directory as the kubelet and kernel see it, often spelled the way people write it: `//`, `/./`, a trailing
 * `/`, or no leading `/` (the kubelet adds it).
 */
const spell = (p: string): string =>
  pick([p, p, `${p}/`, p.replace(/\/([^/]*)$/, '/./$1'), p.replace(/\//g, '//'), p.slice(1)])
/** A mount path as the kubelet and the kernel resolve it, written independently of the code under test. */
const normal = (p: string): string => posix.normalize(`/${p}`).replace(/\/+$/, '') || '/'

interface Container { name: string; image: string; env?: JsonObject[]; volumeMounts?: JsonObject[]; restartPolicy?: string; unknownField?: JsonObject }

interface Case { pod: JsonObject; sa: ServiceAccount; mountPath: string; conflicting: readonly string[] }

const buildCase = (i: number): Case => {
  const custom = chance(0.3)
  const mountPath = custom ? `/custom/dir${int(3)}` : '/var/run/secrets/stackit.cloud/serviceaccount'
  const annotations = new Map<string, string>([[`${P}service-account-email`, `sa-${i}@sa.stackit.cloud`]])
  if (custom) annotations.set(`${P}federated-token-file`, `${mountPath}/tok${int(2)}`)
  if (chance(0.3)) annotations.set(`${P}audience`, pick(['a', 'b', 'sts.accounts.stackit.cloud']))
  if (chance(0.3)) annotations.set(`${P}service-account-token-expiration-seconds`, String(600 + int(100000)))
  if (chance(0.2)) annotations.set(`${P}idp-token-endpoint`, 'https://idp.example.com/token')
  if (chance(0.2)) annotations.set(`${P}idp-token-expiration-seconds`, String(1 + int(5000)))

  const conflicting = new Set<string>()
  const volumes: JsonObject[] = [{ name: 'kube-api-access-x', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } }]
  if (chance(0.5)) volumes.push({ name: 'data', emptyDir: {} })
  if (chance(0.1)) volumes.push({ name: 'stackit-workload-identity', projected: { defaultMode: 420, sources: [{ serviceAccountToken: { audience: 'stale', expirationSeconds: 999, path: 'token' } }] } })
  const makeContainer = (name: string): Container => {
    const c: Container = { name, image: `img-${int(10)}` }
    if (chance(0.6)) {
      c.env = Array.from({ length: int(4) }, (_, k) => ({ name: `VAR_${k}`, value: String(int(100)) }))
      if (chance(0.15)) c.env.push({ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: 'user-set@x.io' })
      if (chance(0.1)) c.env.push({ name: 'STACKIT_IDP_TOKEN_ENDPOINT', valueFrom: { configMapKeyRef: { name: 'c', key: 'k' } } })
    }
    if (chance(0.7)) {
      c.volumeMounts = [{ name: 'kube-api-access-x', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }]
      if (chance(0.3)) c.volumeMounts.push({ name: 'data', mountPath: '/data' })
      if (chance(0.04)) {
        c.volumeMounts.push({ name: 'data', mountPath: spell(mountPath) })
        conflicting.add(name)
      }
      // Inside the token directory (shadows the token): denied. A parent or a sibling sharing the prefix: allowed.
      if (chance(0.03)) {
        const inside = `${mountPath}/${pick(['token', 'tok0', 'sub/x'])}`
        c.volumeMounts.push({ name: 'data', mountPath: spell(inside), subPath: 'f' })
        conflicting.add(name)
      }
      if (chance(0.1)) c.volumeMounts.push({ name: 'data', mountPath: spell(posix.dirname(mountPath)), subPath: 'up' })
      const sibling = `${mountPath}${pick(['-other', '.d', '0'])}`
      if (chance(0.1)) c.volumeMounts.push({ name: 'data', mountPath: sibling, subPath: 'side' })
    }
    // Our volume already mounted: once (stale or current: corrected in place) or twice (both would belong at the
    // token directory, where one path cannot hold two mounts: denied).
    const ours = chance(0.2) ? 1 : chance(0.04) ? 2 : 0
    for (let k = 0; k < ours; k++) {
      const where = pick([mountPath, spell(mountPath), '/old/stackit', `${mountPath}/sub`])
      const readOnly = chance(0.5) ? { readOnly: true } : {}
      ;(c.volumeMounts ??= []).push({ name: 'stackit-workload-identity', mountPath: where, ...readOnly })
    }
    if (ours > 1) conflicting.add(name)
    if (chance(0.1)) c.unknownField = { futureApi: [1, { nested: true }] }
    return c
  }
  const containers = Array.from({ length: 1 + int(5) }, (_, k) => makeContainer(`c${k}`))
  const initContainers = Array.from({ length: int(3) }, (_, k) => ({ ...makeContainer(`init${k}`), ...(chance(0.5) ? { restartPolicy: 'Always' } : {}) }))
  for (const c of [...containers, ...initContainers]) {
    if (c.volumeMounts?.some(m => m['name'] === 'data') && !volumes.some(v => v['name'] === 'data')) volumes.push({ name: 'data', emptyDir: {} })
  }
  const podAnnotations: Record<string, string> = {}
  const names = [...containers, ...initContainers].map(c => c.name)
  if (chance(0.2)) podAnnotations[`${P}skip-containers`] = names.filter(() => chance(0.4)).join(', ')
  if (chance(0.1)) podAnnotations[`${P}service-account-token-expiration-seconds`] = String(600 + int(1000))
  // A conflicting mount only matters in a container the webhook does not skip.
  const skipped = new Set((podAnnotations[`${P}skip-containers`] ?? '').split(', '))
  const unskipped = [...conflicting].filter(n => !skipped.has(n))
  const spec: JsonObject = { serviceAccountName: 'app', containers, volumes, ...(initContainers.length ? { initContainers } : {}), futureSpecField: 'kept' }
  const metadata = { generateName: 'g-', annotations: podAnnotations }
  const sa = { namespace: 'ns', name: 'app', annotations }
  return { pod: { apiVersion: 'v1', kind: 'Pod', metadata, spec }, sa, mountPath, conflicting: unskipped }
}

const all = (pod: JsonObject): JsonObject[] => {
  const spec = pod['spec'] as JsonObject
  return [...((spec['initContainers'] as JsonObject[] | undefined) ?? []), ...(spec['containers'] as JsonObject[])]
}
const list = (c: JsonObject, f: string): JsonObject[] => (c[f] as JsonObject[] | undefined) ?? []

t.test('generated Pods keep every invariant', async t => {
  const counts = { mutated: 0, denied: 0, skipped: 0 }
  // Denials by kind, and mutated Pods whose containers already held a mount next to or of the token directory.
  const kinds = { at: 0, inside: 0, twice: 0, nearby: 0, oursBefore: 0 }
  for (let i = 0; i < 600; i++) {
    const { pod, sa, mountPath, conflicting } = buildCase(i)
    const conflict = conflicting.length > 0
    const original = structuredClone(pod)
    const d = decidePod(pod, 'ns', 'app', sa)
    counts[d.outcome]++
    const label = `case ${i} (seed ${seed})`
    t.same(pod, original, `${label}: input never modified`)
    if (conflict) {
      t.equal(d.outcome, 'denied', `${label}: a clash in the token directory is denied`)
      if (d.outcome === 'denied' && d.error.code !== 'CONFLICT') t.fail(`${label}: ${d.error.code}`)
      if (d.outcome === 'denied') {
        kinds.at += Number(d.error.message.includes('already mounts volume'))
        kinds.inside += Number(d.error.message.includes(', inside the token directory'))
        kinds.twice += Number(/mounts volume stackit-workload-identity \d+ times/.test(d.error.message))
      }
      if (d.outcome === 'denied' && !conflicting.some(n => d.error.message.includes(`container "${n}"`))) {
        t.fail(`${label}: the denial names no conflicting container`)
      }
      continue
    }
    if (d.outcome === 'denied') {
      t.fail(`${label}: unexpected denial ${d.error.message}`)
      continue
    }
    if (d.outcome === 'skipped') {
      t.equal(d.reason, 'all containers skipped', `${label}: only skipping every container leaves a Pod alone`)
      continue
    }
    const bad = d.patch.filter(op => op.op !== 'add' && op.op !== 'replace' || op.path === '/spec/containers' || op.path === '/spec/initContainers')
    if (bad.length) t.fail(`${label}: forbidden ops ${JSON.stringify(bad)}`)
    const patched = jsonpatch.applyPatch(structuredClone(original), structuredClone(d.patch) as jsonpatch.Operation[], true, false).newDocument as JsonObject
    if (JSON.stringify(patched) !== JSON.stringify(d.pod)) t.fail(`${label}: patch does not reproduce the mutated Pod`)
    const again = decidePod(patched, 'ns', 'app', sa)
    if (again.outcome !== 'skipped' || again.reason !== 'already injected') t.fail(`${label}: not idempotent (${again.outcome})`)

    const skip = new Set(String(((pod['metadata'] as JsonObject)['annotations'] as JsonObject)[`${P}skip-containers`] ?? '').split(',').map(s => s.trim()))
    const spec = patched['spec'] as JsonObject
    const volumes = spec['volumes'] as JsonObject[]
    const volumeNames = volumes.map(v => v['name'])
    if (new Set(volumeNames).size !== volumeNames.length) t.fail(`${label}: duplicate volume names`)
    const ours = volumes.filter(v => v['name'] === 'stackit-workload-identity')
    const token = (((ours[0]?.['projected'] as JsonObject)['sources'] as JsonObject[])[0] as JsonObject)['serviceAccountToken'] as JsonObject
    const exp = token['expirationSeconds'] as number
    const path = token['path'] as string
    if (ours.length !== 1 || !(exp >= 600 && exp <= 4294967296) || path === '' || path.startsWith('/') || path.split('/').includes('..')) {
      t.fail(`${label}: token volume breaks Kubernetes rules`)
    }
    for (const [k, c] of all(patched).entries()) {
      const before = all(original)[k] as JsonObject
      const mounts = list(c, 'volumeMounts')
      if (mounts.some(m => !volumeNames.includes(m['name']))) t.fail(`${label}: mount of a missing volume`)
      if (skip.has(c['name'] as string)) {
        if (JSON.stringify(c) !== JSON.stringify(before)) t.fail(`${label}: skipped container changed`)
        continue
      }
      // The API server rejects two mounts at one path ("mountPath must be unique"); compared as the kernel sees them.
      const paths = mounts.map(m => normal(m['mountPath'] as string))
      if (new Set(paths).size !== paths.length) t.fail(`${label}: two mounts at one path in ${String(c['name'])}`)
      const had = list(before, 'volumeMounts')
      if (had.some(m => m['name'] === 'stackit-workload-identity')) kinds.oursBefore++
      if (had.some(m => m['subPath'] === 'up' || m['subPath'] === 'side')) kinds.nearby++
      const ourMounts = mounts.filter(m => m['name'] === 'stackit-workload-identity')
      const emails = list(c, 'env').filter(e => e['name'] === 'STACKIT_SERVICE_ACCOUNT_EMAIL')
      if (ourMounts.length !== 1 || ourMounts[0]?.['mountPath'] !== mountPath) t.fail(`${label}: ${String(c['name'])} needs exactly one mount at ${mountPath}`)
      if (emails.length !== 1) t.fail(`${label}: ${String(c['name'])} needs exactly one e-mail env`)
      if (JSON.stringify(c['unknownField']) !== JSON.stringify(before['unknownField']) || c['restartPolicy'] !== before['restartPolicy']) t.fail(`${label}: unknown fields lost`)
    }
    if (spec['futureSpecField'] !== 'kept') t.fail(`${label}: unknown spec field lost`)
  }
  t.ok(counts.mutated > 400, `most cases mutate (${counts.mutated})`)
  t.ok(counts.denied > 5, `some cases conflict (${counts.denied})`)
  t.ok(counts.skipped > 0, `some cases skip every container (${counts.skipped})`)
  for (const [kind, n] of Object.entries(kinds)) t.ok(n > 5, `cases of kind ${kind}: ${n}`)
})
