// The real `serve` process: start-up refusals, probes and metrics, TLS versions, certificate rotation,
// graceful and forced shutdown, and the API-backed ServiceAccount source against the fake API server.
import t from 'tap'
import { copyFileSync, mkdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs'
import tls from 'node:tls'
import { join } from 'node:path'
import { makeCa, makeMismatchedPair, makeServerCert, type CertFiles } from '../helpers/certs.js'
import { chunk, connectRaw, postHead, request, runCli, startServe } from '../helpers/webhook-client.js'
import type { ServeProcess } from '../helpers/webhook-client.js'
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

const peerSerial = (port: number): Promise<string> =>
  new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => {
      resolve(s.getPeerCertificate().serialNumber)
      s.end()
    })
    s.on('error', reject)
  })

const run = runCli

const kill = async (p: ServeProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
  p.child.kill(signal)
  return p.exited
}

t.test('refuses to start, with a message naming the problem', async t => {
  const dir = t.testdir({ empty: {} })
  const bad = await makeMismatchedPair(dir, ca)
  type Row = [name: string, args: string[], code: number, message: RegExp]
  const rows: Row[] = [
    ['certificate missing', ['--cert-dir', join(dir, 'empty'), '--service-account', saFile], 1, /TLS certificate file .*empty\/tls.crt does not exist/],
    ['key does not match', ['--tls-cert-file', bad.certFile, '--tls-key-file', bad.keyFile, '--service-account', saFile], 1, /does not belong to the certificate/],
    ['ServiceAccount file missing', ['--tls-cert-file', bad.certFile, '--tls-key-file', bad.keyFile, '--service-account', join(dir, 'nope.json')], 1, /does not belong|cannot read --service-account file/],
    ['bad flag', ['--port', 'http'], 2, /--port "http" is not a port number/],
  ]
  for (const [name, args, code, message] of rows) {
    const r = await run(['serve', '--bind-address', '127.0.0.1', '--port', '0', '--health-port', '0', '--metrics-port', '0', ...args])
    t.equal(r.code, code, name)
    t.match(r.stderr, message, name)
    t.equal(r.stdout, '', `${name}: nothing on stdout`)
  }
  const server = await makeServerCert(dir, ca)
  const missingSa = await run(['serve', '--tls-cert-file', server.certFile, '--tls-key-file', server.keyFile, '--service-account', join(dir, 'nope.json'), '--port', '0', '--health-port', '0', '--metrics-port', '0'])
  t.equal(missingSa.code, 1)
  t.match(missingSa.stderr, /cannot read --service-account file .*nope.json/)
  const notInCluster = await run(['serve', '--tls-cert-file', server.certFile, '--tls-key-file', server.keyFile, '--port', '0', '--health-port', '0', '--metrics-port', '0'])
  t.equal(notInCluster.code, 1, 'no API server and not in a cluster')
  t.match(notInCluster.stderr, /not running in a cluster .* pass --api-server URL, or --service-account FILE for offline mode/)
  const taken = await startServe(['--tls-cert-file', server.certFile, '--tls-key-file', server.keyFile, '--service-account', saFile])
  const clash = await run(['serve', '--bind-address', '127.0.0.1', '--port', String(taken.ports.admission), '--health-port', '0', '--metrics-port', '0', '--tls-cert-file', server.certFile, '--tls-key-file', server.keyFile, '--service-account', saFile])
  t.equal(clash.code, 1, 'port in use')
  t.match(clash.stderr, /cannot listen on 127\.0\.0\.1 .*EADDRINUSE/)
  t.equal(await kill(taken), 0)
})

t.test('serve --help documents every flag', async t => {
  const r = await run(['serve', '--help'])
  t.equal(r.code, 0)
  for (const flag of ['--port', '--bind-address', '--cert-dir', '--tls-cert-file', '--tls-key-file', '--tls-min-version', '--health-port', '--metrics-port', '--max-request-bytes', '--service-account', '--log-level', '--shutdown-timeout', '--api-server', '--api-token-file', '--api-ca-file', '--serviceaccount-cache', '--lookup-timeout', '--max-cache-staleness']) {
    t.match(r.stdout, `  ${flag} `, flag)
  }
})

