// The deployment manifests against the code they deploy: every value that breaks a cluster when it drifts
// (paths, ports, flags, labels, RBAC, security context) is read from the parsed YAML and compared with the
// webhook's own exports, or with what `serve --help` prints.
import t from 'tap'
import { spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { admissionPaths } from '../lib/server/admission-handler.js'
import { annotationPrefix, keys } from '../lib/names.js'
import { parseServeArgs, serveFlags, type ServeConfig } from '../lib/cli/serve-config.js'
import {
  arr,
  at,
  isObj,
  loadManifests,
  ofKind,
  repoRoot,
  selects,
  str,
  strMap,
  theOne,
  yamlFiles,
  type ManifestDoc,
} from './helpers/manifests.js'
import { distBin } from './helpers/paths.js'

const bin = distBin('stackit-pod-identity-webhook')
const docs = await loadManifests()

const namespace = theOne(docs, 'Namespace')
const deployment = theOne(docs, 'Deployment')
const service = theOne(docs, 'Service')
const webhookConfig = theOne(docs, 'MutatingWebhookConfiguration')
const webhooks = arr(webhookConfig, 'webhooks')
const webhook = webhooks[0]
const validatingConfig = theOne(docs, 'ValidatingWebhookConfiguration')
const validatingWebhooks = arr(validatingConfig, 'webhooks')
const validatingWebhook = validatingWebhooks[0]
/** The kinds that register webhooks; each overlay must give every webhook of both its CA. */
const webhookConfigKinds = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'] as const
const podSpec = at(deployment, 'spec', 'template', 'spec')
const podLabels = strMap(deployment, 'spec', 'template', 'metadata', 'labels')
const containers = arr(podSpec, 'containers')
const container = containers[0]
const args = arr(container, 'args').map(String)
const flagArgs = args.slice(1)
const defaults: ServeConfig = parseServeArgs([]).config
/** What the container's `serve` runs with, parsed by the webhook's own parser; the error when it rejects them. */
const parsed = ((): { config: ServeConfig; error?: unknown } => {
  try {
    return { config: parseServeArgs(flagArgs).config }
  } catch (error) {
    return { config: defaults, error }
  }
})()
const config = parsed.config
const ns = str(namespace, 'metadata', 'name')

/** A container port by name. */
const containerPort = (name: unknown): unknown =>
  at(
    arr(container, 'ports').find(p => str(p, 'name') === name),
    'containerPort',
  )

/** Flag names in argv form (`--name` or `--name=value`), without dashes. */
const flagNames = (argv: readonly string[]): string[] =>
  argv.filter(a => a.startsWith('--')).map(a => a.slice(2).split('=')[0] as string)

/** Quantities as numbers: CPU in cores (`100m`, `1`), memory in bytes (`128Mi`, `1Gi`). */
const quantity = (v: unknown): number => {
  const m = /^([0-9.]+)(m|Ki|Mi|Gi)?$/.exec(String(v))
  const scales: Readonly<Record<string, number>> = { m: 1e-3, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }
  return m ? Number(m[1]) * (scales[m[2] ?? ''] ?? 1) : NaN
}

const namespacedKinds = new Set([
  'ServiceAccount',
  'Service',
  'Deployment',
  'PodDisruptionBudget',
  'Issuer',
  'Certificate',
  'Job',
])
const clusterKinds = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
])

t.test('every manifest parses, and every object names its namespace exactly when it needs one', async t => {
  const files = await yamlFiles()
  t.ok(files.length >= 12, `found ${files.length} YAML files`)
  type Row = [name: string, doc: ManifestDoc]
  const rows: Row[] = docs.map(d => [
    `${d.file}#${d.index + 1} ${str(d.doc, 'kind')}/${str(d.doc, 'metadata', 'name')}`,
    d,
  ])
  for (const [name, { file, doc }] of rows) {
    const kind = str(doc, 'kind') ?? ''
    t.ok(str(doc, 'apiVersion'), `${name}: apiVersion`)
    if (kind === 'Kustomization') continue
    t.ok(str(doc, 'metadata', 'name'), `${name}: metadata.name`)
    t.ok(namespacedKinds.has(kind) || clusterKinds.has(kind), `${name}: known kind (add it to one of the sets)`)
    const docNs = str(doc, 'metadata', 'namespace')
    if (clusterKinds.has(kind)) t.equal(docNs, undefined, `${name}: cluster-scoped, no namespace`)
    // The example app is applied with `kubectl apply -n <namespace>` to whichever namespace the user picks.
    else if (file.startsWith('manifests/examples/')) t.equal(docNs, undefined, `${name}: example, namespace from -n`)
    else t.equal(docNs, ns, `${name}: in the webhook's namespace`)
  }
})

