import t, { type Test } from 'tap'
import { errorMessage } from '../../lib/errors.js'
import { KubeClient } from '../../lib/kube/kube-client.js'
import { createLogger, silentLogger } from '../../lib/log.js'
import { Registry } from '../../lib/metrics.js'
import { ServiceAccountApi, type ServiceAccountRequests } from '../../lib/kube/serviceaccount-api.js'
import type { ServiceAccount } from '../../lib/admission/serviceaccount.js'
import { ServiceAccountCache, watchTiming } from '../../lib/kube/serviceaccount-cache.js'
import type { ServiceAccountCacheOptions } from '../../lib/kube/serviceaccount-cache.js'
import { FakeApiServer } from '../helpers/fake-api-server.js'
import type { FakeServiceAccount, MetadataSupport } from '../helpers/fake-api-server.js'
import { until } from '../helpers/until.js'

const email = 'workload-identity.stackit.cloud/service-account-email'
const annotated = (namespace: string, name: string): FakeServiceAccount => ({
  namespace,
  name,
  annotations: { [email]: `${name}@sa.stackit.cloud`, 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
  labels: { app: name },
  secrets: [`${name}-token-abcde`],
})
const plain = (namespace: string, name: string): FakeServiceAccount => ({
  namespace,
  name,
  secrets: [`${name}-token-x`],
})

interface Setup {
  fake: FakeApiServer
  cache: ServiceAccountCache
  registry: Registry
  logs: string[]
  clock: { now: number }
}

const setup = async (
  t: Test,
  seed: FakeServiceAccount[],
  options: Partial<ServiceAccountCacheOptions> = {},
  metadata: MetadataSupport = 'supported',
): Promise<Setup> => {
  const fake = await FakeApiServer.start()
  fake.metadata = metadata
  fake.seed(seed)
  const client = new KubeClient({ connection: { server: new URL(fake.url) } })
  const registry = new Registry()
  const logs: string[] = []
  const clock = { now: 0 }
  const log = createLogger({ level: 'debug', write: line => logs.push(line) })
  const cache = new ServiceAccountCache({
    api: new ServiceAccountApi(client, log),
    registry,
    logger: log,
    epochMs: () => clock.now,
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
  const seed = [
    annotated('team-a', 'app'),
    plain('team-a', 'other'),
    ...Array.from({ length: 5 }, (_, i) => plain(`ns-${i}`, 'default')),
  ]
  const { fake, cache, registry } = await setup(t, seed)
  t.equal(cache.ready(), false, 'not ready before the sync')
  await cache.start()
  t.equal(cache.ready(), true)
  t.equal(cache.size, 7)
  const lists = fake.requests.filter(r => r.kind === 'list')
  t.same(
    lists.map(r => r.url.searchParams.get('limit')),
    ['3', '3', '3'],
  )
  t.same(
    lists.map(r => Boolean(r.url.searchParams.get('continue'))),
    [false, true, true],
  )
  t.equal(lists[0]?.accept, 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1')
  t.ok(await until(() => fake.count('watch') === 1))
  const query = { watch: 'true', resourceVersion: String(fake.resourceVersion), allowWatchBookmarks: 'true' }
  t.same(Object.fromEntries(watchUrl(fake)!), { ...query, timeoutSeconds: '28' })
  t.equal(fake.requests.at(-1)?.accept, 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1')

  const sa = await cache.get('team-a', 'app')
  t.same([...sa!.annotations], [[email, 'app@sa.stackit.cloud']], 'only our-prefix annotations are kept')
  t.same(Object.keys(sa!), ['namespace', 'name', 'annotations'], 'nothing else is kept')
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
  const { fake, cache, registry, clock } = await setup(t, [plain('team-a', 'app')])
  await cache.start()
  t.ok(await until(() => fake.count('watch') === 1))
  fake.upsert(annotated('team-a', 'app'))
  t.ok(
    await until(async () => (await cache.get('team-a', 'app'))?.annotations.get(email) === 'app@sa.stackit.cloud'),
    'MODIFIED applied',
  )
  t.equal(cache.size, 1)
  fake.remove('team-a', 'app')
  fake.remove('team-a', 'absent')
  t.ok(await until(() => cache.size === 0))
  fake.bookmark()
  const bookmarkRv = String(fake.resourceVersion)
  endAt(28_000)(fake, clock) // at its timeoutSeconds
  t.ok(await until(() => fake.count('watch') === 2))
  t.equal(watchUrl(fake)?.get('resourceVersion'), bookmarkRv, 'resumes from the bookmark, not from the last event')
  t.match(registry.render(), /serviceaccount_watch_restarts_total\{reason="timeout"\} 1/)
  t.notMatch(registry.render(), /serviceaccount_relists_total \d/, 'the bookmark spared a relist')
})

// 410 Gone arrives either as an ERROR event carrying a Status (the watch cache's way) or as the HTTP status itself.
const goneCases: [name: string, inject: (fake: FakeApiServer) => void][] = [
  [
    'ERROR event with a 410 Status after a connection dropped mid-event',
    fake => {
      fake.dropNextWatchEvent()
      fake.upsert(annotated('team-a', 'missed'))
      fake.compact()
    },
  ],
  [
    'HTTP 410 on the watch request',
    fake => {
      fake.upsert(annotated('team-a', 'missed'))
      fake.failNext('watch', 410)
      fake.endWatches()
    },
  ],
]
for (const [name, inject] of goneCases) {
  t.test(`410 Gone → relist: ${name}`, async t => {
    const { fake, cache, registry } = await setup(t, [plain('team-a', 'app')])
    await cache.start()
    t.ok(await until(() => fake.count('watch') === 1))
    inject(fake)
    // The new ServiceAccount may also arrive as an event before the watch breaks: wait for the relist too.
    t.ok(await until(() => cache.size === 2 && fake.count('list') === 2), 'relisted; the copy holds the newcomer')
    t.match(registry.render(), /serviceaccount_relists_total 1\n/)
    t.match(registry.render(), /serviceaccount_watch_restarts_total\{reason="gone"\} 1/)
    t.equal(cache.ready(), true, 'stays ready during and after the relist')
  })
}

t.test('a 410 with no progress since the last LIST backs off instead of relisting in a loop', async t => {
  const { fake, cache, logs } = await setup(t, [plain('team-a', 'app')], {
    backoffMs: { initial: 60_000, max: 60_000 },
  })
  fake.failNext('watch', 410, 1000)
  await cache.start()
  const pause = (): Record<string, unknown> | undefined =>
    logs
      .map(l => JSON.parse(l) as Record<string, unknown>)
      .find(l => /410 Gone\) with no progress/.test(String(l['msg'])))
  t.ok(await until(() => pause() !== undefined), 'the pause is logged')
  t.match(pause(), { level: 'warn', retryInMs: Number })
  t.equal(fake.count('list'), 1, 'no second LIST while it waits')
  t.equal(fake.count('watch'), 1)
  t.equal(cache.ready(), true, 'the listed copy still answers (through live GETs while the watch is down)')
})

t.test('5xx and dropped watches reconnect with backoff from the last resourceVersion', async t => {
  const { fake, cache, registry, logs, clock } = await setup(t, [plain('team-a', 'app')])
  fake.failNext('list', 500)
  await cache.start()
  t.equal(fake.count('list'), 2, 'the failed initial LIST was retried')
  t.ok(await until(() => fake.count('watch') === 1))
  fake.failNext('watch', 500, 2)
  clock.now = 28_000 // the first watch ends at its timeoutSeconds: a normal end, not a failure
  fake.endWatches()
  t.ok(await until(() => fake.count('watch') === 4))
  fake.upsert(plain('team-b', 'late'))
  t.ok(await until(() => cache.size === 2))
  t.equal(fake.count('list'), 2, 'no relist for a 5xx')
  t.match(registry.render(), /serviceaccount_watch_restarts_total\{reason="error"\} 2/)
  const warnings = logs.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l['level'] === 'warn')
  t.match(
    warnings,
    [
      { msg: 'ServiceAccount list failed; retrying', reason: /HTTP 500/, retryInMs: 2 },
      { msg: 'ServiceAccount watch failed; reconnecting', retryInMs: 2 },
      { msg: 'ServiceAccount watch failed; reconnecting', retryInMs: 3 },
    ],
    'exponential steps with jitter (random 0.5 → ¾ of the step)',
  )
})

t.test('while the watch is broken every lookup is a live GET, so a change made meanwhile is never missed', async t => {
  const { fake, cache, registry } = await setup(t, [plain('team-a', 'app')], { backoffMs: { initial: 50, max: 50 } })
  await cache.start()
  t.ok(await until(() => fake.count('watch') === 1))
  t.equal((await cache.get('team-a', 'app'))?.annotations.size, 0, 'from the cache while the watch is up')
  t.match(registry.render(), /serviceaccount_lookups_total\{source="cache",result="found"\} 1/)
  fake.failNext('watch', 500, 1000)
  fake.endWatches()
  t.ok(await until(() => fake.count('watch') >= 3), 'the watch keeps failing')
  // The annotation is added during the outage: no event can reach the cache.
  fake.upsert(annotated('team-a', 'app'))
  const during = await cache.get('team-a', 'app')
  t.equal(during?.annotations.get(email), 'app@sa.stackit.cloud', 'the live GET sees the change')
  t.match(registry.render(), /serviceaccount_lookups_total\{source="api",result="found"\} 1/)
  fake.clearFaults()
  t.ok(
    await until(
      async () =>
        (await cache.get('team-a', 'app')) !== undefined && /source="cache",result="found"\} 2/.test(registry.render()),
    ),
    'back to the cache once a watch is accepted',
  )
})

const warnings = (logs: string[]): Record<string, unknown>[] =>
  logs.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l['level'] === 'warn')