t.test('offline server: review, probes, metrics, TLS 1.3 only by default', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const p = await startServe(['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile, '--service-account', saFile])
  const r = await request({ port: p.ports.admission, ca: caPem, body: review })
  t.equal(r.status, 200)
  t.equal((JSON.parse(r.body) as { response: { patchType: string } }).response.patchType, 'JSONPatch')
  const probe = (path: string, port = p.ports.health) => request({ port, path, method: 'GET', plain: true })
  t.same([(await probe('/healthz')).status, (await probe('/readyz')).status, (await probe('/other')).status], [200, 200, 404])
  const m = await probe('/metrics', p.ports.metrics)
  t.equal(m.status, 200)
  t.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  for (const series of ['reviews_total{outcome="mutated"} 1', 'review_duration_seconds_count 1', 'in_flight_requests 0', 'certificate_reloads_total{result="success"} 0',
    'certificate_expiry_timestamp_seconds ', 'process_resident_memory_bytes ', 'process_start_time_seconds ']) {
    t.match(m.body, `stackit_pod_identity_webhook_${series}`, series)
  }
  t.equal((await probe('/healthz', p.ports.metrics)).status, 404, 'probes are not on the metrics port')
  const tls12 = await new Promise<string>(resolve => {
    const s = tls.connect({ host: '127.0.0.1', port: p.ports.admission, ca: caPem, servername: 'localhost', maxVersion: 'TLSv1.2' }, () => resolve('connected'))
    s.on('error', e => resolve((e as NodeJS.ErrnoException).code ?? e.message))
  })
  t.not(tls12, 'connected', `a TLS 1.2 client is refused (${tls12})`)
  t.equal(await kill(p), 0)
  t.ok(p.lines.some(l => l.includes('"msg":"review"') && l.includes('"outcome":"mutated"')))
  t.notOk(p.lines.some(l => l.includes('app-1a2b3c@sa.stackit.cloud')), 'no e-mail in logs')
})

t.test('--tls-min-version 1.2 accepts TLS 1.2 with a forward-secret AEAD suite', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const p = await startServe(['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile, '--service-account', saFile, '--tls-min-version', '1.2'])
  const info = await new Promise<{ version: string | null; cipher: string }>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: p.ports.admission, ca: caPem, servername: 'localhost', maxVersion: 'TLSv1.2' }, () => {
      resolve({ version: s.getProtocol(), cipher: s.getCipher().name })
      s.end()
    })
    s.on('error', reject)
  })
  t.equal(info.version, 'TLSv1.2')
  t.match(info.cipher, /^ECDHE-(ECDSA|RSA)-(AES\d+-GCM|CHACHA20-POLY1305)/)
  t.equal(await kill(p), 0)
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
  const p = await startServe(['--cert-dir', certs, '--service-account', saFile])
  t.equal(await peerSerial(p.ports.admission), first.serial)
  kubeletDir(certs, second, '2026_02_01')
  t.ok(await until(async () => (await peerSerial(p.ports.admission)) === second.serial, 3000), 'a new connection sees the new serial')
  t.equal((await request({ port: p.ports.admission, ca: caPem, body: review })).status, 200, 'reviews go on')
  kubeletDir(certs, broken, '2026_03_01')
  const metrics = (): Promise<string> => request({ port: p.ports.metrics, path: '/metrics', method: 'GET', plain: true }).then(r => r.body)
  t.ok(await until(async () => (await metrics()).includes('certificate_reloads_total{result="failure"} 1'), 3000), 'the broken pair is counted')
  t.equal(await peerSerial(p.ports.admission), second.serial, 'the old pair stays in service')
  t.ok(p.lines.some(l => l.includes('"level":"error"') && l.includes('does not belong')), 'and logged as an error')
  t.equal(await kill(p), 0)
})