t.test('kustomizations: every referenced file exists, and every YAML file is used by one', async t => {
  const kustomizations = ofKind(docs, 'Kustomization')
  t.same(kustomizations.map(k => k.file).sort(), [
    'manifests/base/kustomization.yaml',
    'manifests/examples/kustomization.yaml',
    'manifests/overlays/cert-manager/kustomization.yaml',
    'manifests/overlays/openssl/kustomization.yaml',
  ])
  const used = new Set<string>()
  for (const { file, doc } of kustomizations) {
    const dir = dirname(join(repoRoot, file))
    const refs = [...arr(doc, 'resources').map(String), ...arr(doc, 'patches').map(p => String(at(p, 'path')))]
    t.ok(refs.length > 0, `${file}: references something`)
    for (const ref of refs) {
      const target = join(dir, ref)
      t.ok(existsSync(ref.endsWith('.yaml') ? target : join(target, 'kustomization.yaml')), `${file}: ${ref} exists`)
      used.add(relative(repoRoot, target))
    }
  }
  for (const file of (await yamlFiles()).map(f => relative(repoRoot, f))) {
    if (file.endsWith('/kustomization.yaml')) continue
    t.ok(used.has(file), `${file} is listed in a kustomization (else kubectl apply -k silently leaves it out)`)
  }
})

t.test('overlay patches target objects of the base, and webhooks only by the names the base has', async t => {
  const idOf = (doc: unknown): string => `${str(doc, 'kind')}/${str(doc, 'metadata', 'name')}`
  const baseObjects = new Map(docs.filter(d => d.file.startsWith('manifests/base/')).map(d => [idOf(d.doc), d.doc]))
  for (const { file, doc } of ofKind(docs, 'Kustomization', 'manifests/overlays/')) {
    for (const p of arr(doc, 'patches')) {
      const patchFile = relative(repoRoot, join(repoRoot, dirname(file), String(at(p, 'path'))))
      for (const patch of docs.filter(d => d.file === patchFile)) {
        const id = idOf(patch.doc)
        t.ok(baseObjects.has(id), `${patchFile}: ${id} exists in the base`)
        // A strategic-merge patch with an unknown webhook name would append a second, incomplete webhook.
        const webhookNames = arr(baseObjects.get(id), 'webhooks').map(w => str(w, 'name'))
        for (const w of arr(patch.doc, 'webhooks'))
          t.ok(webhookNames.includes(str(w, 'name')), `${patchFile}: webhook ${str(w, 'name')} exists in ${id}`)
      }
    }
  }
})

