/**
 * The ServiceAccount watch against a real kube-apiserver, over the time of a watch renewal: the server ends each
 * watch at the short timeoutSeconds the cache asks for, so a healthy idle watch is renewed as a `timeout`, never
 * judged `short` or `stalled`, and the renewed watch still delivers changes. (The fakes cannot prove this: only a
 * real API server decides when it ends a watch.)
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { isObject, isString, own } from '../../lib/json.js'
import type { JsonObject } from '../../lib/json.js'
import { startCluster } from './cluster.js'
import { isWebhookConfiguration, loadBaseManifests } from './base-manifests.js'
import { makeWebhookCerts, metricValue, webhookStarter } from './webhook-process.js'

// A control plane plus one whole watch (25–30 s) and its renewal.
t.setTimeout(300_000)

const cluster = await startCluster()
t.teardown(() => cluster.stop())

// The webhook's ServiceAccount and RBAC from manifests/base, so the watch runs with exactly the shipped rights. No
// webhook configuration: the watch needs no admission calls, and as shipped they would name an in-cluster Service.
const base = await loadBaseManifests()
await cluster.admin.apply(base.filter(o => !isWebhookConfiguration(o)))
const sa = base.find(o => own(o, 'kind') === 'ServiceAccount')
const meta = sa === undefined ? undefined : own(sa, 'metadata')
const [saNamespace, saName] = ['namespace', 'name'].map(k => (isObject(meta) ? own(meta, k) : undefined))
if (!isString(saNamespace) || !isString(saName)) throw new Error('manifests/base must hold the webhook ServiceAccount')
const tokenFile = join(cluster.dir, 'webhook-token')
await writeFile(tokenFile, await cluster.tokenFor(saNamespace, saName, 3600), { mode: 0o600 })

const { certDir } = await makeWebhookCerts(cluster)
const webhook = await webhookStarter(cluster, tokenFile, certDir)()
t.teardown(() => webhook.stop())

const metricsText = (): Promise<string> => webhook.metrics()
const series = (text: string, name: string): number => metricValue(text, name)
const restarts = (text: string, reason: string): number =>
  metricValue(text, 'serviceaccount_watch_restarts_total', { reason })

t.test('an idle watch is ended by the API server at its timeout and renewed as healthy', async t => {
  let text = await metricsText()
  // The longest watch is 30 s and the client deadline 4 s beyond: past that, something else is wrong.
  const deadline = Date.now() + 60_000
  while (restarts(text, 'timeout') < 1 && Date.now() < deadline) {
    await sleep(500)
    text = await metricsText()
  }
  t.ok(restarts(text, 'timeout') >= 1, 'the server ended the watch at its timeoutSeconds')
  for (const reason of ['short', 'stalled', 'error', 'gone']) t.equal(restarts(text, reason), 0, `no ${reason} watch`)

  // The renewed watch delivers: a ServiceAccount created now reaches the cache without a relist.
  const before = series(text, 'serviceaccount_cache_size')
  const created: JsonObject = {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'after-renewal', namespace: 'default' },
  }
  await cluster.admin.create(created)
  const until = Date.now() + 10_000
  while (series(text, 'serviceaccount_cache_size') <= before && Date.now() < until) {
    await sleep(100)
    text = await metricsText()
  }
  t.equal(series(text, 'serviceaccount_cache_size'), before + 1, 'the renewed watch delivered the new ServiceAccount')
  t.equal(series(text, 'serviceaccount_relists_total'), 0, 'no relist was needed')
})
