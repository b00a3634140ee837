/**
 * The ServiceAccount check end to end: the manifests' ValidatingWebhookConfiguration, pointed at the real webhook
 * (`serve` as a child process), on a real kube-apiserver. It proves what only the API server decides: how a denial
 * and a warning reach the client, that the matchConditions (CEL) keep ServiceAccounts without our annotations away
 * from the webhook, and that failurePolicy Ignore and timeoutSeconds let writes through while the webhook is away.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { isObject, isString, own } from '../../lib/json.js'
import type { JsonObject } from '../../lib/json.js'
import { annotationPrefix, keys } from '../../lib/names.js'
import { makeServerCert } from '../helpers/certs.js'
import { isWebhookConfiguration, loadBaseManifests, pointAtLoopback } from './base-manifests.js'
import { startCluster } from './cluster.js'
import type { KubeResponse } from './kube-rest.js'
import { startSilentWebhook } from './silent-webhook.js'
import { makeWebhookCerts, metricValue, webhookStarter } from './webhook-process.js'

// A control plane, two webhook starts and a few held calls of timeoutSeconds each.
t.setTimeout(300_000)

const cluster = await startCluster()
t.teardown(() => cluster.stop())
const api = cluster.admin

// --- manifests/base as users apply it, the webhook registrations held back until the webhook listens -----------
const base = await loadBaseManifests()
const validating = base.find(o => own(o, 'kind') === 'ValidatingWebhookConfiguration')
const webhookAccount = base.find(o => own(o, 'kind') === 'ServiceAccount')
const field = (o: unknown, ...path: (string | number)[]): unknown =>
  path.reduce<unknown>((v, k) => (Array.isArray(v) ? v[Number(k)] : isObject(v) ? own(v, String(k)) : undefined), o)
const webhookName = field(validating, 'webhooks', 0, 'name')
const timeoutSeconds = field(validating, 'webhooks', 0, 'timeoutSeconds')
const [accountNamespace, accountName] = [
  field(webhookAccount, 'metadata', 'namespace'),
  field(webhookAccount, 'metadata', 'name'),
]
if (validating === undefined || !isString(webhookName) || typeof timeoutSeconds !== 'number') {
  throw new Error('manifests/base must hold a ValidatingWebhookConfiguration with a named webhook and a timeout')
}
if (!isString(accountNamespace) || !isString(accountName)) {
  throw new Error('manifests/base must hold the webhook ServiceAccount')
}
await api.apply(base.filter(o => !isWebhookConfiguration(o)))
const tokenFile = join(cluster.dir, 'webhook-token')
await writeFile(tokenFile, await cluster.tokenFor(accountNamespace, accountName, 3600), { mode: 0o600 })

const { certDir, ca, caBundle } = await makeWebhookCerts(cluster)
const startWebhook = webhookStarter(cluster, tokenFile, certDir)
let webhook = await startWebhook()
t.teardown(() => webhook.stop())

// --- helpers -------------------------------------------------------------------------------------------------
const namespace = 'accounts'
const collection = `/api/v1/namespaces/${namespace}/serviceaccounts`
const saPath = (name: string): string => `${collection}/${name}`
const serviceAccount = (name: string, annotations: Readonly<Record<string, string>> = {}): JsonObject => ({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: { name, namespace, annotations },
})
const create = (name: string, annotations?: Readonly<Record<string, string>>): Promise<KubeResponse> =>
  api.request('POST', collection, serviceAccount(name, annotations))
/** A merge patch: the API server admits it as an UPDATE, with the stored object as the old one. */
const patch = (name: string, change: JsonObject): Promise<KubeResponse> =>
  api.request('PATCH', saPath(name), change, 'application/merge-patch+json')
const annotate = (name: string, annotations: Readonly<Record<string, string | null>>): Promise<KubeResponse> =>
  patch(name, { metadata: { annotations } })
const label = (name: string, value: string): Promise<KubeResponse> =>
  patch(name, { metadata: { labels: { 'e2e.example/touched': value } } })
const messageOf = (response: KubeResponse): string => {
  const message = field(response.body, 'message')
  return isString(message) ? message : ''
}
const escaped = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
/** How the API server words a denial by our webhook. */
const deniedPrefix = `admission webhook "${webhookName}" denied the request: `
/** Reviews of ServiceAccounts the running webhook has answered, all outcomes together. */
const serviceAccountReviews = async (): Promise<number> =>
  metricValue(await webhook.metrics(), 'reviews_total', { resource: 'serviceaccounts' })

/** A ServiceAccount the check must refuse; written with dryRun only, to see whether the check is in force. */
const probe = (): Promise<KubeResponse> =>
  api.request('POST', `${collection}?dryRun=All`, serviceAccount('probe', { [keys.email]: 'not an email' }))