t.test('bodies that declare 4 MiB or come chunked and then stall do not turn a review into 503', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const p = await startServe(['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile,
    '--service-account', saFile])
  // Four times the default --max-request-bytes fill the default 16 MiB in flight if declared lengths are counted.
  const stalled = await Promise.all(Array.from({ length: 5 }, () => connectRaw(p.ports.admission, caPem)))
  stalled.forEach((c, i) => c.socket.write(i < 4 ? `${postHead(4 * 1024 * 1024)}{` : postHead() + chunk('{')))
  const metrics = async (): Promise<string> =>
    (await request({ port: p.ports.metrics, path: '/metrics', method: 'GET', plain: true })).body
  t.ok(await until(async () => (await metrics()).includes('in_flight_requests 5')), 'all five are being read')
  const r = await request({ port: p.ports.admission, ca: caPem, body: review })
  t.equal(r.status, 200, 'the review is answered')
  t.match(r.body, /"patchType":"JSONPatch"/)
  for (const c of stalled) c.socket.destroy()
  t.equal(await kill(p), 0)
})

/** Opens a TLS connection and sends a review's headers and the first half of its body. */
const halfSentReview = (port: number): Promise<{ finish: () => Promise<string>; socket: tls.TLSSocket }> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => {
      const body = Buffer.from(review)
      socket.write(`POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`)
      socket.write(body.subarray(0, 1000))
      let reply = ''
      socket.on('data', d => (reply += String(d)))
      const ended = new Promise<string>(r => socket.on('close', () => r(reply)))
      resolve({
        socket,
        finish: async () => {
          socket.write(body.subarray(1000))
          return ended
        },
      })
    })
    socket.on('error', reject)
  })

