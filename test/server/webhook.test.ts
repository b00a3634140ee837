// The composition root in this process: the running webhook from its configuration (parsed from serve flags):
// probes and metrics, TLS versions, certificate rotation, stalled bodies, the ServiceAccount modes against the fake
// API server, and what keeps it from starting. The serve command and the process around it are in test/cli.
import t from 'tap'
import { copyFileSync, mkdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs'
import tls from 'node:tls'
import { join } from 'node:path'
import { makeCa, makeMismatchedPair, makeServerCert, type CertFiles } from '../helpers/certs.js'
import { chunk, connectRaw, postHead, request, startInProcess } from '../helpers/webhook-client.js'
import { FakeApiServer } from '../helpers/fake-api-server.js'
import { until } from '../helpers/until.js'
import { fixturePath } from '../helpers/paths.js'

const fixtures = fixturePath()
const review = readFileSync(join(fixtures, 'admission-review-deployment-pod.json'), 'utf8')
const saFile = join(fixtures, 'serviceaccounts.json')
const root = t.testdir({})
const ca = await makeCa(root)
const caPem = readFileSync(ca.certFile)

/** A certificate directory laid out as the kubelet mounts a Secret: tls.crt -> ..data/tls.crt, ..data -> ..<stamp>. */
const kubeletDir = (dir: string, pair: CertFiles, stamp: string): void => {
  mkdirSync(join(dir, `..${stamp}`), { recursive: true })
  copyFileSync(pair.certFile, join(dir, `..${stamp}`, 'tls.crt'))
  copyFileSync(pair.keyFile, join(dir, `..${stamp}`, 'tls.key'))
  symlinkSync(`..${stamp}`, join(dir, '..data_tmp'))
  renameSync(join(dir, '..data_tmp'), join(dir, '..data')) // atomic, as the kubelet does it
}

/** The flags that serve with `cert`. */
const certFlags = (cert: CertFiles): string[] => ['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile]

/** A plain-HTTP GET of a probe or the metrics. */
const get = (port: number, path: string) => request({ port, path, method: 'GET', plain: true })

/** The annotation that gives a ServiceAccount its identity. */
const identity = { 'workload-identity.stackit.cloud/service-account-email': 'app@sa.stackit.cloud' }

/** A TLS client capped at TLS 1.2; resolves with the negotiated version and cipher, or the error code. */
const tls12 = (port: number): Promise<{ version: string | null; cipher: string } | string> =>
  new Promise(resolve => {
    const options = { host: '127.0.0.1', port, ca: caPem, servername: 'localhost', maxVersion: 'TLSv1.2' } as const
    const s = tls.connect(options, () => {
      resolve({ version: s.getProtocol(), cipher: s.getCipher().name })
      s.end()
    })
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
  })

const peerSerial = (port: number): Promise<string> =>
  new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => {
      resolve(s.getPeerCertificate().serialNumber)
      s.end()
    })
    s.on('error', reject)
  })

t.test('offline server: review, probes, metrics, TLS 1.3 only by default', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const p = await startInProcess([...certFlags(cert), '--service-account', saFile])
  const r = await request({ port: p.ports.admission, ca: caPem, body: review })
  t.equal(r.status, 200)
  t.equal((JSON.parse(r.body) as { response: { patchType: string } }).response.patchType, 'JSONPatch')
  const probe = (path: string, port = p.ports.health) => get(port, path)
  const statuses = [(await probe('/healthz')).status, (await probe('/readyz')).status, (await probe('/other')).status]
  t.same(statuses, [200, 200, 404])
  const m = await probe('/metrics', p.ports.metrics)
  t.equal(m.status, 200)
  t.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  for (const series of [
    'reviews_total{resource="pods",outcome="mutated"} 1',
    'review_duration_seconds_count 1',
    'in_flight_requests 0',
    'certificate_reloads_total{result="success"} 0',
    'certificate_expiry_timestamp_seconds ',
    'process_resident_memory_bytes ',
    'process_start_time_seconds ',
  ]) {
    t.match(m.body, `stackit_pod_identity_webhook_${series}`, series)
  }
  t.equal((await probe('/healthz', p.ports.metrics)).status, 404, 'probes are not on the metrics port')
  const refused = await tls12(p.ports.admission)
  t.equal(typeof refused, 'string', `a TLS 1.2 client is refused (${JSON.stringify(refused)})`)
  t.equal(await p.shutdown(), true, 'drained cleanly')
  t.ok(p.lines.some(l => l.includes('"msg":"review"') && l.includes('"outcome":"mutated"')))
  t.notOk(
    p.lines.some(l => l.includes('app-1a2b3c@sa.stackit.cloud')),
    'no e-mail in logs',
  )
})