const restarts = (reason: string): string => `serviceaccount_watch_restarts_total{reason="${reason}"}`
const pausing = { backoffMs: { initial: 60_000, max: 60_000 } } // a failure leaves the loop waiting for 45 s
const endAt =
  (ms: number) =>
  (fake: FakeApiServer, clock: Setup['clock']): void => {
    clock.now = ms
    fake.endWatches()
  }

// How the first watch ends (it asked for timeoutSeconds 28: random 0.5 in 25–30) and what that counts as. A watch
// that ends before its timeout (1 s of slack) is a failure, whatever it delivered: a server that sends one event and
// closes would otherwise get a renewal loop. One that reaches its timeout is normal, idle or not.
type WatchEndCase = [name: string, end: (fake: FakeApiServer, clock: Setup['clock']) => void, reason: string]
const watchEnds: WatchEndCase[] = [
  ['closed at once with no event', endAt(0), 'short'],
  ['closed with no event 1 ms before timeoutSeconds − 1 s', endAt(26_999), 'short'],
  ['closed with no event at timeoutSeconds − 1 s', endAt(27_000), 'timeout'],
  ['closed with no event at its timeoutSeconds (an idle cluster)', endAt(28_000), 'timeout'],
  ['closed at once after a BOOKMARK', fake => (fake.bookmark(), fake.endWatches()), 'short'],
  ['closed at once after a change', fake => (fake.upsert(plain('team-b', 'new')), fake.endWatches()), 'short'],
  [
    'closed after a change at timeoutSeconds − 1 s',
    (fake, clock) => {
      fake.upsert(plain('team-b', 'new'))
      endAt(27_000)(fake, clock)
    },
    'timeout',
  ],
]
for (const [name, end, reason] of watchEnds) {
  t.test(`a watch ${name} → ${reason}`, async t => {
    const { fake, cache, registry, logs, clock } = await setup(t, [plain('team-a', 'app')], pausing)
    await cache.start()
    t.ok(await until(() => fake.count('watch') === 1))
    end(fake, clock)
    t.ok(await until(() => registry.render().includes(`${restarts(reason)} 1`)), `counted as ${reason}`)
    await cache.get('team-a', 'app')
    if (reason === 'short') {
      t.match(warnings(logs), [
        {
          msg: 'ServiceAccount watch ended before its timeout; reconnecting after a pause',
          reason: /^ended after \d+ ms of a 28 s watch \(events: [01]\)$/,
          retryInMs: 45_000,
        },
      ])
      t.equal(fake.count('watch'), 1, 'not renewed at once: it waits out the backoff')
      t.equal(fake.count('get'), 1, 'meanwhile lookups are live GETs')
    } else {
      t.ok(await until(() => fake.count('watch') === 2), 'renewed at once')
      t.same(warnings(logs), [], 'nothing to warn about')
      t.equal(fake.count('get'), 0, 'lookups stay on the cache')
    }
  })
}

