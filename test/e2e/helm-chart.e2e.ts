/**
 * The two install paths never drift: the Helm chart (manifests/helm/stackit-pod-identity-webhook) rendered by the
 * real `helm template` with default values, and with certmanager.enabled=true, against manifests/base (and its
 * cert-manager overlay). Names and labels may differ between the two; what the objects do may not: container args,
 * ports, probes, resources, security contexts, RBAC rules, webhook rules, selectors, failure policies, timeouts,
 * reinvocation policy. Also: every bad value the schema guards makes `helm template` fail with a message naming it.
 *
 * helm comes from HELM, else test/helm/.cache/bin/helm (test/helm/build.sh); without either the file is skipped.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseServeArgs } from '../../lib/cli/serve-config.js'
import { admissionPaths } from '../../lib/server/admission-handler.js'
import { arr, at, isObj, manifestsDir, parseYamlFile, selects, str, strMap } from '../helpers/manifests.js'
import { loadBaseManifests } from './base-manifests.js'
import { haveHelm, noHelm, one, release, render } from './helm.js'

/** Without `keys` (names, labels: allowed to differ); a copy, for comparisons. */
const without = (v: unknown, ...keys: string[]): unknown =>
  isObj(v) ? Object.fromEntries(Object.entries(v).filter(([k]) => !keys.includes(k))) : v

/** What a Deployment's one container and its Pod do, with named ports resolved to numbers. */
const behaviour = (deployment: unknown): Record<string, unknown> & { args: readonly unknown[] } => {
  const pod = at(deployment, 'spec', 'template', 'spec')
  const container = arr(pod, 'containers')[0]
  const ports = arr(container, 'ports')
  const portNumber = (p: unknown): unknown =>
    typeof p === 'string'
      ? at(
          ports.find(q => str(q, 'name') === p),
          'containerPort',
        )
      : p
  const probe = (name: string): unknown => {
    const p = at(container, name)
    return isObj(p) ? { ...p, httpGet: { ...(p['httpGet'] as object), port: portNumber(at(p, 'httpGet', 'port')) } } : p
  }
  const mount = arr(container, 'volumeMounts')[0]
  const volume = arr(pod, 'volumes').find(v => str(v, 'name') === str(mount, 'name'))
  return {
    replicas: at(deployment, 'spec', 'replicas'),
    strategy: at(deployment, 'spec', 'strategy'),
    revisionHistoryLimit: at(deployment, 'spec', 'revisionHistoryLimit'),
    args: arr(container, 'args'),
    // In port order: the order of the list does nothing.
    ports: ports
      .map(p => without(p, 'name'))
      .sort((a, b) => Number(at(a, 'containerPort')) - Number(at(b, 'containerPort'))),
    livenessProbe: probe('livenessProbe'),
    readinessProbe: probe('readinessProbe'),
    lifecycle: at(container, 'lifecycle'),
    resources: at(container, 'resources'),
    imagePullPolicy: at(container, 'imagePullPolicy'),
    containerSecurityContext: at(container, 'securityContext'),
    podSecurityContext: at(pod, 'securityContext'),
    mount: without(mount, 'name'),
    secretMode: at(volume, 'secret', 'defaultMode'),
    terminationGracePeriodSeconds: at(pod, 'terminationGracePeriodSeconds'),
    priorityClassName: at(pod, 'priorityClassName'),
    automountServiceAccountToken: at(pod, 'automountServiceAccountToken'),
    enableServiceLinks: at(pod, 'enableServiceLinks'),
    topologySpread: arr(pod, 'topologySpreadConstraints').map(c => without(c, 'labelSelector')),
    skipLabel: strMap(deployment, 'spec', 'template', 'metadata', 'labels')[skipKey],
  }
}

const skipKey = 'workload-identity.stackit.cloud/skip-pod-identity-webhook'

/** A webhook entry without what may differ (its name, its Service's name and path). */
const webhookBehaviour = (config: unknown): unknown[] =>
  arr(config, 'webhooks').map(w => ({
    ...(without(w, 'name', 'clientConfig') as object),
    clientConfig: without(at(w, 'clientConfig', 'service'), 'name', 'path'),
    caBundle: at(w, 'clientConfig', 'caBundle'),
  }))

