/**
 * The webhook end to end: the real CLI (`serve`) as a child process, authenticating with a bound ServiceAccount
 * token that has only the manifests' RBAC, registered with a real kube-apiserver through the manifests' two webhook
 * configurations. Every case creates objects over REST and reads back what the API server stored, so Kubernetes' own
 * validation of the patched Pod is part of every assertion. (The ServiceAccount check has its own file,
 * serviceaccount-validation.e2e.ts; here it is registered as users deploy it.)
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises'
import { connect } from 'node:tls'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { defaults, envNames, keys, volumeName } from '../../lib/names.js'
import { isObject, isString, own } from '../../lib/json.js'
import type { JsonObject } from '../../lib/json.js'
import { makeCa, makeServerCert } from '../helpers/certs.js'
import type { CertFiles } from '../helpers/certs.js'
import { fixturePath } from '../helpers/paths.js'
import { startCluster } from './cluster.js'
import { isWebhookConfiguration, loadBaseManifests, pointAtLoopback } from './base-manifests.js'
import { KubeRestError } from './kube-rest.js'
import { sidecarName, startSidecarWebhook } from './sidecar-webhook.js'
import { webhookStarter } from './webhook-process.js'

// Control plane, webhook and a few hundred Pod creations: beyond tap's default 30 s per file on a busy machine.
t.setTimeout(600_000)

const cluster = await startCluster()
t.teardown(() => cluster.stop())
const api = cluster.admin

// --- manifests/base, applied as users apply it (all but the webhook registrations, which need the port) -------
const base = await loadBaseManifests()
const ofKind = (kind: string): JsonObject[] => base.filter(o => own(o, 'kind') === kind)
const [baseWebhookConfig] = ofKind('MutatingWebhookConfiguration')
const [baseValidatingConfig] = ofKind('ValidatingWebhookConfiguration')
const [baseServiceAccount] = ofKind('ServiceAccount')
if (baseWebhookConfig === undefined || baseValidatingConfig === undefined || baseServiceAccount === undefined) {
  throw new Error('manifests/base must hold both webhook configurations and a ServiceAccount')
}
const nameOf = (o: unknown): string => {
  const metadata = isObject(o) ? own(o, 'metadata') : undefined
  const name = isObject(metadata) ? own(metadata, 'name') : undefined
  return isString(name) ? name : ''
}
const namespaceOf = (o: JsonObject): string => {
  const metadata = own(o, 'metadata')
  const namespace = isObject(metadata) ? own(metadata, 'namespace') : undefined
  return isString(namespace) ? namespace : ''
}
const baseWebhooks = own(baseWebhookConfig, 'webhooks')
const firstWebhook = Array.isArray(baseWebhooks) ? baseWebhooks[0] : undefined
const firstWebhookName = isObject(firstWebhook) ? own(firstWebhook, 'name') : undefined
if (!isString(firstWebhookName)) throw new Error('the MutatingWebhookConfiguration in manifests/base names no webhook')
/** The name denials carry: `admission webhook "<name>" denied the request: …`. */
const webhookName = firstWebhookName
const namePattern = webhookName.replaceAll('.', '\\.')
/** How the API server words a denial by our webhook. */
const denied = new RegExp(`admission webhook "${namePattern}" denied the request: `)
/** How the API server words a failed call to our webhook (failurePolicy Fail). */
const webhookFailure = new RegExp(`failed calling webhook "${namePattern}"`)
const webhookNamespace = namespaceOf(baseServiceAccount)
const webhookServiceAccount = nameOf(baseServiceAccount)
// The Namespace, the webhook's ServiceAccount and its RBAC, and the Deployment, Service and PDB (stored, never run).
const beforeRegistration = base.filter(o => !isWebhookConfiguration(o))
const applied = await api.apply(beforeRegistration)

const webhookToken = await cluster.tokenFor(webhookNamespace, webhookServiceAccount, 3600)
const tokenFile = join(cluster.dir, 'webhook-token')
await writeFile(tokenFile, webhookToken, { mode: 0o600 })