t.test('--tls-min-version 1.2 accepts TLS 1.2 with a forward-secret AEAD suite', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const p = await startInProcess([...certFlags(cert), '--service-account', saFile, '--tls-min-version', '1.2'])
  const info = await tls12(p.ports.admission)
  t.match(info, { version: 'TLSv1.2' })
  t.match(info, { cipher: /^ECDHE-(ECDSA|RSA)-(AES\d+-GCM|CHACHA20-POLY1305)/ })
  t.equal(await p.shutdown(), true, 'drained cleanly')
})

t.test('certificate rotation by the kubelet symlink swap; a broken pair keeps the old one', async t => {
  const dir = t.testdir({ certs: {} })
  const certs = join(dir, 'certs')
  const first = await makeServerCert(dir, ca, { name: 'first', serial: 1001 })
  const second = await makeServerCert(dir, ca, { name: 'second', serial: 1002 })
  const broken = await makeMismatchedPair(dir, ca, { name: 'broken', serial: 1003 })
  kubeletDir(certs, first, '2026_01_01')
  symlinkSync('..data/tls.crt', join(certs, 'tls.crt'))
  symlinkSync('..data/tls.key', join(certs, 'tls.key'))
  const p = await startInProcess(['--cert-dir', certs, '--service-account', saFile])
  t.equal(await peerSerial(p.ports.admission), first.serial)
  kubeletDir(certs, second, '2026_02_01')
  const rotated = async (): Promise<boolean> => (await peerSerial(p.ports.admission)) === second.serial
  t.ok(await until(rotated, 3000), 'a new connection sees the new serial')
  t.equal((await request({ port: p.ports.admission, ca: caPem, body: review })).status, 200, 'reviews go on')
  kubeletDir(certs, broken, '2026_03_01')
  const counted = async (): Promise<boolean> =>
    (await get(p.ports.metrics, '/metrics')).body.includes('certificate_reloads_total{result="failure"} 1')
  t.ok(await until(counted, 3000), 'the broken pair is counted')
  t.equal(await peerSerial(p.ports.admission), second.serial, 'the old pair stays in service')
  t.ok(
    p.lines.some(l => l.includes('"level":"error"') && l.includes('does not belong')),
    'and logged as an error',
  )
  t.equal(await p.shutdown(), true, 'drained cleanly')
})

t.test('bodies that declare 4 MiB or come chunked and then stall do not turn a review into 503', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const p = await startInProcess([...certFlags(cert), '--service-account', saFile])
  // Four times the default --max-request-bytes fill the default 16 MiB in flight if declared lengths are counted.
  const stalled = await Promise.all(Array.from({ length: 5 }, () => connectRaw(p.ports.admission, caPem)))
  for (const [i, c] of stalled.entries())
    c.socket.write(i < 4 ? `${postHead(4 * 1024 * 1024)}{` : postHead() + chunk('{'))
  const metrics = async (): Promise<string> =>
    (await request({ port: p.ports.metrics, path: '/metrics', method: 'GET', plain: true })).body
  t.ok(await until(async () => (await metrics()).includes('in_flight_requests 5')), 'all five are being read')
  const r = await request({ port: p.ports.admission, ca: caPem, body: review })
  t.equal(r.status, 200, 'the review is answered')
  t.match(r.body, /"patchType":"JSONPatch"/)
  for (const c of stalled) c.socket.destroy()
  t.equal(await p.shutdown(), true, 'drained cleanly')
})