t.test('a server that answers every WATCH with 200 and closes it gets backoff, not a renewal loop', async t => {
  const { fake, cache, registry, logs, clock } = await setup(t, [plain('team-a', 'app')])
  fake.watchNext('close', 4)
  await cache.start()
  t.ok(await until(() => fake.count('watch') === 5))
  t.match(registry.render(), `${restarts('short')} 4\n`)
  t.same(
    warnings(logs).map(w => w['retryInMs']),
    [2, 3, 6, 6],
    'random 0.5 → ¾ of 2, 4, 8, 8 ms',
  )
  fake.watchNext('close')
  endAt(28_000)(fake, clock) // the fifth watch reaches its timeoutSeconds; the sixth is closed at once
  t.ok(await until(() => registry.render().includes(`${restarts('short')} 5`)))
  t.match(registry.render(), `${restarts('timeout')} 1\n`)
  t.equal(warnings(logs).at(-1)?.['retryInMs'], 2, 'the normal end in between reset the backoff')
})

t.test('a healthy idle watch, ended by the server at its timeoutSeconds, costs one WATCH and nothing else', async t => {
  // Real clock and the fake's own timeoutSeconds timer: the 1 s of slack must absorb real timer granularity.
  const timing = { epochMs: Date.now, watchTimeoutSeconds: { min: 2, max: 2 }, watchDeadlineSlackMs: 1000 }
  const { fake, cache, registry, logs } = await setup(t, [plain('team-a', 'app')], timing)
  await cache.start()
  t.ok(await until(() => fake.count('watch') === 2), 'the first watch ended after 2 s and was renewed')
  t.match(registry.render(), `${restarts('timeout')} 1\n`)
  t.notMatch(registry.render(), /reason="(short|stalled|error)"/)
  t.same(warnings(logs), [])
  t.same(
    fake.requests.map(r => r.kind),
    ['list', 'watch', 'watch'],
    'an idle cluster: one WATCH per timeoutSeconds',
  )
  t.equal(watchUrl(fake)?.get('timeoutSeconds'), '2')
})