t.test('MutatingWebhookConfiguration: the call the server expects', async t => {
  t.equal(webhooks.length, 1, 'one webhook')
  const name = str(webhook, 'name') ?? ''
  t.equal(name, 'pod-identity.stackit.cloud')
  const readme = await readFile(join(repoRoot, 'README.md'), 'utf8')
  t.ok(
    readme.includes(`admission webhook "${name}" denied`),
    'the README quotes the same webhook name in its denial example',
  )
  type Row = [field: string, expected: unknown]
  const rows: Row[] = [
    ['admissionReviewVersions', ['v1']],
    ['sideEffects', 'None'],
    ['failurePolicy', 'Fail'],
    ['reinvocationPolicy', 'IfNeeded'],
    [
      'rules',
      [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
    ],
  ]
  for (const [field, expected] of rows) t.same(at(webhook, field), expected, field)

  const path = str(webhook, 'clientConfig', 'service', 'path')
  t.ok(
    path !== undefined && admissionPaths.includes(path),
    `path ${path} is one of the server's admission paths ${admissionPaths.join(', ')}`,
  )
  t.equal(str(webhook, 'clientConfig', 'service', 'name'), str(service, 'metadata', 'name'), 'calls the Service')
  t.equal(
    str(webhook, 'clientConfig', 'service', 'namespace'),
    str(service, 'metadata', 'namespace'),
    'in its namespace',
  )
  t.equal(
    at(webhook, 'clientConfig', 'service', 'port'),
    at(service, 'spec', 'ports', 0, 'port'),
    'on the Service port',
  )
  t.equal(at(webhook, 'clientConfig', 'service', 'port'), 443)

  const timeout = at(webhook, 'timeoutSeconds')
  t.ok(
    Number.isInteger(timeout) && Number(timeout) >= 1 && Number(timeout) <= 30,
    'timeoutSeconds set explicitly, within 1–30',
  )
  t.ok(Number(timeout) <= 10, 'timeoutSeconds shorter than the API server default of 10')
  t.ok(
    Number(timeout) * 1000 > config.lookupTimeoutMs,
    `timeoutSeconds leaves room for a live lookup (--lookup-timeout ${config.lookupTimeoutMs} ms)`,
  )
})

t.test('ValidatingWebhookConfiguration: ServiceAccount writes, on the same Service, never blocking', async t => {
  t.equal(validatingWebhooks.length, 1, 'one webhook')
  t.equal(str(validatingConfig, 'metadata', 'name'), str(webhookConfig, 'metadata', 'name'), 'named as the mutating')
  const name = str(validatingWebhook, 'name') ?? ''
  t.equal(name, 'serviceaccount.pod-identity.stackit.cloud')
  t.not(name, str(webhook, 'name'), 'a name of its own, so denials say which webhook spoke')
  type Row = [field: string, expected: unknown]
  const rows: Row[] = [
    ['admissionReviewVersions', ['v1']],
    ['sideEffects', 'None'],
    // Fail open: an outage must never block ServiceAccount writes; Pod admission still validates.
    ['failurePolicy', 'Ignore'],
    ['matchPolicy', 'Equivalent'],
    [
      'rules',
      [
        {
          operations: ['CREATE', 'UPDATE'],
          apiGroups: [''],
          apiVersions: ['v1'],
          resources: ['serviceaccounts'],
          scope: 'Namespaced',
        },
      ],
    ],
    ['clientConfig.service.path', '/validate-serviceaccount'],
    ['objectSelector', undefined],
    // A validating webhook cannot be reinvoked; the API server rejects the field on it.
    ['reinvocationPolicy', undefined],
  ]
  for (const [field, expected] of rows) t.same(at(validatingWebhook, ...field.split('.')), expected, field)

  type ServiceRow = [field: string, expected: unknown]
  const serviceRows: ServiceRow[] = [
    ['name', str(service, 'metadata', 'name')],
    ['namespace', str(service, 'metadata', 'namespace')],
    ['port', at(service, 'spec', 'ports', 0, 'port')],
  ]
  for (const [field, expected] of serviceRows) {
    t.equal(at(validatingWebhook, 'clientConfig', 'service', field), expected, `service ${field}: the Service's`)
    t.equal(
      at(validatingWebhook, 'clientConfig', 'service', field),
      at(webhook, 'clientConfig', 'service', field),
      `service ${field}: the mutating webhook's`,
    )
  }
  t.same(
    at(validatingWebhook, 'namespaceSelector'),
    at(webhook, 'namespaceSelector'),
    'the namespaces the mutating webhook covers, no more and no fewer',
  )

  const timeout = at(validatingWebhook, 'timeoutSeconds')
  t.ok(
    Number.isInteger(timeout) && Number(timeout) >= 1 && Number(timeout) <= 30,
    'timeoutSeconds set explicitly, within 1–30',
  )
  t.ok(
    Number(timeout) <= Number(at(webhook, 'timeoutSeconds')),
    "timeoutSeconds no longer than the mutating webhook's (the check needs no API lookup)",
  )
})

t.test('matchConditions: only ServiceAccounts with an annotation under our prefix, old or new, are sent', async t => {
  const conditions = arr(validatingWebhook, 'matchConditions')
  t.equal(conditions.length, 1, 'one condition (all must hold, so the either-or is one expression)')
  t.match(str(conditions[0], 'name'), /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'a qualified name')
  const expression = (str(conditions[0], 'expression') ?? '').replace(/\s+/g, ' ').trim()
  // No evaluator here (the end-to-end tier runs the real one): the text is taken apart by its top-level
  // operators and each part compared, so a dropped null check or has() guard, or a changed prefix, fails.
  const split = (text: string, operator: '||' | '&&'): string[] => {
    const parts: string[] = []
    let depth = 0
    let start = 0
    for (let i = 0; i < text.length; i++) {
      if (text[i] === '(') depth++
      else if (text[i] === ')') depth--
      else if (depth === 0 && text.startsWith(operator, i)) {
        parts.push(text.slice(start, i).trim())
        start = i + operator.length
      }
    }
    parts.push(text.slice(start).trim())
    return parts
  }
  const unwrap = (text: string): string => (text.startsWith('(') && text.endsWith(')') ? text.slice(1, -1) : text)
  const keyTest = `exists(k, k.startsWith('${annotationPrefix}'))`
  const [created, old, ...rest] = split(expression, '||').map(part => split(unwrap(part), '&&'))
  type Row = [name: string, actual: unknown, expected: unknown]
  const rows: Row[] = [
    ['two alternatives joined by ||: the new object, the old object', rest.length, 0],
    [
      'the new object: annotations checked with has() first (absent on a ServiceAccount without any)',
      created,
      ['has(object.metadata.annotations)', `object.metadata.annotations.${keyTest}`],
    ],
    [
      'the old object: null on CREATE, so compared with null before any field of it is read',
      old,
      ['oldObject != null', 'has(oldObject.metadata.annotations)', `oldObject.metadata.annotations.${keyTest}`],
    ],
  ]
  for (const [name, actual, expected] of rows) t.same(actual, expected, name)
})

t.test('selectors skip the same label the code reads, and kube-system', async t => {
  const nsSelector = at(webhook, 'namespaceSelector')
  const objSelector = at(webhook, 'objectSelector')
  t.ok(
    arr(nsSelector, 'matchExpressions').some(e => str(e, 'key') === keys.skip),
    `namespaceSelector uses ${keys.skip}`,
  )
  t.ok(
    arr(objSelector, 'matchExpressions').some(e => str(e, 'key') === keys.skip),
    `objectSelector uses ${keys.skip}`,
  )
  type Row = [name: string, selector: unknown, labels: Record<string, string>, selected: boolean]
  const rows: Row[] = [
    [
      "the webhook's own namespace → skipped",
      nsSelector,
      { ...strMap(namespace, 'metadata', 'labels'), 'kubernetes.io/metadata.name': ns ?? '' },
      false,
    ],
    ['kube-system → skipped', nsSelector, { 'kubernetes.io/metadata.name': 'kube-system' }, false],
    [
      'a namespace with the skip label "true" → skipped',
      nsSelector,
      { 'kubernetes.io/metadata.name': 'ci', [keys.skip]: 'true' },
      false,
    ],
    ['an ordinary namespace → called', nsSelector, { 'kubernetes.io/metadata.name': 'team-a' }, true],
    [
      'a namespace with the skip label "false" → called',
      nsSelector,
      { 'kubernetes.io/metadata.name': 'team-b', [keys.skip]: 'false' },
      true,
    ],
    ["the webhook's own Pods → skipped", objSelector, podLabels, false],
    ['a Pod with the skip label "true" → skipped', objSelector, { app: 'x', [keys.skip]: 'true' }, false],
    ['a Pod without labels → called', objSelector, {}, true],
    [
      'a Pod with the skip label "false" → called (the webhook itself reads the value)',
      objSelector,
      { [keys.skip]: 'false' },
      true,
    ],
  ]
  for (const [name, selector, labels, selected] of rows) t.equal(selects(selector, labels), selected, name)
  t.equal(strMap(namespace, 'metadata', 'labels')[keys.skip], 'true', 'the Namespace carries the skip label')
  t.equal(podLabels[keys.skip], 'true', 'the Pod template carries the skip label')
  t.equal(
    strMap(namespace, 'metadata', 'labels')['pod-security.kubernetes.io/enforce'],
    'restricted',
    'Pod Security "restricted" enforced',
  )
})

t.test('container args are serve flags, and ports equal the flags and their defaults', async t => {
  t.equal(args[0], 'serve', 'the image entrypoint gets the serve command')
  t.equal(parsed.error, undefined, "serve's own parser accepts the args")
  for (const flag of flagNames(flagArgs)) t.ok(Object.hasOwn(serveFlags, flag), `--${flag} is a serve flag`)
  t.ok(
    flagArgs.every(a => a.startsWith('--') && a.includes('=')),
    'every flag as --name=value, so no value can be mistaken for a flag',
  )
  type Row = [flag: string, portName: string, key: 'port' | 'healthPort' | 'metricsPort', expected: number]
  const rows: Row[] = [
    ['port', 'webhook', 'port', 9443],
    ['health-port', 'health', 'healthPort', 8081],
    ['metrics-port', 'metrics', 'metricsPort', 8080],
  ]
  for (const [flag, portName, key, expected] of rows) {
    t.equal(containerPort(portName), config[key], `container port ${portName} = --${flag}`)
    t.equal(config[key], defaults[key], `--${flag} equals the default, so running without flags serves the same ports`)
    t.equal(config[key], expected, `--${flag} is ${expected}`)
  }
  t.equal(arr(container, 'ports').length, rows.length, 'no other container ports')
  const targetPort = at(service, 'spec', 'ports', 0, 'targetPort')
  t.equal(
    typeof targetPort === 'string' ? containerPort(targetPort) : targetPort,
    config.port,
    'Service targetPort reaches the admission port',
  )
  t.ok(selects({ matchLabels: at(service, 'spec', 'selector') }, podLabels), 'Service selects the Pods')
})

t.test('serve --help lists every flag the manifest passes and every flag serve accepts', async t => {
  const help = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, 'serve', '--help'], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d))
    child.on('error', reject)
    child.on('close', code => (code === 0 ? resolve(out) : reject(new Error(`serve --help exited ${code}`))))
  })
  const listed = new Set([...help.matchAll(/^\s+--([a-z-]+)/gm)].map(m => m[1]))
  for (const flag of flagNames(flagArgs)) t.ok(listed.has(flag), `manifest flag --${flag} is in serve --help`)
  for (const flag of Object.keys(serveFlags)) t.ok(listed.has(flag), `serve flag --${flag} is in serve --help`)
})

