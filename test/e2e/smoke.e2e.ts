/**
 * Proves the end-to-end harness itself before any webhook is involved: the control plane starts, stores and
 * returns a Pod, runs the ServiceAccount admission plugin, issues bound tokens and enforces RBAC.
 */
import t from 'tap'
import { isObject, own } from '../../lib/json.js'
import { startCluster } from './cluster.js'
import { KubeRestError } from './kube-rest.js'

// Starting the control plane takes seconds, more on a busy machine: more than tap's default 30 s per file.
t.setTimeout(300_000)
const cluster = await startCluster()
t.teardown(() => cluster.stop())

const namespace = 'smoke'
await cluster.createNamespace(namespace)
await cluster.admin.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'app', namespace } })

t.test('a Pod created over REST is stored, and read back with the ServiceAccount plugin’s volume', async t => {
  await cluster.admin.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'hello', namespace },
    spec: { serviceAccountName: 'app', containers: [{ name: 'main', image: 'registry.invalid/hello:1' }] },
  })
  const stored = await cluster.admin.get(`/api/v1/namespaces/${namespace}/pods/hello`)
  t.match(stored, {
    metadata: { name: 'hello', namespace, uid: /^[0-9a-f-]{36}$/ },
    spec: {
      serviceAccountName: 'app',
      volumes: [{ name: /^kube-api-access-/, projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } }],
      containers: [{ name: 'main', volumeMounts: [{ mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }] }],
    },
  })
  await cluster.admin.delete(`/api/v1/namespaces/${namespace}/pods/hello`)
  const gone = await cluster.admin.request('GET', `/api/v1/namespaces/${namespace}/pods/hello`)
  t.equal(gone.status, 404, 'deleted right away: no kubelet holds it in Terminating')
})

t.test('a Pod naming a missing ServiceAccount is refused by the ServiceAccount admission plugin', async t => {
  const error = await cluster.admin
    .create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'orphan', namespace },
      spec: { serviceAccountName: 'missing', containers: [{ name: 'main', image: 'registry.invalid/hello:1' }] },
    })
    .then(
      () => undefined,
      (e: unknown) => e,
    )
  t.type(error, KubeRestError)
  t.match(error, { status: 403, message: /serviceaccount "missing" not found/ })
})

t.test('a TokenRequest token authenticates as the ServiceAccount, which RBAC then restricts', async t => {
  const app = cluster.admin.as(await cluster.tokenFor(namespace, 'app'))
  const review = await app.post('/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'SelfSubjectReview',
  })
  const status = own(review, 'status')
  t.match(isObject(status) ? own(status, 'userInfo') : undefined, {
    username: `system:serviceaccount:${namespace}:app`,
  })
  const listing = await app.request('GET', `/api/v1/namespaces/${namespace}/serviceaccounts`)
  t.equal(listing.status, 403, 'no role is bound, so listing is forbidden')
})