// --- the webhook's serving certificate, laid out as the kubelet mounts a Secret ---------------------------------
// certDir/tls.crt → ..data/tls.crt, ..data → ..v1: a rotation writes ..v2 and swaps ..data in one rename, which is
// exactly what the webhook sees in a Pod when cert-manager renews the Secret.
const certDir = join(cluster.dir, 'webhook-certs')
await mkdir(certDir)
const webhookCa = await makeCa(cluster.dir, { name: 'webhook-ca' })
const webhookCaPem = await readFile(webhookCa.certFile)
const webhookCaBundle = webhookCaPem.toString('base64')
let certVersion = 0
const installCertificate = async (): Promise<CertFiles> => {
  certVersion++
  const versionDir = join(certDir, `..v${certVersion}`)
  await mkdir(versionDir)
  const pair = await makeServerCert(versionDir, webhookCa, { name: 'tls', dnsNames: ['localhost'], ips: ['127.0.0.1'] })
  await symlink(`..v${certVersion}`, join(certDir, '..data.tmp'))
  await rename(join(certDir, '..data.tmp'), join(certDir, '..data'))
  return pair
}
let currentCert = await installCertificate()
await symlink('..data/tls.crt', join(certDir, 'tls.crt'))
await symlink('..data/tls.key', join(certDir, 'tls.key'))

const startWebhook = webhookStarter(cluster, tokenFile, certDir)
let webhook = await startWebhook()
t.teardown(() => webhook.stop())

// --- registration: the manifests' MutatingWebhookConfiguration, pointed at this run's webhook -------------
const mutatingConfig = pointAtLoopback(baseWebhookConfig, webhook.admissionPort, webhookCaBundle)
const registrationWarnings = (await api.apply([mutatingConfig])).warnings

// --- objects the cases use -----------------------------------------------------------------------------------
const referenceDir = fixturePath('reference')
const readJson = async (file: string): Promise<JsonObject> => {
  const parsed: unknown = JSON.parse(await readFile(join(referenceDir, file), 'utf8'))
  if (!isObject(parsed)) throw new Error(`${file} is not a JSON object`)
  return parsed
}

/** Deep copy with `metadata.namespace` replaced (the fixtures say `default`). */
const inNamespace = (object: JsonObject, namespace: string): JsonObject => {
  const copy: unknown = JSON.parse(JSON.stringify(object))
  if (!isObject(copy)) throw new Error('not an object')
  const metadata = own(copy, 'metadata')
  copy['metadata'] = { ...(isObject(metadata) ? metadata : {}), namespace }
  return copy
}

const serviceAccount = (
  namespace: string,
  name: string,
  annotations: Readonly<Record<string, string>> = {},
): JsonObject => ({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: { name, namespace, annotations },
})

const pod = (namespace: string, name: string, serviceAccountName: string, extra: JsonObject = {}): JsonObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace, ...extra },
  spec: { serviceAccountName, containers: [{ name: 'main', image: 'registry.invalid/app:1' }] },
})

const podPath = (namespace: string, name: string): string => `/api/v1/namespaces/${namespace}/pods/${name}`

/** Reads fields of a stored Pod without casts: the injected volume, and per container its mount and env. */
const injection = (
  stored: JsonObject,
): {
  volumes: unknown[]
  containers: Map<string, { mounts: unknown[]; env: Map<string, unknown> }>
} => {
  const spec = own(stored, 'spec')
  const volumes = isObject(spec) ? own(spec, 'volumes') : undefined
  const containers = new Map<string, { mounts: unknown[]; env: Map<string, unknown> }>()
  for (const list of ['initContainers', 'containers']) {
    const items = isObject(spec) ? own(spec, list) : undefined
    for (const c of Array.isArray(items) ? items : []) {
      if (!isObject(c)) continue
      const name = own(c, 'name')
      const mounts = own(c, 'volumeMounts')
      const env = own(c, 'env')
      containers.set(isString(name) ? name : '?', {
        mounts: (Array.isArray(mounts) ? mounts : []).filter(m => isObject(m) && own(m, 'name') === volumeName),
        env: new Map(
          (Array.isArray(env) ? env : []).filter(isObject).map(e => [String(own(e, 'name')), own(e, 'value')]),
        ),
      })
    }
  }
  return {
    volumes: (Array.isArray(volumes) ? volumes : []).filter(v => isObject(v) && own(v, 'name') === volumeName),
    containers,
  }
}