t.test('probes: liveness /healthz, readiness /readyz, both on the health port', async t => {
  type Row = [probe: string, path: string]
  const rows: Row[] = [
    ['livenessProbe', '/healthz'],
    ['readinessProbe', '/readyz'],
  ]
  for (const [probe, path] of rows) {
    t.equal(str(container, probe, 'httpGet', 'path'), path, `${probe} path`)
    t.equal(containerPort(at(container, probe, 'httpGet', 'port')), config.healthPort, `${probe} on --health-port`)
    t.not(at(container, probe, 'httpGet', 'scheme'), 'HTTPS', `${probe} is plain HTTP (no TLS self-dial)`)
  }
})

t.test('certificate Secret mounted read-only where serve reads it', async t => {
  const mounts = arr(container, 'volumeMounts')
  t.equal(mounts.length, 1, 'one mount')
  const mount = mounts[0]
  t.equal(str(mount, 'mountPath'), dirname(config.certFile), 'at --cert-dir')
  t.equal(dirname(config.keyFile), dirname(config.certFile), 'key in the same directory')
  t.equal(at(mount, 'readOnly'), true, 'read-only')
  t.equal(at(mount, 'subPath'), undefined, 'no subPath (it would hide renewals from the process)')
  const volume = arr(podSpec, 'volumes').find(v => str(v, 'name') === str(mount, 'name'))
  t.equal(str(volume, 'secret', 'secretName'), 'stackit-pod-identity-webhook-tls')
  t.equal(at(volume, 'secret', 'defaultMode'), 0o440, 'key readable by owner and fsGroup only')
})