t.test('a silent watch (accepted, then never spoken on) is cut at its deadline: stalled, lookups go live', async t => {
  const timing = { watchTimeoutSeconds: { min: 1, max: 1 }, watchDeadlineSlackMs: 20, ...pausing }
  const { fake, cache, registry, logs } = await setup(t, [plain('team-a', 'app')], timing)
  fake.watchNext('silent')
  await cache.start()
  t.ok(await until(() => fake.count('watch') === 1))
  fake.upsert(annotated('team-a', 'app')) // the dead path never delivers this
  t.ok(await until(() => registry.render().includes(`${restarts('stalled')} 1`)), 'counted as stalled')
  t.match(warnings(logs), [
    {
      msg: /^ServiceAccount watch stalled: the server did not end it in time/,
      reason: 'stream not ended within 1020 ms of a 1 s watch',
      retryInMs: 45_000,
    },
  ])
  const sa = await cache.get('team-a', 'app')
  t.equal(sa?.annotations.get(email), 'app@sa.stackit.cloud', 'a live GET sees the change at once')
  t.same(
    fake.requests.map(r => r.kind),
    ['list', 'watch', 'get'],
    'no renewal before the backoff',
  )
})

// After a stalled watch, the next one may be accepted and go silent as well (the server, or a proxy in front of
// it, accepts watches but delivers nothing): being accepted proves nothing then.
type AfterStallCase = [name: string, change: boolean, prove: (fake: FakeApiServer) => void]
const afterStall: AfterStallCase[] = [
  ['an event (the change, replayed)', true, fake => fake.clearFaults()],
  ['a normal end at its timeoutSeconds', false, fake => (fake.clearFaults(), fake.endWatches())],
]
for (const [name, change, prove] of afterStall) {
  t.test(`after a stalled watch, the next accepted one is trusted only after ${name}`, async t => {
    const backoffMs = { initial: 2, max: 2 }
    const timing = { watchTimeoutSeconds: { min: 1, max: 1 }, watchDeadlineSlackMs: 20, backoffMs }
    const { fake, cache, registry } = await setup(t, [plain('team-a', 'app')], timing)
    fake.watchNext('silent', 1000)
    await cache.start()
    t.ok(await until(() => fake.count('watch') === 1))
    if (change) fake.upsert(annotated('team-a', 'app')) // no silent watch delivers this
    t.ok(await until(() => registry.render().includes(`${restarts('stalled')} 1`)), 'the first watch stalled')
    t.ok(await until(() => fake.count('watch') === 2), 'a second (silent) watch is accepted')
    // For the next 300 ms (well inside the second watch's 1,020 ms deadline), every lookup is a live GET.
    for (let i = 0; i < 10; i++) {
      const gets = fake.count('get')
      const sa = await cache.get('team-a', 'app')
      t.equal(fake.count('get'), gets + 1, `lookup ${i}: a live GET`)
      t.equal(sa?.annotations.has(email), change, `lookup ${i}: the current state`)
      await new Promise(resolve => setTimeout(resolve, 30))
    }
    t.notMatch(registry.render(), /source="cache"/, 'the copy answered nothing')
    prove(fake)
    const fromCache = async (): Promise<boolean> => {
      const gets = fake.count('get')
      const sa = await cache.get('team-a', 'app')
      return fake.count('get') === gets && sa?.annotations.has(email) === change
    }
    t.ok(await until(fromCache), 'then lookups are answered from the copy again')
  })
}