/** Registers the manifests' ValidatingWebhookConfiguration with every call sent to 127.0.0.1:`port`. */
const register = (port: number): Promise<unknown> => api.apply([pointAtLoopback(validating, port, caBundle)])
/** Waits until the API server's informer uses a configuration that reaches the real webhook (a probe is denied). */
const untilRefused = async (): Promise<void> => {
  const deadline = Date.now() + 30_000
  for (;;) {
    const response = await probe()
    if (response.status === 403 && messageOf(response).startsWith(deniedPrefix)) return
    if (Date.now() > deadline)
      throw new Error(`the check did not take effect: ${response.status} ${messageOf(response)}`)
    await sleep(200)
  }
}

await cluster.createNamespace(namespace)
// Written before the check is registered, as on a cluster that ran an older version: broken on purpose.
const oldBroken = { [keys.email]: 'old@sa.stackit.cloud', [keys.tokenExpiration]: '5' }
if ((await create('old-broken', oldBroken)).status !== 201) throw new Error('could not create old-broken')
await register(webhook.admissionPort)
await untilRefused()

// Set-up ends here: no top-level await may follow the first t.test (tap would end the root test early).

const brokenCreates: [name: string, annotations: Record<string, string>, problems: string[], warnings: string[]][] = [
  [
    'expiration-not-a-number',
    { [keys.email]: 'a@sa.stackit.cloud', [keys.tokenExpiration]: 'not-a-number' },
    [`${keys.tokenExpiration}="not-a-number" must be a whole number of seconds from 600 to 4294967296`],
    [],
  ],
  [
    'plain-http-endpoint',
    { [keys.email]: 'a@sa.stackit.cloud', [keys.idpTokenEndpoint]: 'http://idp.example' },
    [`${keys.idpTokenEndpoint}="http://idp.example" must be an absolute https:// URL`],
    [],
  ],
  [
    'two-broken-one-empty',
    { [keys.email]: 'not an email', [keys.federatedTokenFile]: '/var/run/../../etc/token', [keys.audience]: '' },
    [
      `${keys.email}="not an email" must be a plain e-mail address`,
      `${keys.federatedTokenFile}="/var/run/../../etc/token" must not contain ".." elements`,
    ],
    // A denial's warnings reach the client in the same answer.
    [`ServiceAccount ${namespace}/two-broken-one-empty annotation audience is empty: treated as absent`],
  ],
]

for (const [name, annotations, problems, warnings] of brokenCreates) {
  t.test(`a ServiceAccount ${name} is refused with the webhook's name and our message, nothing stored`, async t => {
    const before = await serviceAccountReviews()
    const response = await create(name, annotations)
    t.equal(response.status, 403)
    const message = messageOf(response)
    t.ok(message.startsWith(`${deniedPrefix}ServiceAccount ${namespace}/${name} annotation `), message)
    for (const problem of problems) t.match(message, new RegExp(escaped(problem)))
    const fix = problems.length > 1 ? 'Fix the annotations' : 'Fix the annotation'
    t.ok(message.endsWith(`${fix} and apply the ServiceAccount again.`), 'ends with how to fix it')
    t.same(response.warnings, warnings)
    t.equal((await api.request('GET', saPath(name))).status, 404, 'nothing was stored')
    t.equal(await serviceAccountReviews(), before + 1, 'one review')
  })
}

t.test('a typo in a key of ours: created, and the answer carries our warning with the likely key', async t => {
  const typo = `${annotationPrefix}service-acount-email`
  const response = await create('typo', { [typo]: 'typo@sa.stackit.cloud' })
  t.equal(response.status, 201)
  t.same(response.warnings, [
    `ServiceAccount ${namespace}/typo annotation "service-acount-email" is an unknown key; ` +
      'did you mean service-account-email?',
  ])
  t.same(field(await api.get(saPath('typo')), 'metadata', 'annotations'), { [typo]: 'typo@sa.stackit.cloud' })
})

const ours = { [keys.email]: 'conditions@sa.stackit.cloud' }
const matchSteps: [step: string, write: () => Promise<KubeResponse>, reaches: boolean][] = [
  ['CREATE without annotations', () => create('plain'), false],
  [
    'CREATE with only other annotations, one a near miss of our prefix',
    () => create('foreign', { 'example.com/team': 'payments', 'workload-identity.stackit.com/x': 'y' }),
    false,
  ],
  ['UPDATE of a label on it', () => label('foreign', '1'), false],
  ['CREATE with our annotation', () => create('annotated', ours), true],
  ['UPDATE of a label on it', () => label('annotated', '1'), true],
  [
    'UPDATE removing our annotation (only the old object has it)',
    () => annotate('annotated', { [keys.email]: null }),
    true,
  ],
  ['UPDATE of a label after that', () => label('annotated', '2'), false],
  ['CREATE of another with our annotation', () => create('deleted', ours), true],
  ['DELETE of it (not an operation of the rules)', () => api.request('DELETE', saPath('deleted')), false],
]

t.test('the matchConditions run on the API server: only writes touching our prefix reach the webhook', async t => {
  for (const [step, write, reaches] of matchSteps) {
    const before = await serviceAccountReviews()
    const response = await write()
    t.ok(response.status >= 200 && response.status < 300, `${step}: ${response.status} ${messageOf(response)}`)
    t.equal((await serviceAccountReviews()) - before, reaches ? 1 : 0, `${step} → ${reaches ? 'one review' : 'none'}`)
  }
})

