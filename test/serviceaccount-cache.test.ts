import t, { type Test } from 'tap'
import { KubeClient } from '../lib/kube-client.js'
import { createLogger } from '../lib/log.js'
import { Registry } from '../lib/metrics.js'
import { ServiceAccountCache } from '../lib/serviceaccount-cache.js'
import type { ServiceAccountCacheOptions } from '../lib/serviceaccount-cache.js'
import { FakeApiServer } from './helpers/fake-api-server.js'
import type { FakeServiceAccount, MetadataSupport } from './helpers/fake-api-server.js'
import { until } from './helpers/until.js'

const email = 'workload-identity.stackit.cloud/service-account-email'
const annotated = (namespace: string, name: string): FakeServiceAccount => ({
  namespace,
  name,
  annotations: { [email]: `${name}@sa.stackit.cloud`, 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
  labels: { app: name },
  secrets: [`${name}-token-abcde`],
})
const plain = (namespace: string, name: string): FakeServiceAccount => ({ namespace, name, secrets: [`${name}-token-x`] })

interface Setup {
  fake: FakeApiServer
  cache: ServiceAccountCache
  registry: Registry
  logs: string[]
  clock: { now: number }
}

const setup = async (t: Test, seed: FakeServiceAccount[], options: Partial<ServiceAccountCacheOptions> = {}, metadata: MetadataSupport = 'supported'): Promise<Setup> => {
  const fake = await FakeApiServer.start()
  fake.metadata = metadata
  fake.seed(seed)
  const client = new KubeClient({ connection: { server: new URL(fake.url) }, version: 'test' })
  const registry = new Registry()
  const logs: string[] = []
  const clock = { now: 0 }
  const cache = new ServiceAccountCache({
    client,
    registry,
    log: createLogger({ level: 'debug', write: line => logs.push(line) }),
    now: () => clock.now,
    random: () => 0.5,
    backoffMs: { initial: 2, max: 8 },
    pageSize: 3,
    ...options,
  })
  t.teardown(async () => {
    await cache.stop()
    client.close()
    await fake.close()
  })
  return { fake, cache, registry, logs, clock }
}

const watchUrl = (fake: FakeApiServer, i = -1) => fake.requests.filter(r => r.kind === 'watch').at(i)?.url.searchParams

t.test('initial sync: paginated metadata-only LIST, then WATCH from its resourceVersion', async t => {
  const seed = [annotated('team-a', 'app'), plain('team-a', 'other'), ...Array.from({ length: 5 }, (_, i) => plain(`ns-${i}`, 'default'))]
  const { fake, cache, registry } = await setup(t, seed)
  t.equal(cache.ready(), false, 'not ready before the sync')
  await cache.start()
  t.equal(cache.ready(), true)
  t.equal(cache.size, 7)
  const lists = fake.requests.filter(r => r.kind === 'list')
  t.same(lists.map(r => r.url.searchParams.get('limit')), ['3', '3', '3'])
  t.same(lists.map(r => Boolean(r.url.searchParams.get('continue'))), [false, true, true])
  t.equal(lists[0]?.accept, 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1')
  t.ok(await until(() => fake.count('watch') === 1))
  t.same(Object.fromEntries(watchUrl(fake)!), { watch: 'true', resourceVersion: String(fake.resourceVersion), allowWatchBookmarks: 'true', timeoutSeconds: '450' })
  t.equal(fake.requests.at(-1)?.accept, 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1')

  const sa = await cache.get('team-a', 'app')
  t.same([...sa!.annotations], [[email, 'app@sa.stackit.cloud']], 'only our-prefix annotations are kept')
  t.match(sa, { namespace: 'team-a', name: 'app', resourceVersion: /^\d+$/ })
  t.same(await cache.get('team-a', 'other'), { namespace: 'team-a', name: 'other', annotations: new Map() })
  t.equal(fake.count('get'), 0, 'hits never ask the API')
  t.match(registry.render(), /serviceaccount_cache_size 7\n/)
  t.match(registry.render(), /serviceaccount_lookups_total\{source="cache",result="found"\} 2/)
  t.equal(await cache.start().then(() => fake.count('list')), 3, 'a second start() does not list again')
})

t.test('a ServiceAccount created between LIST and WATCH arrives through the watch', async t => {
  const { fake, cache } = await setup(t, [plain('team-a', 'app')])
  fake.delayNext('watch', 100)
  await cache.start()
  fake.upsert(annotated('team-a', 'new'))
  t.ok(await until(() => cache.size === 2))
  t.match(await cache.get('team-a', 'new'), { annotations: new Map([[email, 'new@sa.stackit.cloud']]) })
  t.equal(fake.count('get'), 0)
})

t.test('watch events: MODIFIED, DELETED, and a BOOKMARK the renewed watch resumes from', async t => {
  const { fake, cache, registry } = await setup(t, [plain('team-a', 'app')])
  await cache.start()
  t.ok(await until(() => fake.count('watch') === 1))
  fake.upsert(annotated('team-a', 'app'))
  t.ok(await until(async () => (await cache.get('team-a', 'app'))?.annotations.get(email) === 'app@sa.stackit.cloud'), 'MODIFIED applied')
  t.equal(cache.size, 1)
  fake.remove('team-a', 'app')
  fake.remove('team-a', 'absent')
  t.ok(await until(() => cache.size === 0))
  fake.bookmark()
  const bookmarkRv = String(fake.resourceVersion)
  fake.endWatches()
  t.ok(await until(() => fake.count('watch') === 2))
  t.equal(watchUrl(fake)?.get('resourceVersion'), bookmarkRv, 'resumes from the bookmark, not from the last event')
  t.match(registry.render(), /serviceaccount_watch_restarts_total\{reason="timeout"\} 1/)
  t.notMatch(registry.render(), /serviceaccount_relists_total \d/, 'the bookmark spared a relist')
})