t.test('security context: restricted, UID 65532, read-only root, nothing to escalate', async t => {
  type Row = [where: string, path: ReadonlyArray<string | number>, expected: unknown]
  const pod: Row[] = [
    ['pod', ['runAsNonRoot'], true],
    ['pod', ['runAsUser'], 65532],
    ['pod', ['runAsGroup'], 65532],
    ['pod', ['fsGroup'], 65532],
    ['pod', ['seccompProfile', 'type'], 'RuntimeDefault'],
  ]
  for (const [where, path, expected] of pod)
    t.same(at(podSpec, 'securityContext', ...path), expected, `${where} ${path.join('.')}`)
  for (const field of ['hostNetwork', 'hostPID', 'hostIPC']) t.not(at(podSpec, field), true, `no ${field}`)
  t.equal(containers.length, 1, 'one container')
  t.same(arr(podSpec, 'initContainers'), [], 'no init containers')
  const rows: Row[] = [
    ['container', ['runAsNonRoot'], true],
    ['container', ['allowPrivilegeEscalation'], false],
    ['container', ['privileged'], false],
    ['container', ['readOnlyRootFilesystem'], true],
    ['container', ['capabilities', 'drop'], ['ALL']],
    ['container', ['capabilities', 'add'], undefined],
    ['container', ['seccompProfile', 'type'], 'RuntimeDefault'],
  ]
  for (const [where, path, expected] of rows)
    t.same(at(container, 'securityContext', ...path), expected, `${where} ${path.join('.')}`)
  const dockerfile = await readFile(join(repoRoot, 'Dockerfile'), 'utf8')
  t.match(dockerfile, /^USER 65532$/m, 'the image runs as the same UID')
})