/**
 * Waits until the API server's informer has picked up the webhook configuration: a dry-run create (webhooks with
 * `sideEffects: None` are called for dry runs) comes back injected.
 */
const waitUntilEffective = async (namespace: string, serviceAccountName: string): Promise<void> => {
  const deadline = Date.now() + 30_000
  for (;;) {
    const response = await api.request(
      'POST',
      `/api/v1/namespaces/${namespace}/pods?dryRun=All`,
      pod(namespace, 'probe', serviceAccountName),
    )
    if (response.status === 201 && isObject(response.body) && injection(response.body).volumes.length === 1) return
    if (Date.now() > deadline)
      throw new Error(
        `the webhook configuration did not take effect: ${response.status} ${JSON.stringify(response.body)}`,
      )
    await sleep(200)
  }
}

await cluster.createNamespace('probe')
await api.create(serviceAccount('probe', 'probe', { [keys.email]: 'probe@sa.stackit.cloud' }))
await waitUntilEffective('probe', 'probe')

// --- ServiceAccounts written before the ServiceAccount check is registered -----------------------------------
// Two carry a broken annotation on purpose (the reference's invalid-expiration, and bad-path below), so that Pod
// admission's denial can be seen: the validating webhook would refuse them now. They stand for ServiceAccounts
// written before this version was installed, which the API server keeps and Pod admission still judges.
await cluster.createNamespace('reference')
const referenceAccounts = own(await readJson('serviceaccounts.json'), 'items')
for (const sa of Array.isArray(referenceAccounts) ? referenceAccounts : []) {
  if (isObject(sa)) await api.create(inNamespace(sa, 'reference'))
}
await cluster.createNamespace('cases')
await api.create(
  serviceAccount('cases', 'bad-path', {
    [keys.email]: 'x@sa.stackit.cloud',
    [keys.federatedTokenFile]: '/var/run/../../etc/token',
  }),
)

// --- registration of the ServiceAccount check: the manifests' ValidatingWebhookConfiguration, pointed likewise ---
const validatingConfig = pointAtLoopback(baseValidatingConfig, webhook.admissionPort, webhookCaBundle)
registrationWarnings.push(...(await api.apply([validatingConfig])).warnings)

// --- the reference webhook's six integration cases ----------------------------------------------------------

type Expected =
  | {
      readonly outcome: 'injected'
      readonly audience: string
      readonly expirationSeconds: number
      readonly mountPath: string
      readonly env: Readonly<Record<string, string>>
    }
  | { readonly outcome: 'unchanged' }
  | { readonly outcome: 'denied'; readonly message: RegExp }

const referenceCases: [fixture: string, expected: Expected][] = [
  [
    'injection',
    {
      outcome: 'injected',
      audience: 'custom-audience',
      expirationSeconds: 1200,
      mountPath: '/custom/path',
      env: {
        [envNames.email]: 'test-sa@stackit.cloud',
        [envNames.idpTokenEndpoint]: 'https://custom-idp.stackit.cloud',
        [envNames.federatedTokenFile]: '/custom/path/token',
      },
    },
  ],
  [
    'bare-bones',
    {
      outcome: 'injected',
      audience: defaults.audience,
      expirationSeconds: defaults.tokenExpirationSeconds,
      mountPath: defaults.mountPath,
      env: { [envNames.email]: 'test-sa@stackit.cloud' },
    },
  ],
  ['invalid-expiration', { outcome: 'denied', message: /service-account-token-expiration-seconds="not-a-number"/ }],
  ['no-annotation', { outcome: 'unchanged' }],
  ['skip-pod', { outcome: 'unchanged' }],
  ['skip-sa', { outcome: 'unchanged' }],
]

// Set-up ends here: tap ends the root test (running its teardown, which stops the cluster) as soon as no subtest
// is pending, so no top-level await may follow the first t.test.

