import t from 'tap'
import { decidePod, formatAge, reviewPod, viewPod, type PodDecision } from '../../lib/admission/pod-decision.js'
import { StaticServiceAccountSource } from '../../lib/admission/offline-source.js'
import type { ServiceAccount, ServiceAccountSource } from '../../lib/admission/serviceaccount.js'
import { WebhookError } from '../../lib/errors.js'
import type { JsonObject } from '../../lib/json.js'

const emailKey = 'workload-identity.stackit.cloud/service-account-email'

/** The decision for a Pod object, through its view as the review computes it. */
const review = (pod: JsonObject, namespace: string, source: ServiceAccountSource): Promise<PodDecision> =>
  reviewPod(viewPod(pod), namespace, source)

t.test('decided before any lookup: the Pod’s opt-out and an unusable ServiceAccount name', async t => {
  let lookups = 0
  const down: ServiceAccountSource = {
    get: () => (lookups++, Promise.reject(new WebhookError('SERVICEACCOUNT_LOOKUP_FAILED', 'API server unreachable'))),
    ready: () => true,
  }
  const skip = 'workload-identity.stackit.cloud/skip-pod-identity-webhook'
  type Row = [name: string, pod: JsonObject, outcome: string, message?: RegExp]
  const rows: Row[] = [
    [
      'annotation opt-out while the API server is down → skipped',
      { metadata: { annotations: { [skip]: 'true' } }, spec: { containers: [] } },
      'skipped',
    ],
    ['label opt-out → skipped', { metadata: { labels: { [skip]: 'true' } }, spec: { containers: [] } }, 'skipped'],
    [
      'opt-out "TRUE" (case ignored) → skipped',
      { metadata: { labels: { [skip]: 'TRUE' } }, spec: { containers: [] } },
      'skipped',
    ],
    [
      'ServiceAccount name ".." → denied',
      { spec: { serviceAccountName: '..', containers: [] } },
      'denied',
      /spec.serviceAccountName "\.\." is not a valid ServiceAccount name/,
    ],
    [
      'ServiceAccount name "." → denied',
      { spec: { serviceAccountName: '.', containers: [] } },
      'denied',
      /"\." is not a valid/,
    ],
    [
      'ServiceAccount name with a slash → denied',
      { spec: { serviceAccountName: 'a/b', containers: [] } },
      'denied',
      /"a\/b" is not a valid/,
    ],
    [
      'ServiceAccount name of 254 characters → denied',
      { spec: { serviceAccountName: 'a'.repeat(254), containers: [] } },
      'denied',
      /is not a valid ServiceAccount name/,
    ],
  ]
  for (const [name, pod, outcome, message] of rows) {
    const d = await review(pod, 'ns', down)
    t.equal(d.outcome, outcome, name)
    if (message && d.outcome === 'denied') t.match(d.error.message, message, name)
  }
  t.equal(lookups, 0, 'no lookup was made')
  t.equal(
    (await review({ spec: { serviceAccountName: 'my-app.v2', containers: [] } }, 'ns', down)).outcome,
    'denied',
    'a valid dotted name is looked up',
  )
  t.equal(lookups, 1)
  await review({ spec: { containers: [] } }, 'ns', down)
  t.equal(lookups, 2, 'no metadata: no opt-out, the ServiceAccount is looked up')
  for (const value of ['false', 'nope', '']) {
    const before = lookups
    await review({ metadata: { labels: { [skip]: value } }, spec: { containers: [] } }, 'ns', down)
    t.equal(lookups, before + 1, `skip label ${JSON.stringify(value)}: the ServiceAccount is looked up`)
  }
})