/** The base's objects with the cert-manager overlay's added and its annotation patch applied. */
const loadCertManagerInstall = async (): Promise<unknown[]> => {
  const dir = join(manifestsDir, 'overlays', 'cert-manager')
  const added = [
    ...(await parseYamlFile(join(dir, 'issuers.yaml'))),
    ...(await parseYamlFile(join(dir, 'certificates.yaml'))),
  ]
  const patches = (await parseYamlFile(join(dir, 'webhook-ca-injection.yaml'))).map(d => d.doc)
  const base = (await loadBaseManifests()).map(o => {
    const patch = patches.find(
      p => str(p, 'kind') === str(o, 'kind') && str(p, 'metadata', 'name') === str(o, 'metadata', 'name'),
    )
    const annotations = strMap(patch, 'metadata', 'annotations')
    return patch ? { ...o, metadata: { ...(o['metadata'] as object), annotations } } : o
  })
  return [...base, ...added.map(d => d.doc)]
}

if (!haveHelm) {
  t.plan(0, noHelm)
} else {
  const home = await mkdtemp(join(tmpdir(), 'helm-chart-e2e-'))
  t.teardown(() => rm(home, { recursive: true, force: true }))
  const base = await loadBaseManifests()

  const certManagerOn = ['--set', 'certmanager.enabled=true']
  type Install = [name: string, args: string[], kustomize: () => Promise<unknown[]>]
  const installs: Install[] = [
    ['default values ≡ manifests/base', [], async () => base],
    ['certmanager.enabled=true ≡ overlays/cert-manager', certManagerOn, loadCertManagerInstall],
  ]
  for (const [name, args, kustomize] of installs) {
    t.test(name, async t => {
      const { objects, stderr } = await render(home, args)
      t.equal(stderr, '', 'helm template prints no warning')
      const theirs = await kustomize()
      const ours = behaviour(one(objects, 'Deployment'))
      t.same(
        ours,
        behaviour(one(theirs, 'Deployment')),
        'Deployment: args, ports, probes, resources, security contexts, spread, skip label',
      )
      t.doesNotThrow(() => parseServeArgs(ours.args.slice(1).map(String)), 'serve accepts the args')

      for (const objs of [objects, theirs]) {
        const deployment = one(objs, 'Deployment')
        const podLabels = strMap(deployment, 'spec', 'template', 'metadata', 'labels')
        const service = one(objs, 'Service')
        const pdb = one(objs, 'PodDisruptionBudget')
        const where = objs === objects ? 'chart' : 'kustomize'
        t.ok(selects(at(deployment, 'spec', 'selector'), podLabels), `${where}: the Deployment selects its Pods`)
        t.ok(selects({ matchLabels: at(service, 'spec', 'selector') }, podLabels), `${where}: the Service too`)
        t.ok(selects(at(pdb, 'spec', 'selector'), podLabels), `${where}: the PodDisruptionBudget too`)
        for (const c of arr(deployment, 'spec', 'template', 'spec', 'topologySpreadConstraints'))
          t.ok(selects(at(c, 'labelSelector'), podLabels), `${where}: spread over its own Pods`)
        const subject = arr(one(objs, 'ClusterRoleBinding'), 'subjects')[0]
        t.same(
          [str(subject, 'name'), str(subject, 'namespace')],
          [str(deployment, 'spec', 'template', 'spec', 'serviceAccountName'), str(deployment, 'metadata', 'namespace')],
          `${where}: the role is bound to the Pods' ServiceAccount`,
        )
        t.equal(
          str(one(objs, 'ClusterRoleBinding'), 'roleRef', 'name'),
          str(one(objs, 'ClusterRole'), 'metadata', 'name'),
          `${where}: to the ClusterRole`,
        )
        for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
          for (const w of arr(one(objs, kind), 'webhooks')) {
            t.equal(str(w, 'clientConfig', 'service', 'name'), str(service, 'metadata', 'name'), `${where}: ${kind}`)
            t.ok(admissionPaths.includes(str(w, 'clientConfig', 'service', 'path') ?? ''), `${where}: served path`)
          }
        }
      }
      const port = (objs: unknown[]): unknown => without(arr(one(objs, 'Service'), 'spec', 'ports')[0], 'targetPort')
      t.same(port(objects), port(theirs), 'Service port')
      const pdb = (objs: unknown[]): unknown => without(at(one(objs, 'PodDisruptionBudget'), 'spec'), 'selector')
      t.same(pdb(objects), pdb(theirs), 'PodDisruptionBudget')
      t.same(at(one(objects, 'ClusterRole'), 'rules'), at(one(theirs, 'ClusterRole'), 'rules'), 'RBAC rules')
      for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
        t.same(webhookBehaviour(one(objects, kind)), webhookBehaviour(one(theirs, kind)), `${kind}: the webhooks`)
      }
      const paths = (objs: unknown[], kind: string): unknown =>
        arr(one(objs, kind), 'webhooks').map(w => str(w, 'clientConfig', 'service', 'path'))
      t.same(paths(objects, 'MutatingWebhookConfiguration'), ['/mutate--v1-pod'], "the reference chart's path")
      t.same(
        paths(objects, 'ValidatingWebhookConfiguration'),
        paths(theirs, 'ValidatingWebhookConfiguration'),
        'ServiceAccount path',
      )
    })
  }

  t.test('with cert-manager, the serving certificate is what the Pods mount and the webhooks trust', async t => {
    const { objects } = await render(home, certManagerOn)
    const theirs = await loadCertManagerInstall()
    for (const [where, objs] of [
      ['chart', objects],
      ['kustomize', theirs],
    ] as const) {
      const deployment = one(objs, 'Deployment')
      const volume = arr(deployment, 'spec', 'template', 'spec', 'volumes')[0]
      const secret = str(volume, 'secret', 'secretName')
      const certs = objs.filter(o => str(o, 'kind') === 'Certificate' && str(o, 'spec', 'secretName') === secret)
      t.equal(certs.length, 1, `${where}: one Certificate makes the mounted Secret`)
      const cert = certs[0]
      const service = one(objs, 'Service')
      const dns = `${str(service, 'metadata', 'name')}.${str(service, 'metadata', 'namespace')}.svc`
      t.ok(arr(cert, 'spec', 'dnsNames').includes(dns), `${where}: the certificate names ${dns}`)
      t.equal(str(cert, 'spec', 'duration'), '2160h', `${where}: 90 days`)
      t.same(at(cert, 'spec', 'privateKey'), { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' }, where)
      t.same(arr(cert, 'spec', 'usages'), ['server auth', 'digital signature'], `${where}: usages`)
      const issuer = objs.find(
        o => str(o, 'kind') === 'Issuer' && str(o, 'metadata', 'name') === str(cert, 'spec', 'issuerRef', 'name'),
      )
      t.ok(issuer, `${where}: the certificate's Issuer is installed`)
      for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
        const config = one(objs, kind)
        t.equal(
          strMap(config, 'metadata', 'annotations')['cert-manager.io/inject-ca-from'],
          `${str(cert, 'metadata', 'namespace')}/${str(cert, 'metadata', 'name')}`,
          `${where}: ${kind} gets the certificate's CA`,
        )
        for (const w of arr(config, 'webhooks')) t.equal(at(w, 'clientConfig', 'caBundle'), undefined, 'no caBundle')
      }
    }
    t.equal(str(one(objects, 'Certificate'), 'metadata', 'name'), `${release}-cert`, "the reference chart's name")
    t.equal(str(one(objects, 'Issuer'), 'metadata', 'name'), `${release}-selfsigned-issuer`, "the reference's Issuer")
  })

  t.test('webhook.caBundle reaches both webhooks; without it and cert-manager, neither has one', async t => {
    const given = await render(home, ['--set', 'webhook.caBundle=Zm9vYmFy'])
    const none = await render(home, [])
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      t.same(
        arr(one(given.objects, kind), 'webhooks').map(w => at(w, 'clientConfig', 'caBundle')),
        ['Zm9vYmFy'],
        kind,
      )
      t.same(
        arr(one(none.objects, kind), 'webhooks').map(w => at(w, 'clientConfig', 'caBundle')),
        [undefined],
        kind,
      )
      t.equal(at(one(given.objects, kind), 'metadata', 'annotations'), undefined, `${kind}: no CA injection`)
    }
  })

  // Our own values, each changing exactly what it names.
  type Toggle = [value: string, check: (objects: readonly unknown[]) => unknown, expected: unknown]
  const kinds = (objects: readonly unknown[]): unknown[] => objects.map(o => str(o, 'kind'))
  const container = (objects: readonly unknown[]): unknown =>
    arr(one(objects, 'Deployment'), 'spec', 'template', 'spec', 'containers')[0]
  const keys = (objects: readonly unknown[]): unknown =>
    arr(one(objects, 'MutatingWebhookConfiguration'), 'webhooks', 0, 'namespaceSelector', 'matchExpressions').map(e =>
      str(e, 'key'),
    )
  const toggles: Toggle[] = [
    ['serviceAccountValidation.enabled=false', o => kinds(o).includes('ValidatingWebhookConfiguration'), false],
    ['podDisruptionBudget.enabled=false', o => kinds(o).includes('PodDisruptionBudget'), false],
    ['serviceAccount.create=false', o => kinds(o).includes('ServiceAccount'), false],
    ['webhook.excludeKubeSystem=false', keys, [skipKey]],
    ['webhook.excludeOptedOutNamespaces=false', keys, ['kubernetes.io/metadata.name']],
    [
      'logLevel=debug',
      o => arr(container(o), 'args').filter(a => String(a).startsWith('--log-level')),
      ['--log-level=debug'],
    ],
    ['extraArgs[0]=--max-cache-staleness=1m', o => arr(container(o), 'args').at(-1), '--max-cache-staleness=1m'],
    [
      `image.digest=sha256:${'a'.repeat(64)}`,
      o => str(container(o), 'image')?.split('@')[1],
      `sha256:${'a'.repeat(64)}`,
    ],
    [
      'webhook.reinvocationPolicy=Never',
      o => at(one(o, 'MutatingWebhookConfiguration'), 'webhooks', 0, 'reinvocationPolicy'),
      'Never',
    ],
  ]
  for (const [value, check, expected] of toggles) {
    t.test(`--set ${value}`, async t => {
      const { objects, stderr } = await render(home, ['--set', value])
      t.equal(stderr, '', 'no warning')
      t.same(check(objects), expected)
    })
  }

  // Each value would render a broken install; the schema refuses it with the value's path in the message.
  type Bad = [value: string, path: string]
  const bad: Bad[] = [
    ['webhook.failurePolicy=Maybe', '/webhook/failurePolicy'],
    ['serviceAccountValidation.failurePolicy=Never', '/serviceAccountValidation/failurePolicy'],
    ['replicaCount=-1', '/replicaCount'],
    ['webhook.port=70000', '/webhook/port'],
    ['webhook.port=0', '/webhook/port'],
    ['service.port=65536', '/service/port'],
    ['webhook.timeoutSeconds=0', '/webhook/timeoutSeconds'],
    ['webhook.timeoutSeconds=31', '/webhook/timeoutSeconds'],
    ['serviceAccountValidation.timeoutSeconds=31', '/serviceAccountValidation/timeoutSeconds'],
    ['certmanager.duration=90d', '/certmanager/duration'],
    ['certmanager.renewBefore=two weeks', '/certmanager/renewBefore'],
    ['webhook.reinvocationPolicy=Always', '/webhook/reinvocationPolicy'],
    ['logLevel=verbose', '/logLevel'],
  ]
  for (const [value, path] of bad) {
    t.test(`--set ${value} → refused, naming ${path}`, async t => {
      const { objects, stderr } = await render(home, ['--set', value])
      t.same(objects, [], 'nothing rendered')
      t.match(stderr, `at '${path}'`, 'the message names the value')
    })
  }

  t.test('the good neighbours of those values render', async t => {
    for (const value of ['certmanager.duration=1h30m', 'webhook.timeoutSeconds=30', 'replicaCount=0']) {
      t.equal((await render(home, ['--set', value])).stderr, '', value)
    }
  })
}