t.test(
  'manifests/base passes the real API server: accepted, and no warnings (Pod Security "restricted" included)',
  async t => {
    const kindAndName = (o: JsonObject): string => `${String(own(o, 'kind'))}/${nameOf(o)}`
    t.same(applied.objects.map(kindAndName), beforeRegistration.map(kindAndName))
    t.same(applied.warnings, [])
    t.same(registrationWarnings, [], 'both webhook configurations are accepted without a warning')
  },
)

for (const [fixture, expected] of referenceCases) {
  t.test(`reference case ${fixture} → ${expected.outcome}`, async t => {
    const reviewRequest = own(await readJson(`${fixture}.json`), 'request')
    const object = isObject(reviewRequest) ? own(reviewRequest, 'object') : undefined
    if (!isObject(object)) throw new Error(`${fixture}.json has no request.object`)
    const body = inNamespace(object, 'reference')
    const metadata = own(body, 'metadata')
    const name = isObject(metadata) ? String(own(metadata, 'name')) : ''

    if (expected.outcome === 'denied') {
      const error = await api.create(body).then(
        () => undefined,
        (e: unknown) => e,
      )
      t.type(error, KubeRestError)
      t.match(error, { status: 403, message: denied })
      t.match(error, { message: expected.message })
      const stored = await api.request('GET', podPath('reference', name))
      t.equal(stored.status, 404, 'nothing was stored')
      return
    }

    await api.create(body)
    const stored = await api.get(podPath('reference', name))
    const found = injection(stored)
    const main = found.containers.get('test-container')
    if (expected.outcome === 'unchanged') {
      t.same(found.volumes, [], 'no injected volume')
      t.same(main?.mounts, [], 'no injected mount')
      t.same(
        [...(main?.env.keys() ?? [])].filter(k => k.startsWith('STACKIT_')),
        [],
        'no STACKIT_ env',
      )
      return
    }
    t.match(found.volumes, [
      {
        name: volumeName,
        projected: {
          sources: [
            {
              serviceAccountToken: {
                audience: expected.audience,
                expirationSeconds: expected.expirationSeconds,
                path: 'token',
              },
            },
          ],
        },
      },
    ])
    t.equal(found.volumes.length, 1)
    t.match(main?.mounts, [{ name: volumeName, mountPath: expected.mountPath, readOnly: true }])
    t.equal(main?.mounts.length, 1)
    t.same(Object.fromEntries([...(main?.env ?? [])].filter(([k]) => k.startsWith('STACKIT_'))), expected.env)
  })
}

// --- behaviour only a real API server shows -------------------------------------------------------------------

t.test('every container and init container gets the mount and env; the kube-api-access volume stays', async t => {
  await api.create(serviceAccount('cases', 'multi', { [keys.email]: 'multi@sa.stackit.cloud' }))
  await api.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'multi', namespace: 'cases' },
    spec: {
      serviceAccountName: 'multi',
      initContainers: [
        { name: 'init', image: 'registry.invalid/init:1' },
        // A native sidecar: restartPolicy Always must survive the round trip through our patch.
        { name: 'native-sidecar', image: 'registry.invalid/proxy:1', restartPolicy: 'Always' },
      ],
      containers: [
        { name: 'a', image: 'registry.invalid/a:1', env: [{ name: 'KEEP', value: 'me' }] },
        { name: 'b', image: 'registry.invalid/b:1' },
      ],
    },
  })
  const stored = await api.get(podPath('cases', 'multi'))
  const found = injection(stored)
  t.same([...found.containers.keys()].sort(), ['a', 'b', 'init', 'native-sidecar'])
  for (const [name, c] of found.containers) {
    t.equal(c.mounts.length, 1, `${name}: one mount`)
    t.equal(c.env.get(envNames.email), 'multi@sa.stackit.cloud', `${name}: email env`)
  }
  t.equal(found.containers.get('a')?.env.get('KEEP'), 'me', 'existing env kept')
  t.match(stored, { spec: { initContainers: [{ name: 'init' }, { name: 'native-sidecar', restartPolicy: 'Always' }] } })
  t.match(
    stored,
    { spec: { volumes: [{ name: /^kube-api-access-/ }] } },
    'the ServiceAccount plugin’s volume is still there',
  )
})