t.test('RBAC: get, list and watch on serviceaccounts, nothing else, bound to the webhook', async t => {
  const roles = [...ofKind(docs, 'ClusterRole'), ...ofKind(docs, 'Role')]
  t.equal(roles.length, 1, 'one role in all manifests')
  const role = theOne(docs, 'ClusterRole')
  t.same(
    at(role, 'rules'),
    [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list', 'watch'] }],
    'exactly one rule, three verbs, one resource',
  )
  t.equal(ofKind(docs, 'RoleBinding').length, 0, 'no RoleBindings')
  const binding = theOne(docs, 'ClusterRoleBinding')
  t.same(at(binding, 'roleRef'), {
    apiGroup: 'rbac.authorization.k8s.io',
    kind: 'ClusterRole',
    name: str(role, 'metadata', 'name'),
  })
  const sa = theOne(docs, 'ServiceAccount')
  t.same(
    at(binding, 'subjects'),
    [{ kind: 'ServiceAccount', name: str(sa, 'metadata', 'name'), namespace: ns }],
    'bound to the webhook only',
  )
  t.equal(str(podSpec, 'serviceAccountName'), str(sa, 'metadata', 'name'), 'the Pods run as that ServiceAccount')
})

t.test('availability: replicas spread over nodes, PDB, priority, drain on termination, resources', async t => {
  const replicas = Number(at(deployment, 'spec', 'replicas'))
  t.ok(replicas >= 2, `${replicas} replicas`)
  t.ok(selects(at(deployment, 'spec', 'selector'), podLabels), 'Deployment selector matches its template')
  t.equal(str(podSpec, 'priorityClassName'), 'system-cluster-critical', 'evicted last, scheduled first')
  const spread = arr(podSpec, 'topologySpreadConstraints').find(c => str(c, 'topologyKey') === 'kubernetes.io/hostname')
  t.equal(at(spread, 'maxSkew'), 1, 'at most one replica more on any node')
  t.ok(selects(at(spread, 'labelSelector'), podLabels), 'spread counts these Pods')
  const pdb = theOne(docs, 'PodDisruptionBudget')
  t.ok(selects(at(pdb, 'spec', 'selector'), podLabels), 'PDB selects the Pods')
  t.ok(
    Number(at(pdb, 'spec', 'minAvailable')) >= 1 && Number(at(pdb, 'spec', 'minAvailable')) < replicas,
    'PDB keeps one, allows one disruption',
  )
  t.equal(
    at(deployment, 'spec', 'strategy', 'rollingUpdate', 'maxUnavailable'),
    0,
    'rollouts never drop below the replica count',
  )

  const preStop = Number(at(container, 'lifecycle', 'preStop', 'sleep', 'seconds'))
  const grace = Number(at(podSpec, 'terminationGracePeriodSeconds'))
  t.ok(preStop > 0, `preStop sleeps ${preStop} s while endpoints are removed`)
  t.ok(
    grace > preStop + config.shutdownTimeoutMs / 1000,
    `terminationGracePeriodSeconds ${grace} > preStop ${preStop} s + --shutdown-timeout ` +
      `${config.shutdownTimeoutMs / 1000} s`,
  )

  const res = at(container, 'resources')
  t.ok(quantity(at(res, 'requests', 'cpu')) > 0, 'CPU request')
  t.ok(quantity(at(res, 'requests', 'memory')) > 0, 'memory request')
  t.ok(
    quantity(at(res, 'limits', 'memory')) >= 2 * quantity(at(res, 'requests', 'memory')),
    'memory limit with headroom',
  )
  const cpuLimit = at(res, 'limits', 'cpu')
  t.ok(cpuLimit === undefined || quantity(cpuLimit) >= 0.5, 'no starving CPU limit')
})

t.test('cert-manager overlay: CA chain, serving certificate for the Service, CA injection', async t => {
  const dir = 'manifests/overlays/cert-manager/'
  const injectOf = (kind: string): string =>
    str(theOne(docs, kind, dir), 'metadata', 'annotations', 'cert-manager.io/inject-ca-from') ?? ''
  const inject = injectOf('MutatingWebhookConfiguration')
  // Without a CA the API server's calls fail, and with failurePolicy Ignore the validation would stop unnoticed.
  for (const kind of webhookConfigKinds) t.equal(injectOf(kind), inject, `${kind}: the same CA injected`)
  const [certNs, certName] = inject.split('/')
  const certificates = ofKind(docs, 'Certificate', dir).map(d => d.doc)
  const issuers = ofKind(docs, 'Issuer', dir).map(d => d.doc)
  const serving = certificates.find(c => str(c, 'metadata', 'name') === certName)
  t.equal(certNs, ns, 'inject-ca-from names a Certificate in the webhook namespace')
  t.ok(serving, `inject-ca-from names the Certificate ${certName} of this overlay`)
  const svcName = `${str(service, 'metadata', 'name')}.${str(service, 'metadata', 'namespace')}.svc`
  t.ok(arr(serving, 'spec', 'dnsNames').includes(svcName), `serving certificate valid for ${svcName}`)
  t.equal(
    str(serving, 'spec', 'secretName'),
    str(arr(podSpec, 'volumes')[0], 'secret', 'secretName'),
    'its Secret is the one the Deployment mounts',
  )
  t.not(at(serving, 'spec', 'isCA'), true, 'the serving certificate is no CA')
  const issuerOf = (c: unknown): unknown =>
    issuers.find(i => str(i, 'metadata', 'name') === str(c, 'spec', 'issuerRef', 'name'))
  const caIssuer = issuerOf(serving)
  t.ok(isObj(at(caIssuer, 'spec', 'ca')), 'signed by a CA issuer, so a renewal keeps the injected CA')
  const ca = certificates.find(c => str(c, 'spec', 'secretName') === str(caIssuer, 'spec', 'ca', 'secretName'))
  t.equal(at(ca, 'spec', 'isCA'), true, "the CA issuer's Secret comes from a CA Certificate")
  t.ok(isObj(at(issuerOf(ca), 'spec', 'selfSigned')), 'which a self-signed issuer bootstraps')
})

t.test('openssl overlay: caBundle is the placeholder or a base64 PEM CA certificate', async t => {
  const bundles = webhookConfigKinds.flatMap(kind => {
    const patch = theOne(docs, kind, 'manifests/overlays/openssl/')
    const base = theOne(docs, kind)
    // Every webhook of the base gets the CA: one left without would fail its calls (silently, under Ignore).
    t.same(
      arr(patch, 'webhooks').map(w => str(w, 'name')),
      arr(base, 'webhooks').map(w => str(w, 'name')),
      `${kind}: a caBundle for every webhook`,
    )
    return arr(patch, 'webhooks').map(w => str(w, 'clientConfig', 'caBundle') ?? '')
  })
  const bundle = bundles[0] ?? ''
  t.ok(
    bundles.length === 2 && bundles.every(b => b === bundle),
    'one CA for both configurations (they call the same Service)',
  )
  if (bundle === 'REPLACE_WITH_BASE64_OF_CA_CRT') {
    // Not base64 on purpose: the API server rejects it, so an unfilled overlay cannot install a failing webhook.
    t.notMatch(bundle, /^[A-Za-z0-9+/]*={0,2}$/, 'the placeholder is invalid base64')
  } else {
    const pem = Buffer.from(bundle, 'base64').toString('utf8')
    t.ok(new X509Certificate(pem).ca, 'a filled caBundle holds a CA certificate')
  }
})
