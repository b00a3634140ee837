/**
 * The Helm chart installed on a real kube-apiserver, as `helm install` would send it: every object `helm template`
 * renders with default values (and an image) is applied to a fresh control plane into a namespace that enforces,
 * warns and audits Pod Security "restricted", and must be accepted without a single warning (the API server warns
 * on a Deployment whose Pod template breaks a warned level, and refuses such a Pod under enforce). Then the real
 * webhook runs with a token of the chart's ServiceAccount (so the chart's RBAC is what its cache lists and watches
 * with), the chart's two webhook configurations are pointed at it, and Pods and ServiceAccounts go through them.
 *
 * helm comes from HELM, else test/helm/.cache/bin/helm (test/helm/build.sh); without either the file is skipped.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { isObject } from '../../lib/json.js'
import type { JsonObject } from '../../lib/json.js'
import { defaults, envNames, keys, volumeName } from '../../lib/names.js'
import { arr, at, str, strMap } from '../helpers/manifests.js'
import { isWebhookConfiguration, pointAtLoopback } from './base-manifests.js'
import { startCluster } from './cluster.js'
import { haveHelm, namespace, noHelm, one, render } from './helm.js'
import { KubeRestError, objectPath } from './kube-rest.js'
import { makeWebhookCerts, webhookStarter } from './webhook-process.js'

// Control plane, helm and the webhook: beyond tap's default 30 s per file on a busy machine.
t.setTimeout(300_000)

/** A deep copy as a JSON object (throws on anything else). */
const copy = (v: unknown): JsonObject => {
  const c: unknown = JSON.parse(JSON.stringify(v))
  if (!isObject(c)) throw new Error('not a JSON object')
  return c
}

const kindAndName = (o: unknown): string => `${str(o, 'kind')}/${str(o, 'metadata', 'name')}`