t.test('a ServiceAccount created immediately before its Pod is honoured (no cache race)', async t => {
  for (let i = 0; i < 5; i++) {
    const name = `fresh-${i}`
    const email = `fresh-${i}@sa.stackit.cloud`
    await api.create(serviceAccount('cases', name, { [keys.email]: email }))
    await api.create(pod('cases', name, name))
    const found = injection(await api.get(podPath('cases', name)))
    t.equal(found.containers.get('main')?.env.get(envNames.email), email, `${name}: injected with its own email`)
  }
})

t.test(
  'an annotation changed on a known ServiceAccount reaches later Pods (the real watch stream delivers it)',
  async t => {
    await api.create(serviceAccount('cases', 'changing', { [keys.email]: 'before@sa.stackit.cloud' }))
    await api.create(pod('cases', 'changing-0', 'changing'))
    t.equal(
      injection(await api.get(podPath('cases', 'changing-0')))
        .containers.get('main')
        ?.env.get(envNames.email),
      'before@sa.stackit.cloud',
    )
    const patched = await api.request(
      'PATCH',
      '/api/v1/namespaces/cases/serviceaccounts/changing',
      { metadata: { annotations: { [keys.email]: 'after@sa.stackit.cloud' } } },
      'application/merge-patch+json',
    )
    t.equal(patched.status, 200)
    // The cached copy is replaced by the MODIFIED event; allow the watch a moment, as a user would see it.
    let email: unknown
    for (let i = 1; i <= 50 && email !== 'after@sa.stackit.cloud'; i++) {
      await api.create(pod('cases', `changing-${i}`, 'changing'))
      email = injection(await api.get(podPath('cases', `changing-${i}`)))
        .containers.get('main')
        ?.env.get(envNames.email)
      if (email !== 'after@sa.stackit.cloud') await sleep(200)
    }
    t.equal(email, 'after@sa.stackit.cloud', 'a later Pod carries the new email')
  },
)

t.test('a denial reaches the client with the webhook name and our message, and nothing is stored', async t => {
  // The ServiceAccount bad-path was written before the ServiceAccount check was registered (see the set-up).
  const error = await api.create(pod('cases', 'bad-path', 'bad-path')).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.type(error, KubeRestError)
  t.match(error, { message: denied })
  t.match(error, { message: /federated-token-file/ })
  t.equal((await api.request('GET', podPath('cases', 'bad-path'))).status, 404)
})

t.test('a Pod labelled with the skip label is not sent to the webhook at all (objectSelector)', async t => {
  await api.create(serviceAccount('cases', 'labelled', { [keys.email]: 'labelled@sa.stackit.cloud' }))
  await api.create(pod('cases', 'labelled', 'labelled', { labels: { [keys.skip]: 'true' } }))
  t.same(injection(await api.get(podPath('cases', 'labelled'))).volumes, [])
})

t.test('an unrelated Pod with a malformed skip label is created untouched, with a warning naming it', async t => {
  // Only "true" is left out by the objectSelector: a label "yes" reaches the webhook, which must not deny it.
  await api.create(serviceAccount('cases', 'unrelated'))
  const body = pod('cases', 'unrelated', 'unrelated', { labels: { [keys.skip]: 'yes' } })
  const created = await api.request('POST', '/api/v1/namespaces/cases/pods', body)
  t.equal(created.status, 201, 'created, not denied')
  t.match(created.warnings, [/skip-pod-identity-webhook="yes"/], 'the warning names the value')
  const found = injection(await api.get(podPath('cases', 'unrelated')))
  t.same(found.volumes, [], 'no injected volume')
  const env = [...(found.containers.get('main')?.env.keys() ?? [])]
  t.same(
    env.filter(k => k.startsWith('STACKIT_')),
    [],
    'no STACKIT_ env',
  )
})