interface StaleCase {
  readonly options?: Partial<ServiceAccountCacheOptions>
  /** Runs once the watch is broken; the copy was last confirmed at clock 0 (its LIST). */
  readonly prepare: (s: Setup) => unknown
  readonly lookup?: string
  /** The copy's age in the answer, or undefined: the lookup is denied. */
  readonly staleMs: number | undefined
}
/** Moves the clock to `ms`, then makes the next GET fail with a 500. */
const failingGetAt =
  (ms: number) =>
  (s: Setup): void => {
    s.clock.now = ms
    s.fake.failNext('get', 500)
  }
const staleCases: [name: string, c: StaleCase][] = [
  ['GET 500, copy 60 s old → the copy', { prepare: failingGetAt(60_000), staleMs: 60_000 }],
  [
    'GET with no answer within --lookup-timeout → the copy',
    {
      prepare: s => ((s.clock.now = 1000), s.fake.hangNext('get')),
      staleMs: 1000,
    },
  ],
  [
    'API server gone (connection refused) → the copy',
    {
      prepare: s => ((s.clock.now = 1000), s.fake.close()),
      staleMs: 1000,
    },
  ],
  ['copy exactly 5 min old (the default bound) → the copy', { prepare: failingGetAt(300_000), staleMs: 300_000 }],
  ['copy 1 ms past the bound → denied', { prepare: failingGetAt(300_001), staleMs: undefined }],
  ['bound 0 turns it off → denied', { options: { maxStalenessMs: 0 }, prepare: failingGetAt(0), staleMs: undefined }],
  [
    'a ServiceAccount the copy does not hold → denied',
    {
      lookup: 'ghost',
      prepare: failingGetAt(0),
      staleMs: undefined,
    },
  ],
  [
    'one the API answered 404 for since the copy was current, even past the 404 memory → denied',
    {
      prepare: async s => {
        s.fake.remove('team-a', 'app')
        s.clock.now = 1000
        if ((await s.cache.get('team-a', 'app')) !== undefined) throw new Error('expected a 404')
        failingGetAt(60_000)(s)
      },
      staleMs: undefined,
    },
  ],
]
for (const [name, c] of staleCases) {
  t.test(`watch broken and the live GET fails: ${name}`, async t => {
    const s = await setup(t, [annotated('team-a', 'app')], { ...pausing, lookupTimeoutMs: 50, ...c.options })
    await s.cache.start()
    t.ok(await until(() => s.fake.count('watch') === 1))
    s.fake.failNext('watch', 500, 1000)
    s.fake.endWatches()
    t.ok(await until(() => warnings(s.logs).length > 0), 'the watch is broken')
    await c.prepare(s)
    s.logs.length = 0
    const lookup = c.lookup ?? 'app'
    const result = await s.cache.get('team-a', lookup).catch((e: unknown) => e)
    const metrics = s.registry.render()
    if (c.staleMs === undefined) {
      const message = new RegExp(`^cannot look up ServiceAccount team-a/${lookup} `)
      t.match(result, { code: 'SERVICEACCOUNT_LOOKUP_FAILED', message })
      t.match(metrics, /serviceaccount_lookups_total\{source="api",result="error"\} 1\n/)
      t.notMatch(metrics, /source="stale"/)
      t.same(warnings(s.logs), [])
      return
    }
    const annotations = new Map([[email, 'app@sa.stackit.cloud']])
    t.same(result, { namespace: 'team-a', name: 'app', annotations, staleMs: c.staleMs })
    t.match(metrics, /serviceaccount_lookups_total\{source="stale",result="found"\} 1\n/)
    t.notMatch(metrics, /result="error"/, 'one lookup, counted once')
    t.match(warnings(s.logs), [
      {
        msg: 'ServiceAccount answered from the cached copy: the API server could not be asked',
        namespace: 'team-a',
        serviceAccount: 'app',
        staleMs: c.staleMs,
        reason: /^cannot look up ServiceAccount team-a\/app \(GET /,
      },
    ])
    t.notMatch(s.logs.join(''), /@sa\.stackit\.cloud/, 'no annotation value is logged')
  })
}

t.test('watches that are accepted and closed at once do not make the copy look younger', async t => {
  const { fake, cache, clock } = await setup(t, [annotated('team-a', 'app')], { backoffMs: { initial: 1, max: 1 } })
  await cache.start()
  t.ok(await until(() => fake.count('watch') === 1))
  fake.watchNext('close', 100_000)
  fake.endWatches()
  t.ok(await until(() => fake.count('watch') > 3))
  // The clock moves in steps shorter than a watch's timeoutSeconds, and new watches are accepted (and closed) at
  // each step, so none of them looks like one that lasted until its timeout.
  for (let step = 1; step <= 13; step++) {
    clock.now = step * 23_100
    const before = fake.count('watch')
    t.ok(await until(() => fake.count('watch') > before + 2), `watches accepted at ${clock.now} ms`)
  }
  // A 500 is never accepted, so lookups are surely live from here on.
  fake.failNext('watch', 500, 100_000)
  const failing = fake.count('watch')
  t.ok(await until(() => fake.count('watch') > failing + 1))
  fake.failNext('get', 500)
  await t.rejects(cache.get('team-a', 'app'), { code: 'SERVICEACCOUNT_LOOKUP_FAILED' }, 'as old as its LIST: denied')
})

t.test('an expired continue token restarts the LIST from the beginning', async t => {
  const { fake, cache, registry } = await setup(
    t,
    Array.from({ length: 5 }, (_, i) => plain('team-a', `sa-${i}`)),
  )
  fake.expireNextContinue()
  await cache.start()
  t.equal(cache.size, 5)
  t.same(
    fake.requests.filter(r => r.kind === 'list').map(r => Boolean(r.url.searchParams.get('continue'))),
    [false, true, false, true],
  )
  t.notMatch(registry.render(), /serviceaccount_watch_restarts_total\{/, 'a list failure is not a watch restart')
})

const metaList = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1'
const fallbacks: [support: MetadataSupport, listAccepts: string[]][] = [
  ['reject-406', [metaList, 'application/json']],
  ['reject-415', [metaList, 'application/json']],
  ['ignore', [metaList]],
]
for (const [support, listAccepts] of fallbacks) {
  t.test(`metadata-only representation ${support} → plain JSON from then on`, async t => {
    const { fake, cache, logs } = await setup(t, [annotated('team-a', 'app')], {}, support)
    await cache.start()
    t.ok(await until(() => fake.count('watch') === 1))
    t.match(await cache.get('team-a', 'app'), { annotations: new Map([[email, 'app@sa.stackit.cloud']]) })
    t.match(await cache.get('team-a', 'fresh'), undefined)
    t.same(
      fake.requests.slice(-2).map(r => [r.kind, r.accept]),
      [
        ['watch', 'application/json'],
        ['get', 'application/json'],
      ],
    )
    t.match(logs.join(''), /using plain JSON/)
    t.match(logs.join(''), /"metadataOnly":false/)
    t.same(
      fake.requests.filter(r => r.kind === 'list').map(r => r.accept),
      listAccepts,
    )
  })
}

t.test('100 concurrent misses for one name share one GET', async t => {
  const { fake, cache, registry } = await setup(t, [])
  await cache.start()
  fake.seed([annotated('team-a', 'just-created')])
  const results = await Promise.all(Array.from({ length: 100 }, () => cache.get('team-a', 'just-created')))
  t.equal(fake.count('get'), 1)
  t.ok(results.every(sa => sa?.annotations.get(email) === 'just-created@sa.stackit.cloud'))
  t.match(registry.render(), /serviceaccount_lookups_total\{source="api",result="found"\} 100/)
  await cache.get('team-a', 'just-created')
  t.equal(
    fake.count('get'),
    2,
    'a later miss asks again (GET results are not cached; the watch is the source of truth)',
  )
})

t.test('a 404 is remembered briefly, then asked again', async t => {
  const { fake, cache, clock, registry } = await setup(t, [], { notFoundTtlMs: 5000, maxNotFound: 2 })
  await cache.start()
  t.equal(await cache.get('team-a', 'ghost'), undefined)
  clock.now += 4999
  t.equal(await cache.get('team-a', 'ghost'), undefined)
  t.equal(fake.count('get'), 1, 'remembered')
  t.match(registry.render(), /serviceaccount_lookups_total\{source="cache",result="not_found"\} 1/)
  clock.now += 1
  t.equal(await cache.get('team-a', 'ghost'), undefined)
  t.equal(fake.count('get'), 2, 'forgotten after the TTL')
  await cache.get('team-a', 'ghost-2')
  await cache.get('team-a', 'ghost-3')
  await cache.get('team-a', 'ghost')
  t.equal(fake.count('get'), 5, 'the oldest memory was evicted at the cap')
})

const lookupFailures: [name: string, inject: (fake: FakeApiServer) => void, reason: RegExp][] = [
  ['a 500', fake => fake.failNext('get', 500), /HTTP 500: injected 500/],
  ['a response slower than the lookup timeout', fake => fake.delayNext('get', 300), /no complete answer within 20 ms/],
]
for (const [name, inject, reason] of lookupFailures) {
  t.test(`lookup fails closed on ${name}`, async t => {
    const { fake, cache, registry } = await setup(t, [], { lookupTimeoutMs: 20 })
    await cache.start()
    inject(fake)
    const e = await cache.get('team-a', 'app').catch((err: unknown) => err)
    t.match(e, {
      code: 'SERVICEACCOUNT_LOOKUP_FAILED',
      status: 403,
      message: /^cannot look up ServiceAccount team-a\/app \(GET \/api\/v1\/namespaces\/team-a\/serviceaccounts\/app: /,
    })
    t.match(errorMessage(e), reason)
    t.match(registry.render(), /serviceaccount_lookups_total\{source="api",result="error"\} 1/)
  })
}

t.test('cache off: ready at once, a GET per lookup, concurrent lookups shared, no 404 memory', async t => {
  const { fake, cache } = await setup(t, [annotated('team-a', 'app')], { mode: 'off' }, 'reject-406')
  t.equal(cache.ready(), true)
  await cache.start()
  t.match(await cache.get('team-a', 'app'), { name: 'app', annotations: new Map([[email, 'app@sa.stackit.cloud']]) })
  t.same(
    fake.requests.map(r => r.accept),
    ['application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1', 'application/json'],
    'fell back after a 406',
  )
  await Promise.all([cache.get('team-a', 'app'), cache.get('team-a', 'app')])
  t.equal(await cache.get('team-a', 'nope'), undefined)
  t.equal(await cache.get('team-a', 'nope'), undefined)
  t.same(
    fake.requests.map(r => r.kind),
    ['get', 'get', 'get', 'get', 'get'],
  )
  t.equal(cache.size, 0)
  fake.failNext('get', 500)
  await t.rejects(cache.get('team-a', 'app'), { code: 'SERVICEACCOUNT_LOOKUP_FAILED' }, 'no copy to fall back on')
  await cache.stop()
  t.equal(cache.ready(), false, 'not ready once stopped')
})

// Each case: what to inject, when to stop, and what to do after stop() so that a loop that survived it would send
// a request within the wait below (a 75 ms backoff, a LIST answered after 50 ms, a renewed watch).
type StopCase = [
  name: string,
  prepare: (fake: FakeApiServer) => void,
  when: (s: Setup) => boolean,
  after: (fake: FakeApiServer) => void,
]
const stops: StopCase[] = [
  ['during the initial LIST', fake => fake.delayNext('list', 50), s => s.fake.count('list') === 1, () => {}],
  ['while backing off', fake => fake.failNext('list', 500, 1000), s => warnings(s.logs).length > 0, () => {}],
  ['during a watch', () => {}, s => s.fake.count('watch') === 1, fake => fake.endWatches()],
]
for (const [name, prepare, when, after] of stops) {
  t.test(`stop() ${name} ends the loop; start() resolves; no request after`, async t => {
    const s = await setup(t, [plain('team-a', 'app')], { backoffMs: { initial: 100, max: 100 } })
    prepare(s.fake)
    const started = s.cache.start()
    t.ok(await until(() => when(s)))
    await s.cache.stop()
    await started
    t.equal(s.cache.ready(), false)
    const seen = s.fake.requests.length
    after(s.fake)
    t.equal(await until(() => s.fake.requests.length > seen, 60), false, 'no request in the 300 ms after stop')
  })
}

t.test('defaults: page size 500, watch timeout 25–30 s, a private registry', async t => {
  const fake = await FakeApiServer.start()
  fake.seed([plain('team-a', 'app')])
  const client = new KubeClient({ connection: { server: new URL(fake.url) } })
  const cache = new ServiceAccountCache({ api: new ServiceAccountApi(client, silentLogger) })
  t.teardown(async () => {
    await cache.stop()
    client.close()
    await fake.close()
  })
  await cache.start()
  t.ok(await until(() => fake.count('watch') === 1))
  t.equal(fake.requests[0]?.url.searchParams.get('limit'), '500')
  const timeout = Number(watchUrl(fake)?.get('timeoutSeconds'))
  t.ok(timeout >= 25 && timeout <= 30, `timeoutSeconds ${timeout}`)
  const boundMs = watchTiming.timeoutSeconds.max * 1000 + watchTiming.deadlineSlackMs
  t.ok(boundMs < 35_000, `a dead watch path is noticed within ${boundMs} ms, inside the 35 s the README states`)
  t.equal(await cache.get('team-a', 'nope'), undefined)
  t.equal(await cache.get('team-a', 'nope'), undefined)
  t.equal(fake.count('get'), 1, '404 remembered by default')
})

t.test('an API handed in needs no server: lookups share one GET, a failed one is a lookup failure', async t => {
  let gets = 0
  const answers: Array<(sa: ServiceAccount | undefined) => void> = []
  let fail = false
  const api: ServiceAccountRequests = {
    metadataOnly: true,
    get: () => {
      gets++
      return fail ? Promise.reject(new Error('connect ECONNREFUSED')) : new Promise(resolve => answers.push(resolve))
    },
    list: () => Promise.reject(new Error('off mode never lists')),
    watch: () => Promise.reject(new Error('off mode never watches')),
  }
  const cache = new ServiceAccountCache({ api, mode: 'off' })
  t.ok(cache.ready(), 'off mode is ready at once')
  const both = Promise.all([cache.get('team-a', 'app'), cache.get('team-a', 'app')])
  for (const answer of answers) answer({ namespace: 'team-a', name: 'app', annotations: new Map() })
  t.same(
    (await both).map(sa => sa?.name),
    ['app', 'app'],
  )
  t.equal(gets, 1, 'concurrent lookups of one name share one GET')
  fail = true
  await t.rejects(cache.get('team-a', 'app'), { code: 'SERVICEACCOUNT_LOOKUP_FAILED', message: /ECONNREFUSED/ })
  await cache.stop()
})