t.test('a malformed skip value denies only a Pod that would get an identity', async t => {
  const skip = 'workload-identity.stackit.cloud/skip-pod-identity-webhook'
  const source = new StaticServiceAccountSource([
    { namespace: 'ns', name: 'plain', annotations: new Map() },
    { namespace: 'ns', name: 'ours', annotations: new Map([[emailKey, 'a@b.cd']]) },
  ])
  const podWith = (
    serviceAccountName: string,
    labels: Record<string, string>,
    annotations: Record<string, string> = {},
  ): JsonObject => ({ metadata: { labels, annotations }, spec: { serviceAccountName, containers: [{ name: 'app' }] } })
  const ignored = (kind: string, value: string): string =>
    `Pod ${kind} skip-pod-identity-webhook="${value}" ignored: not "true" or "false", and no identity applies`
  type Row = [name: string, pod: JsonObject, outcome: PodDecision['outcome'], detail: RegExp | string[]]
  const rows: Row[] = [
    [
      'label "yes", ServiceAccount without identity → allowed untouched, a warning names the value',
      podWith('plain', { [skip]: 'yes' }),
      'skipped',
      [ignored('label', 'yes')],
    ],
    [
      'annotation "maybe", ServiceAccount without identity → allowed untouched',
      podWith('plain', {}, { [skip]: 'maybe' }),
      'skipped',
      [ignored('annotation', 'maybe')],
    ],
    [
      'label "yes", ServiceAccount with identity → denied naming the label and value',
      podWith('ours', { [skip]: 'yes' }),
      'denied',
      /^Pod label workload-identity\.stackit\.cloud\/skip-pod-identity-webhook="yes" must be "true" or "false"\. Fix/,
    ],
    ['label "false", ServiceAccount with identity → mutated', podWith('ours', { [skip]: 'false' }), 'mutated', []],
    [
      'empty label, ServiceAccount with identity → mutated with a warning',
      podWith('ours', { [skip]: '' }),
      'mutated',
      ['Pod label skip-pod-identity-webhook is empty: treated as absent'],
    ],
  ]
  for (const [name, pod, outcome, detail] of rows) {
    const d = await review(pod, 'ns', source)
    t.equal(d.outcome, outcome, name)
    if (detail instanceof RegExp) t.match(d.outcome === 'denied' ? d.error.message : '', detail, name)
    else t.same(d.warnings, detail, `${name}: warnings`)
    if (d.outcome === 'denied') t.equal(d.error.code, 'INVALID_ANNOTATION', name)
  }
})

t.test('a ServiceAccount answered from a cached copy: a warning names it and the copy’s age', async t => {
  const staleSource = (sa: ServiceAccount): ServiceAccountSource => ({
    get: () => Promise.resolve(sa),
    ready: () => true,
  })
  const pod = (containers: JsonObject[]): JsonObject => ({
    metadata: { name: 'p' },
    spec: { serviceAccountName: 'app', containers },
  })
  const ours = new Map([[emailKey, 'a@b.cd']])
  const app = (annotations: ReadonlyMap<string, string>, staleMs?: number): ServiceAccount => ({
    namespace: 'team-a',
    name: 'app',
    annotations,
    ...(staleMs === undefined ? {} : { staleMs }),
  })
  const stale = (age: string): string =>
    `ServiceAccount team-a/app read from a copy ${age} old: the API server is unreachable`
  type Row = [name: string, sa: ServiceAccount, pod: JsonObject, outcome: PodDecision['outcome'], warnings: string[]]
  const rows: Row[] = [
    ['mutated from a 2m10s old copy', app(ours, 130_000), pod([{ name: 'c' }]), 'mutated', [stale('2m10s')]],
    [
      'not ours, from a copy: allowed, still warned',
      app(new Map(), 4_999),
      pod([{ name: 'c' }]),
      'skipped',
      [stale('4s')],
    ],
    [
      'the stale warning comes first, before the mutation’s own',
      app(ours, 3_725_000),
      pod([{ name: 'c', env: [{ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: 'x' }] }, { name: 'd' }]),
      'mutated',
      [stale('1h2m5s'), "container c: STACKIT_SERVICE_ACCOUNT_EMAIL already set, keeping the container's value"],
    ],
    [
      'denied: no stale warning',
      app(new Map([[emailKey, 'not an e-mail']]), 1_000),
      pod([{ name: 'c' }]),
      'denied',
      [],
    ],
    ['a fresh answer: no warning', app(ours), pod([{ name: 'c' }]), 'mutated', []],
  ]
  for (const [name, sa, p, outcome, warnings] of rows) {
    const d = await review(p, 'team-a', staleSource(sa))
    t.equal(d.outcome, outcome, name)
    t.same(d.warnings, warnings, `${name}: warnings`)
  }
  const long: ServiceAccount = { namespace: 'n'.repeat(63), name: 'a'.repeat(253), annotations: ours, staleMs: 60_000 }
  const d = await review(pod([{ name: 'c' }]), long.namespace, staleSource(long))
  t.equal(d.warnings.length, 1)
  t.ok(
    d.warnings.every(w => w.length < 120),
    'a long name is cut to fit a header',
  )
  t.match(
    d.warnings[0],
    /^ServiceAccount n+… read from a copy 1m0s old: the API server is unreachable$/,
    'the name is cut, not the age',
  )
})