t.test('a Deployment-style Pod: generateName, owner reference, no namespace in the body', async t => {
  await api.create(serviceAccount('cases', 'web', { [keys.email]: 'web@sa.stackit.cloud' }))
  const created = await api.create(
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: 'web-7d9c5b8f4-',
        labels: { app: 'web' },
        ownerReferences: [
          {
            apiVersion: 'apps/v1',
            kind: 'ReplicaSet',
            name: 'web-7d9c5b8f4',
            uid: '6a1c2c47-5f0e-4a8e-9d4e-3b7c1d2e9f00',
            controller: true,
          },
        ],
      },
      spec: { serviceAccountName: 'web', containers: [{ name: 'web', image: 'registry.invalid/web:1' }] },
    },
    'cases',
  )
  const metadata = own(created, 'metadata')
  const name = isObject(metadata) ? own(metadata, 'name') : undefined
  t.match(name, /^web-7d9c5b8f4-[a-z0-9]{5}$/)
  const found = injection(await api.get(podPath('cases', String(name))))
  t.equal(found.volumes.length, 1)
  t.equal(found.containers.get('web')?.env.get(envNames.email), 'web@sa.stackit.cloud')
})

t.test(
  'a second webhook adding a sidecar after ours gets the sidecar mutated by reinvocation, nothing duplicated',
  async t => {
    const sidecarCert = await makeServerCert(cluster.dir, webhookCa, {
      name: 'sidecar',
      dnsNames: ['localhost'],
      ips: ['127.0.0.1'],
    })
    const sidecar = await startSidecarWebhook(sidecarCert.certFile, sidecarCert.keyFile)
    t.teardown(() => sidecar.close())
    await cluster.createNamespace('reinvocation', { 'e2e-sidecar': 'true' })
    // Configurations are called in name order: "zz-…" comes after "stackit-pod-identity-webhook".
    await api.apply([
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name: 'zz-e2e-sidecar-injector' },
        webhooks: [
          {
            name: 'sidecar.e2e.invalid',
            admissionReviewVersions: ['v1'],
            clientConfig: { url: `https://127.0.0.1:${sidecar.port}/`, caBundle: webhookCaBundle },
            rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
            sideEffects: 'None',
            failurePolicy: 'Fail',
            reinvocationPolicy: 'Never',
            timeoutSeconds: 5,
            namespaceSelector: { matchLabels: { 'e2e-sidecar': 'true' } },
          },
        ],
      },
    ])
    t.teardown(() =>
      api.delete('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/zz-e2e-sidecar-injector'),
    )
    await api.create(serviceAccount('reinvocation', 'app', { [keys.email]: 'app@sa.stackit.cloud' }))

    // The sidecar configuration takes effect asynchronously too: retry with fresh names until the sidecar appears.
    let stored: JsonObject | undefined
    for (let i = 0; i < 50 && stored === undefined; i++) {
      await api.create(pod('reinvocation', `app-${i}`, 'app'))
      const candidate = await api.get(podPath('reinvocation', `app-${i}`))
      if (injection(candidate).containers.has(sidecarName)) stored = candidate
      else await sleep(200)
    }
    if (stored === undefined) throw new Error('the sidecar webhook never took effect')
    const found = injection(stored)
    t.ok(sidecar.calls() > 0, 'the sidecar webhook was called')
    t.equal(found.volumes.length, 1, 'one injected volume')
    for (const name of ['main', sidecarName]) {
      t.equal(found.containers.get(name)?.mounts.length, 1, `${name}: exactly one mount`)
      t.equal(found.containers.get(name)?.env.get(envNames.email), 'app@sa.stackit.cloud', `${name}: email env`)
    }
    const mainEnv = injection(stored).containers.get('main')?.env
    t.equal([...(mainEnv?.keys() ?? [])].filter(k => k === envNames.email).length, 1, 'main: the env var once')
  },
)

t.test('the webhook’s token has exactly its RBAC: ServiceAccounts readable, Pods and Secrets not', async t => {
  const asWebhook = api.as(webhookToken)
  t.equal((await asWebhook.request('GET', '/api/v1/serviceaccounts?limit=1')).status, 200)
  t.equal((await asWebhook.request('GET', '/api/v1/pods?limit=1')).status, 403)
  t.equal((await asWebhook.request('GET', '/api/v1/secrets?limit=1')).status, 403)
  t.equal(
    (await asWebhook.request('POST', '/api/v1/namespaces/cases/serviceaccounts', serviceAccount('cases', 'sneaky')))
      .status,
    403,
  )
})