t.test('SIGTERM: not ready at once, in-flight review completes, new connections refused, exit 0', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const p = await startServe(['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile, '--service-account', saFile])
  const slow = await halfSentReview(p.ports.admission)
  p.child.kill('SIGTERM')
  t.ok(await until(async () => (await request({ port: p.ports.health, path: '/readyz', method: 'GET', plain: true })).status === 503), '/readyz turns 503')
  const refused = await request({ port: p.ports.admission, ca: caPem, body: review }).then(() => 'answered', (e: NodeJS.ErrnoException) => e.code)
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused')
  const reply = await slow.finish()
  t.match(reply, /^HTTP\/1\.1 200 OK/, 'the in-flight review completes')
  t.match(reply, /"allowed":true/)
  t.equal(await p.exited, 0)
  t.ok(p.lines.some(l => l.includes('shut down cleanly')))
})

t.test('a second signal exits at once; a drain that outlives --shutdown-timeout is cut', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const args = ['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile, '--service-account', saFile]
  const twice = await startServe([...args, '--shutdown-timeout', '1m'])
  const stuck = await halfSentReview(twice.ports.admission)
  twice.child.kill('SIGTERM')
  await until(() => twice.lines.some(l => l.includes('shutting down')))
  twice.child.kill('SIGINT')
  t.equal(await twice.exited, 1, 'second signal: exit 1 without waiting for the drain')
  t.ok(twice.lines.some(l => l.includes('second signal')))
  stuck.socket.destroy()

  const cut = await startServe([...args, '--shutdown-timeout', '300ms'])
  const hanging = await halfSentReview(cut.ports.admission)
  cut.child.kill('SIGTERM')
  t.equal(await cut.exited, 1, 'timeout reached: exit 1')
  t.ok(cut.lines.some(l => l.includes('shutdown timeout reached')))
  hanging.socket.destroy()
})

t.test('API-backed ServiceAccounts: ready after sync, a fresh ServiceAccount is honoured, an unreachable API server denies', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const api = await FakeApiServer.start()
  api.seed([{ namespace: 'team-a', name: 'other', annotations: {} }])
  api.delayNext('list', 500)
  const p = await startServe(['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile, '--api-server', api.url, '--lookup-timeout', '500ms'])
  const ready = (): Promise<number> => request({ port: p.ports.health, path: '/readyz', method: 'GET', plain: true }).then(r => r.status)
  t.equal(await ready(), 503, 'not ready before the initial sync')
  t.ok(await until(async () => (await ready()) === 200), 'ready after the initial sync')
  // Created after the sync: the watch or the live GET must find it, never a silent skip.
  api.upsert({ namespace: 'team-a', name: 'app-sa', annotations: { 'workload-identity.stackit.cloud/service-account-email': 'app@sa.stackit.cloud' } })
  const r = await request({ port: p.ports.admission, ca: caPem, body: review })
  t.match(r.body, /"patchType":"JSONPatch"/, 'a ServiceAccount created just before its Pod is honoured')
  await api.close()
  const gone = JSON.parse(review) as { request: { object: { spec: { serviceAccountName: string } } } }
  gone.request.object.spec.serviceAccountName = 'created-while-api-down'
  const denied = await request({ port: p.ports.admission, ca: caPem, body: JSON.stringify(gone) })
  t.match(denied.body, /"allowed":false/, 'fail closed')
  t.match(denied.body, /cannot look up ServiceAccount team-a\/created-while-api-down .*the Pod is denied rather than started without its identity/)
  t.equal(await kill(p), 0)
})

t.test('--max-cache-staleness: a cached ServiceAccount answers while the API server is gone, not with 0', async t => {
  type Row = [name: string, flags: string[], allowed: boolean, body: RegExp]
  const rows: Row[] = [
    ['default bound → mutated from the copy, with a warning', [], true,
      /"patchType":"JSONPatch".*ServiceAccount team-a\/app-sa read from a copy \d+s old: the API server/],
    ['0 → denied', ['--max-cache-staleness', '0'], false, /cannot look up ServiceAccount team-a\/app-sa/],
  ]
  for (const [name, flags, allowed, body] of rows) {
    const dir = t.testdir({})
    const cert = await makeServerCert(dir, ca)
    const api = await FakeApiServer.start()
    const email = 'app@sa.stackit.cloud'
    const annotations = { 'workload-identity.stackit.cloud/service-account-email': email }
    api.seed([{ namespace: 'team-a', name: 'app-sa', annotations }])
    const p = await startServe(['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile, '--api-server', api.url,
      '--lookup-timeout', '500ms', ...flags])
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
    t.equal(await kill(p), 0)
  }
})

t.test('API over TLS with a token and a pinned CA; probes and metrics sharing one port', async t => {
  const dir = t.testdir({ token: 'tok-123\n' })
  const cert = await makeServerCert(dir, ca)
  const api = await FakeApiServer.start({ tls: true })
  api.requiredToken = 'tok-123'
  api.seed([{ namespace: 'team-a', name: 'app-sa', annotations: { 'workload-identity.stackit.cloud/service-account-email': 'app@sa.stackit.cloud' } }])
  const free = await new Promise<number>(resolve => {
    const s = tls.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
  const p = await startServe(['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile, '--api-server', api.url,
    '--api-token-file', join(dir, 'token'), '--api-ca-file', FakeApiServer.tlsFile('ca.crt'), '--health-port', String(free), '--metrics-port', String(free)])
  t.equal(p.ports.health, free)
  t.equal(p.ports.metrics, free)
  t.ok(await until(async () => (await request({ port: free, path: '/readyz', method: 'GET', plain: true })).status === 200), 'synced over TLS with the token')
  t.match((await request({ port: free, path: '/metrics', method: 'GET', plain: true })).body, 'stackit_pod_identity_webhook_serviceaccount_cache_size 1')
  t.match((await request({ port: p.ports.admission, ca: caPem, body: review })).body, /"patchType":"JSONPatch"/)
  t.ok(api.requests.every(r => r.authorization === 'Bearer tok-123' && r.userAgent?.startsWith('stackit-pod-identity-webhook/')), 'every API request authenticated and named')
  t.equal(await kill(p), 0)
  await api.close()
})