if (!haveHelm) {
  t.plan(0, noHelm)
} else {
  // --- the chart, rendered as an admin installs it: default values and their own image ------------------------
  const home = await mkdtemp(join(tmpdir(), 'helm-install-e2e-'))
  t.teardown(() => rm(home, { recursive: true, force: true }))
  const image = ['--set', 'image.repository=registry.invalid/stackit-pod-identity-webhook', '--set', 'image.tag=e2e']
  const rendered = await render(home, image)
  const objects = rendered.objects.filter(isObject)
  const deployment = one(objects, 'Deployment')
  const chartServiceAccount = one(objects, 'ServiceAccount')
  const mutating = one(objects, 'MutatingWebhookConfiguration')
  const validating = one(objects, 'ValidatingWebhookConfiguration')
  if (!isObject(mutating) || !isObject(validating)) throw new Error('the chart renders no webhook configurations')
  const webhookName = (config: unknown): string => str(config, 'webhooks', 0, 'name') ?? ''
  const escaped = (name: string): string => name.replaceAll('.', '\\.')
  const deniedBy = (config: unknown): RegExp =>
    new RegExp(`admission webhook "${escaped(webhookName(config))}" denied the request: `)

  const cluster = await startCluster()
  t.teardown(() => cluster.stop())
  const api = cluster.admin

  // --- the namespace: the README's labels, plus warn and audit, so the Deployment's template is judged too ---------
  const restricted = {
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/enforce-version': 'latest',
    'pod-security.kubernetes.io/warn': 'restricted',
    'pod-security.kubernetes.io/warn-version': 'latest',
    'pod-security.kubernetes.io/audit': 'restricted',
    'pod-security.kubernetes.io/audit-version': 'latest',
    [keys.skip]: 'true',
  }
  await cluster.createNamespace(namespace, restricted)

  // Everything but the registrations, which need the run's webhook port; stored, never run (no kubelet).
  const beforeRegistration = objects.filter(o => !isWebhookConfiguration(o))
  const applied = await api.apply(beforeRegistration)

  /** A dry-run server-side apply of `object`: the API server's warnings, or its refusal. */
  const dryApply = async (object: JsonObject): Promise<{ status: number; warnings: readonly string[] }> => {
    const path = `${objectPath(object, { withName: true })}?fieldManager=stackit-e2e&force=true&dryRun=All`
    const response = await api.request('PATCH', path, object, 'application/apply-patch+yaml')
    return { status: response.status, warnings: response.warnings }
  }

  /** The Pod template of `of` (the chart's Deployment) as a Pod of its namespace, with the template's labels. */
  const templatePod = (name: string, of: unknown = deployment): JsonObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: strMap(of, 'spec', 'template', 'metadata', 'labels') },
    spec: copy(at(of, 'spec', 'template', 'spec')),
  })

  // Changes that break "restricted", and what the API server's message names: each proves that the no-warning
  // and created assertions can fail.
  const securityContext = (spec: JsonObject): JsonObject => {
    const c = arr(spec, 'containers')[0]
    if (!isObject(c)) throw new Error('the chart renders a Pod without containers')
    const context = copy(c['securityContext'] ?? {})
    c['securityContext'] = context
    return context
  }
  type Weakening = [name: string, weaken: (spec: JsonObject) => void, message: RegExp]
  const weakenings: Weakening[] = [
    ['allowPrivilegeEscalation: true', s => (securityContext(s)['allowPrivilegeEscalation'] = true), /allowPriv/],
    [
      'no seccomp profile',
      s => {
        delete s['securityContext']
        delete securityContext(s)['seccompProfile']
      },
      /seccompProfile/,
    ],
    ['runAsUser: 0', s => (securityContext(s)['runAsUser'] = 0), /runAsUser=0/],
  ]

  // --- the webhook, with the chart's ServiceAccount's token and a serving certificate for 127.0.0.1 -------------
  const serviceAccountName = str(chartServiceAccount, 'metadata', 'name') ?? ''
  const tokenFile = join(cluster.dir, 'webhook-token')
  await writeFile(tokenFile, await cluster.tokenFor(namespace, serviceAccountName), { mode: 0o600 })
  const { certDir, caBundle } = await makeWebhookCerts(cluster)
  const webhook = await webhookStarter(cluster, tokenFile, certDir)()
  t.teardown(() => webhook.stop())

  // The webhook's own Pod, created (enforce judges it) before any webhook is registered.
  const ownPod = await api.request('POST', `/api/v1/namespaces/${namespace}/pods`, templatePod('chart-template'))

  // --- an application namespace; one ServiceAccount written before the check is registered ------------------------
  const apps = 'apps'
  const email = 'app@sa.stackit.cloud'
  const badPath = { [keys.email]: email, [keys.federatedTokenFile]: '/var/run/../../etc/token' }
  await cluster.createNamespace(apps)
  const serviceAccount = (name: string, annotations: Record<string, string>): JsonObject => ({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name, namespace: apps, annotations },
  })
  const pod = (name: string, serviceAccountName: string): JsonObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: apps },
    spec: { serviceAccountName, containers: [{ name: 'main', image: 'registry.invalid/app:1' }] },
  })
  await api.create(serviceAccount('app', { [keys.email]: email }))
  // Stands for a ServiceAccount written before this version was installed: the API server keeps it.
  await api.create(serviceAccount('written-before', badPath))

  // --- registration: the chart's two configurations, pointed at this run's webhook ------------------------------
  const registered = await api.apply([
    pointAtLoopback(mutating, webhook.admissionPort, caBundle),
    pointAtLoopback(validating, webhook.admissionPort, caBundle),
  ])

  /** The stored Pod's injected volume, and its container's mount of it and env. */
  const injection = (stored: unknown): { volumes: unknown[]; mounts: unknown[]; env: Record<string, unknown> } => ({
    volumes: arr(stored, 'spec', 'volumes').filter(v => str(v, 'name') === volumeName),
    mounts: arr(stored, 'spec', 'containers', 0, 'volumeMounts').filter(m => str(m, 'name') === volumeName),
    env: Object.fromEntries(arr(stored, 'spec', 'containers', 0, 'env').map(e => [str(e, 'name'), at(e, 'value')])),
  })

  // The API server picks up new configurations asynchronously: wait until dry runs show both in effect.
  const deadline = Date.now() + 30_000
  const inEffect = async (): Promise<boolean> => {
    const probe = await api.request('POST', `/api/v1/namespaces/${apps}/pods?dryRun=All`, pod('probe', 'app'))
    const check = await api.request(
      'POST',
      `/api/v1/namespaces/${apps}/serviceaccounts?dryRun=All`,
      serviceAccount('probe', badPath),
    )
    return probe.status === 201 && injection(probe.body).volumes.length === 1 && check.status === 403
  }
  while (!(await inEffect())) {
    if (Date.now() > deadline) throw new Error("the chart's webhook configurations did not take effect in 30 s")
    await sleep(200)
  }

  // Set-up ends here: no top-level await may follow the first t.test (tap would end the root test and tear down).

  t.test('the chart renders without a warning', async t => {
    t.equal(rendered.stderr, '')
    t.same(
      objects.map(o => str(o, 'kind')).sort(),
      [
        'ClusterRole',
        'ClusterRoleBinding',
        'Deployment',
        'MutatingWebhookConfiguration',
        'PodDisruptionBudget',
        'Service',
        'ServiceAccount',
        'ValidatingWebhookConfiguration',
      ],
      'what a default install holds',
    )
  })

  t.test(
    'every object is accepted by the real API server, without a warning (Pod Security "restricted" too)',
    async t => {
      t.same(applied.objects.map(kindAndName), beforeRegistration.map(kindAndName), 'all stored')
      t.same(applied.warnings, [], 'no warning on any apply')
      t.same(registered.objects.map(kindAndName), [mutating, validating].map(kindAndName), 'both configurations stored')
      t.same(registered.warnings, [], 'no warning on the registrations')
    },
  )

  t.test('the Deployment\'s Pod template meets the enforced "restricted" profile', async t => {
    t.equal(ownPod.status, 201, 'created in the enforcing namespace')
    t.same(ownPod.warnings, [], 'without a warning')
  })

  for (const [name, weaken, message] of weakenings) {
    t.test(`the template with ${name} → a warning on the Deployment, refused as a Pod`, async t => {
      const weak = copy(deployment)
      const spec = at(weak, 'spec', 'template', 'spec')
      if (!isObject(spec)) throw new Error('the chart renders a Deployment without a Pod template')
      weaken(spec)
      const warned = await dryApply(weak)
      t.equal(warned.status, 200, 'the Deployment is accepted (enforce judges Pods only)')
      t.match(warned.warnings, [/would violate PodSecurity "restricted:latest"/], 'but warned about')
      t.match(warned.warnings, [message], 'naming what')
      const refused = await api.request(
        'POST',
        `/api/v1/namespaces/${namespace}/pods?dryRun=All`,
        templatePod('weak', weak),
      )
      t.equal(refused.status, 403, 'the Pod is refused')
      t.match(refused.body, { message: /violates PodSecurity "restricted:latest"/ })
      t.match(refused.body, { message })
    })
  }

  t.test("the webhook's token has the chart's RBAC: ServiceAccounts read, nothing else", async t => {
    const asWebhook = api.as(await readFile(tokenFile, 'utf8'))
    type Access = [method: string, path: string, body: unknown, status: number]
    const accesses: Access[] = [
      ['GET', '/api/v1/serviceaccounts?limit=1', undefined, 200],
      ['GET', `/api/v1/namespaces/${apps}/serviceaccounts/app`, undefined, 200],
      ['POST', `/api/v1/namespaces/${apps}/serviceaccounts`, serviceAccount('sneaky', {}), 403],
      ['GET', `/api/v1/namespaces/${apps}/secrets`, undefined, 403],
      ['GET', `/api/v1/namespaces/${apps}/pods`, undefined, 403],
    ]
    for (const [method, path, body, status] of accesses) {
      t.equal((await asWebhook.request(method, path, body)).status, status, `${method} ${path}`)
    }
  })

  t.test("a Pod created through the chart's MutatingWebhookConfiguration carries the volume and env", async t => {
    const stored = await api.create(pod('app', 'app'))
    const { volumes, mounts, env } = injection(stored)
    const token = {
      audience: defaults.audience,
      expirationSeconds: defaults.tokenExpirationSeconds,
      path: defaults.tokenPath,
    }
    t.match(volumes, [{ projected: { sources: [{ serviceAccountToken: token }] } }])
    t.match(mounts, [{ mountPath: defaults.mountPath, readOnly: true }])
    // Only the email by default: the SDKs' defaults apply to the rest, as with the reference webhook.
    t.same(env, { [envNames.email]: email })
  })

  t.test("a Pod of a broken ServiceAccount is denied by the chart's webhook, named as in the reference", async t => {
    t.equal(webhookName(mutating), 'mpod.stackit.cloud')
    const error = await api.create(pod('broken', 'written-before')).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.type(error, KubeRestError)
    t.match(error, { status: 403, message: deniedBy(mutating) })
    t.match(error, { message: /federated-token-file/ })
  })

  t.test("the webhook's own Pods are left alone by the chart's configuration", async t => {
    const stored = await api.create(templatePod('chart-template-after'))
    t.same(injection(stored).volumes, [], 'no volume')
  })

  t.test(
    "a ServiceAccount with a broken annotation is refused by the chart's ValidatingWebhookConfiguration",
    async t => {
      const error = await api.create(serviceAccount('bad-path', badPath)).then(
        () => undefined,
        (e: unknown) => e,
      )
      t.type(error, KubeRestError)
      t.match(error, { status: 403, message: deniedBy(validating) })
      t.match(error, { message: /federated-token-file/ })
      const stored = await api.request('GET', `/api/v1/namespaces/${apps}/serviceaccounts/bad-path`)
      t.equal(stored.status, 404, 'not stored')
    },
  )
}