t.test('ages are printed like Go durations, to the second', async t => {
  const rows: [ms: number, text: string][] = [
    [0, '0s'],
    [999, '0s'],
    [59_999, '59s'],
    [60_000, '1m0s'],
    [130_000, '2m10s'],
    [3_600_000, '1h0m0s'],
    [3_725_000, '1h2m5s'],
    [90_061_000, '25h1m1s'],
    [-5, '0s'],
  ]
  for (const [ms, text] of rows) t.equal(formatAge(ms), text, `${ms} ms`)
})

t.test('the Pod view: ServiceAccount name, Pod name, only our labels and annotations', async t => {
  const rows: [spec: unknown, name: string][] = [
    [undefined, 'default'],
    [{}, 'default'],
    [{ serviceAccountName: '' }, 'default'],
    [{ serviceAccount: 'old' }, 'old'],
    [{ serviceAccountName: 'new', serviceAccount: 'old' }, 'new'],
    [{ serviceAccountName: 5 }, 'default'],
  ]
  for (const [spec, name] of rows) t.equal(viewPod({ spec }).serviceAccount, name, JSON.stringify(spec))
  const names: [metadata: unknown, name: string][] = [
    [undefined, ''],
    [{ name: 'p', generateName: 'g-' }, 'p'],
    [{ generateName: 'g-' }, 'g-'],
    [{ generateName: 3 }, ''],
    ['not an object', ''],
  ]
  for (const [metadata, name] of names) t.equal(viewPod({ metadata }).name, name, JSON.stringify(metadata))
  const ours = `${'workload-identity.stackit.cloud/'}skip-pod-identity-webhook`
  const view = viewPod({
    metadata: { labels: { app: 'x', [ours]: 'true' }, annotations: { other: 'y', [ours]: 'false' } },
  })
  t.same([...view.labels], [[ours, 'true']], 'labels: only ours')
  t.same([...view.annotations], [[ours, 'false']], 'annotations: only ours')
})

t.test('prototype keys in the Pod are plain data', async t => {
  const sa: ServiceAccount = {
    namespace: 'ns',
    name: 'default',
    annotations: new Map([['workload-identity.stackit.cloud/service-account-email', 'a@b.cd']]),
  }
  const pod = JSON.parse(
    '{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}},' +
      '"spec":{"__proto__":{"containers":[]},"containers":[{"name":"a","__proto__":{"env":[]}}]}}',
  ) as JsonObject
  const decision = await review(pod, 'ns', new StaticServiceAccountSource([sa]))
  t.equal(decision.outcome, 'mutated')
  t.equal(({} as Record<string, unknown>)['polluted'], undefined, 'Object.prototype untouched')
  if (decision.outcome === 'mutated') {
    t.ok(
      decision.patch.every(op => !op.path.includes('__proto__')),
      'no patch into prototype keys',
    )
  }
})

t.test('every container skipped → allowed without patch, warnings still returned', async t => {
  const sa: ServiceAccount = {
    namespace: 'ns',
    name: 'default',
    annotations: new Map([['workload-identity.stackit.cloud/service-account-email', 'a@b.cd']]),
  }
  const pod = {
    metadata: { annotations: { 'workload-identity.stackit.cloud/skip-containers': 'app, ghost' } },
    spec: { containers: [{ name: 'app' }] },
  }
  const d = decidePod(viewPod(pod), 'ns', sa)
  t.same(d, {
    outcome: 'skipped',
    reason: 'all containers skipped',
    warnings: ['skip-containers names "ghost", which is not a container of this Pod'],
  })
})