t.test('API-backed ServiceAccounts: ready after sync, a fresh one honoured, an API server gone denies', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const api = await FakeApiServer.start()
  api.seed([{ namespace: 'team-a', name: 'other', annotations: {} }])
  api.delayNext('list', 500)
  const p = await startInProcess([...certFlags(cert), '--api-server', api.url, '--lookup-timeout', '500ms'])
  const ready = (): Promise<number> => get(p.ports.health, '/readyz').then(r => r.status)
  t.equal(await ready(), 503, 'not ready before the initial sync')
  t.ok(await until(async () => (await ready()) === 200), 'ready after the initial sync')
  // Created after the sync: the watch or the live GET must find it, never a silent skip.
  api.upsert({ namespace: 'team-a', name: 'app-sa', annotations: identity })
  const r = await request({ port: p.ports.admission, ca: caPem, body: review })
  t.match(r.body, /"patchType":"JSONPatch"/, 'a ServiceAccount created just before its Pod is honoured')
  await api.close()
  const gone = JSON.parse(review) as { request: { object: { spec: { serviceAccountName: string } } } }
  gone.request.object.spec.serviceAccountName = 'created-while-api-down'
  const denied = await request({ port: p.ports.admission, ca: caPem, body: JSON.stringify(gone) })
  t.match(denied.body, /"allowed":false/, 'fail closed')
  t.match(denied.body, /cannot look up ServiceAccount team-a\/created-while-api-down .*the Pod is denied rather/)
  t.match(denied.body, /the Pod is denied rather than started without its identity/)
  t.equal(await p.shutdown(), true, 'drained cleanly')
})

t.test('--max-cache-staleness: a cached ServiceAccount answers while the API server is gone, not with 0', async t => {
  type Row = [name: string, flags: string[], allowed: boolean, body: RegExp]
  const rows: Row[] = [
    [
      'default bound → mutated from the copy, with a warning',
      [],
      true,
      /"patchType":"JSONPatch".*ServiceAccount team-a\/app-sa read from a copy \d+s old: the API server/,
    ],
    ['0 → denied', ['--max-cache-staleness', '0'], false, /cannot look up ServiceAccount team-a\/app-sa/],
  ]
  for (const [name, flags, allowed, body] of rows) {
    const dir = t.testdir({})
    const cert = await makeServerCert(dir, ca)
    const api = await FakeApiServer.start()
    const email = 'app@sa.stackit.cloud'
    const annotations = { 'workload-identity.stackit.cloud/service-account-email': email }
    api.seed([{ namespace: 'team-a', name: 'app-sa', annotations }])
    const p = await startInProcess([...certFlags(cert), '--api-server', api.url, '--lookup-timeout', '500ms', ...flags])
    const metrics = (): Promise<string> =>
      request({ port: p.ports.metrics, path: '/metrics', method: 'GET', plain: true }).then(r => r.body)
    const watchBroken = async (): Promise<boolean> =>
      /serviceaccount_watch_restarts_total\{reason="error"\} [1-9]/.test(await metrics())
    t.ok(await until(async () => /serviceaccount_cache_size 1\n/.test(await metrics())), `${name}: synced`)
    await api.close()
    t.ok(await until(watchBroken), `${name}: the cache saw the watch break`)
    const r = await request({ port: p.ports.admission, ca: caPem, body: review })
    t.match(r.body, allowed ? /"allowed":true/ : /"allowed":false/, name)
    t.match(r.body, body, `${name}: answer`)
    const stale = /serviceaccount_lookups_total\{source="stale",result="found"\} 1\n/.test(await metrics())
    t.equal(stale, allowed, `${name}: counted as a stale answer or not`)
    t.equal(await p.shutdown(), true, 'drained cleanly')
  }
})