/** The warning for a broken annotation an update keeps (the value cut to 12 characters). */
const keptWarning = (key: string, value: string): RegExp => {
  const shown = value.length > 12 ? `${value.slice(0, 12)}…` : value
  const start = escaped(`${key.slice(annotationPrefix.length)}="${shown}"`)
  return new RegExp(`^${start} is broken and kept by this update; Pods using it are denied$`)
}
const oldBrokenUpdates: [change: string, write: () => Promise<KubeResponse>, status: number, expect: RegExp[]][] = [
  ['a label added', () => label('old-broken', '1'), 200, [keptWarning(keys.tokenExpiration, '5')]],
  [
    'automountServiceAccountToken set',
    () => patch('old-broken', { automountServiceAccountToken: false }),
    200,
    [keptWarning(keys.tokenExpiration, '5')],
  ],
  [
    'the broken value changed to another broken one',
    () => annotate('old-broken', { [keys.tokenExpiration]: '6' }),
    403,
    [new RegExp(`^${escaped(deniedPrefix)}.*${escaped(keys.tokenExpiration)}="6"`)],
  ],
  ['the broken value fixed', () => annotate('old-broken', { [keys.tokenExpiration]: '900' }), 200, []],
]

t.test('a ServiceAccount broken before the check existed: updates of other fields pass, with a warning', async t => {
  for (const [change, write, status, expect] of oldBrokenUpdates) {
    const response = await write()
    t.equal(response.status, status, `${change}: ${response.status} ${messageOf(response)}`)
    // Allowed: the warnings say what is still broken. Denied: the message names the new value.
    const texts = status === 200 ? response.warnings : [messageOf(response), ...response.warnings]
    t.match(texts, expect, change)
    t.equal(texts.length, expect.length, `${change}: nothing else`)
  }
  t.match(await api.get(saPath('old-broken')), {
    metadata: { labels: { 'e2e.example/touched': '1' }, annotations: { [keys.tokenExpiration]: '900' } },
    automountServiceAccountToken: false,
  })
})

t.test('with the webhook stopped, annotated ServiceAccount writes still succeed (failurePolicy Ignore)', async t => {
  t.equal(await webhook.stop(), 0, 'the webhook drains and exits 0')
  const broken = { [keys.email]: 'down@sa.stackit.cloud', [keys.tokenExpiration]: 'not-a-number' }
  const created = await create('while-down', broken)
  t.equal(created.status, 201, `CREATE with a broken annotation: ${messageOf(created)}`)
  const updated = await annotate('while-down', { [keys.idpTokenEndpoint]: 'http://idp.example' })
  t.equal(updated.status, 200, `UPDATE adding a broken annotation: ${messageOf(updated)}`)
  t.same([...created.warnings, ...updated.warnings], [], 'no webhook answered, so no warnings')
  t.match(await api.get(saPath('while-down')), {
    metadata: { annotations: { ...broken, [keys.idpTokenEndpoint]: 'http://idp.example' } },
  })

  // Back on the same port, the check is in force again, and judges what was written while it was away.
  webhook = await startWebhook(webhook.admissionPort)
  await untilRefused()
  const touched = await label('while-down', '1')
  t.equal(touched.status, 200, 'an update of another field is allowed')
  t.match(touched.warnings, [
    keptWarning(keys.tokenExpiration, 'not-a-number'),
    keptWarning(keys.idpTokenEndpoint, 'http://idp.example'),
  ])
  t.equal(touched.warnings.length, 2, 'with a warning for each broken annotation it keeps, and no other')
})

t.test('a hung webhook: called with the manifest timeout, given up on, the write let through (Ignore)', async t => {
  const cert = await makeServerCert(cluster.dir, ca, { name: 'silent', dnsNames: ['localhost'], ips: ['127.0.0.1'] })
  const silent = await startSilentWebhook(cert.certFile, cert.keyFile)
  t.teardown(() => silent.close())
  await register(silent.port)
  // Until the informer switches, probes are denied by the real webhook; then one is held and let through.
  const deadline = Date.now() + 60_000
  while (silent.calls().length === 0) {
    if (Date.now() > deadline) throw new Error('the API server never called the silent webhook')
    await probe()
    await sleep(200)
  }
  const held = silent.calls().length
  const started = performance.now()
  const created = await create('during-hang', { [keys.email]: 'not an email' })
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  t.equal(created.status, 201, `the broken ServiceAccount went through unchecked, after ${seconds} s`)
  const call = silent.calls()[held]
  t.equal(call?.url, `/validate-serviceaccount?timeout=${timeoutSeconds}s`, 'the API server set the manifest timeout')
  const abandoned = await Promise.race([call?.abandoned.then(() => true), sleep(10_000).then(() => false)])
  t.ok(abandoned, 'the API server gave up on the call and closed it')

  await register(webhook.admissionPort)
  await untilRefused()
})