/** The serial number the webhook presents right now. */
const presentedSerial = (port: number): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [webhookCaPem] }, () => {
      const serial = socket.getPeerCertificate().serialNumber
      socket.end()
      resolve(serial)
    })
    socket.on('error', reject)
  })

t.test('certificate rotation while the API server keeps calling: every creation admitted and injected', async t => {
  await api.create(serviceAccount('cases', 'rotation', { [keys.email]: 'rotation@sa.stackit.cloud' }))
  t.equal(await presentedSerial(webhook.admissionPort), currentCert.serial, 'serves the first certificate')
  let stop = false
  const outcomes: { name: string; ok: boolean; reason?: string }[] = []
  const load = (async () => {
    for (let i = 0; !stop; i++) {
      const name = `rotation-${i}`
      await api.create(pod('cases', name, 'rotation')).then(
        () => outcomes.push({ name, ok: true }),
        (e: unknown) => outcomes.push({ name, ok: false, reason: String(e) }),
      )
    }
  })()
  await sleep(500)
  const previous = currentCert
  currentCert = await installCertificate()
  t.not(currentCert.serial, previous.serial)
  const deadline = Date.now() + 30_000
  let serial = previous.serial
  while (serial !== currentCert.serial && Date.now() < deadline) {
    await sleep(100)
    serial = await presentedSerial(webhook.admissionPort)
  }
  await sleep(500)
  stop = true
  await load
  t.equal(serial, currentCert.serial, 'serves the new certificate without a restart')
  t.same(
    outcomes.filter(o => !o.ok),
    [],
    'no creation failed during the rotation',
  )
  t.ok(outcomes.length >= 3, `${outcomes.length} Pods created across the rotation`)
  const notInjected: string[] = []
  for (const { name } of outcomes) {
    if (injection(await api.get(podPath('cases', name))).volumes.length !== 1) notInjected.push(name)
  }
  t.same(notInjected, [], 'every Pod created across the rotation is injected')
})

t.test(
  'webhook restarted while Pods are created: creations fail clearly, resume, nothing admitted unmutated',
  async t => {
    await cluster.createNamespace('restart')
    await api.create(serviceAccount('restart', 'app', { [keys.email]: 'restart@sa.stackit.cloud' }))
    const port = webhook.admissionPort
    let stop = false
    const failures: string[] = []
    let admitted = 0
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        await api.create(pod('restart', `app-${i}`, 'app')).then(
          () => {
            admitted++
          },
          (e: unknown) => {
            failures.push(e instanceof Error ? e.message : String(e))
          },
        )
        await sleep(50)
      }
    })()
    // Let a few creations through first, so the stop really lands in the middle of a stream of requests.
    while (admitted < 2 && failures.length === 0) await sleep(20)
    t.equal(await webhook.stop(), 0, 'the webhook drains and exits 0 on SIGTERM')

    const down = await api.create(pod('restart', 'while-down', 'app')).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.match(down, { message: webhookFailure }, 'the client is told which webhook failed')
    t.equal(
      (await api.request('GET', podPath('restart', 'while-down'))).status,
      404,
      'failurePolicy Fail: nothing stored',
    )

    webhook = await startWebhook(port)
    const resumed = `after-restart-${randomBytes(3).toString('hex')}`
    await api.create(pod('restart', resumed, 'app'))
    t.equal(injection(await api.get(podPath('restart', resumed))).volumes.length, 1, 'creations resume, injected')
    stop = true
    await load

    t.ok(admitted > 0, `the load ran (${admitted} admitted, ${failures.length} refused while the webhook was away)`)
    t.same(
      failures.filter(m => !webhookFailure.test(m)),
      [],
      'every refusal names the webhook that could not be called',
    )
    const list = await api.get('/api/v1/namespaces/restart/pods')
    const items = own(list, 'items')
    let unmutated = 0
    for (const item of Array.isArray(items) ? items : []) {
      if (isObject(item) && injection(item).volumes.length !== 1) unmutated++
    }
    t.equal(unmutated, 0, `none of ${Array.isArray(items) ? items.length : 0} stored Pods is unmutated`)
  },
)