t.test('API over TLS with a token and a pinned CA; probes and metrics sharing one port', async t => {
  const dir = t.testdir({ token: 'tok-123\n' })
  const cert = await makeServerCert(dir, ca)
  const api = await FakeApiServer.start({ tls: true })
  api.requiredToken = 'tok-123'
  api.seed([{ namespace: 'team-a', name: 'app-sa', annotations: identity }])
  const free = await new Promise<number>(resolve => {
    const s = tls.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
  const p = await startInProcess([
    ...certFlags(cert),
    '--api-server',
    api.url,
    '--api-token-file',
    join(dir, 'token'),
    '--api-ca-file',
    FakeApiServer.tlsFile('ca.crt'),
    '--health-port',
    String(free),
    '--metrics-port',
    String(free),
  ])
  t.equal(p.ports.health, free)
  t.equal(p.ports.metrics, free)
  t.ok(await until(async () => (await get(free, '/readyz')).status === 200), 'synced over TLS with the token')
  t.match((await get(free, '/metrics')).body, 'stackit_pod_identity_webhook_serviceaccount_cache_size 1')
  t.match((await request({ port: p.ports.admission, ca: caPem, body: review })).body, /"patchType":"JSONPatch"/)
  const named = (r: (typeof api.requests)[number]): boolean =>
    r.authorization === 'Bearer tok-123' && r.userAgent?.startsWith('stackit-pod-identity-webhook/') === true
  t.ok(api.requests.every(named), 'every API request authenticated and named')
  t.equal(await p.shutdown(), true, 'drained cleanly')
  await api.close()
})

t.test('the listening line names the ServiceAccount mode; off reads each one with a GET, never a list', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const api = await FakeApiServer.start()
  api.seed([{ namespace: 'team-a', name: 'app-sa', annotations: identity }])
  const tlsFlags = certFlags(cert)
  type Row = [mode: string, flags: string[], requests: { list: boolean; watch: boolean; get: boolean }]
  const rows: Row[] = [
    ['offline', ['--service-account', saFile], { list: false, watch: false, get: false }],
    ['watch', ['--api-server', api.url], { list: true, watch: true, get: false }],
    ['off', ['--api-server', api.url, '--serviceaccount-cache', 'off'], { list: false, watch: false, get: true }],
  ]
  for (const [mode, flags, requests] of rows) {
    api.requests.length = 0
    const p = await startInProcess([...tlsFlags, ...flags])
    const listening = p.lines.find(l => l.includes('"msg":"listening"')) ?? '{}'
    t.equal((JSON.parse(listening) as { mode?: string }).mode, mode, `${mode}: the mode logged`)
    const ready = (): Promise<boolean> =>
      request({ port: p.ports.health, path: '/readyz', method: 'GET', plain: true }).then(r => r.status === 200)
    t.ok(await until(ready), `${mode}: ready`)
    t.match((await request({ port: p.ports.admission, ca: caPem, body: review })).body, /"patchType":"JSONPatch"/, mode)
    // The watch follows the list without a signal to wait for; with none expected the condition holds at once.
    t.ok(await until(() => api.count('watch') > 0 === requests.watch), `${mode}: a watch or none`)
    t.equal(await p.shutdown(), true, `${mode}: drained cleanly`)
    const seen = { list: api.count('list') > 0, watch: api.count('watch') > 0, get: api.count('get') > 0 }
    t.same(seen, requests, `${mode}: the API requests made`)
  }
  await api.close()
})

t.test('what keeps the webhook from starting rejects with a code and names the problem', async t => {
  const dir = t.testdir({ empty: {}, token: 'tok\n' })
  const bad = await makeMismatchedPair(dir, ca)
  const cert = await makeServerCert(dir, ca)
  const good = certFlags(cert)
  const taken = await startInProcess([...good, '--service-account', saFile])
  type Row = [name: string, flags: string[], code: string, message: RegExp]
  const rows: Row[] = [
    [
      'certificate missing',
      ['--cert-dir', join(dir, 'empty'), '--service-account', saFile],
      'TLS',
      /TLS certificate file .*empty\/tls.crt does not exist/,
    ],
    ['key does not match', [...certFlags(bad), '--service-account', saFile], 'TLS', /does not belong to the cert/],
    [
      'ServiceAccount file missing',
      [...good, '--service-account', join(dir, 'nope.json')],
      'BAD_INPUT_FILE',
      /cannot read --service-account file .*nope\.json/,
    ],
    ['not in a cluster, no --api-server', good, 'USAGE', /^not running in a cluster .* pass --api-server URL/],
    [
      'API token file missing',
      [...good, '--api-server', 'https://127.0.0.1:1', '--api-token-file', join(dir, 'nope')],
      'BAD_INPUT_FILE',
      /cannot read the API token file .*nope: ENOENT/,
    ],
    [
      'a token over plain HTTP',
      [...good, '--api-server', 'http://127.0.0.1:1', '--api-token-file', join(dir, 'token')],
      'USAGE',
      /is plain HTTP: a bearer token is only sent over https/,
    ],
    [
      'port in use',
      [...good, '--service-account', saFile, '--port', String(taken.ports.admission)],
      'USAGE',
      /^cannot listen on 127\.0\.0\.1 \(ports \d+, 0, 0\): EADDRINUSE$/,
    ],
  ]
  for (const [name, flags, code, message] of rows) {
    await t.rejects(startInProcess(flags), { code, message }, name)
  }
  t.equal(await taken.shutdown(), true)
})
