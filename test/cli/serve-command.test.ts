// The serve command: flags and start-up refusals to exit codes, its help, and shutdown, in this process through
// main(); the built binary is spawned only where the process is under test: SIGTERM and a second signal.
// The running webhook itself (probes, TLS, rotation, the ServiceAccount modes) is tested in test/server/webhook.
import t from 'tap'
import { readFileSync } from 'node:fs'
import tls from 'node:tls'
import { join } from 'node:path'
import { makeCa, makeMismatchedPair, makeServerCert, type CertFiles } from '../helpers/certs.js'
import { postHead, request, runMain, serveInProcess, startInProcess, startServe } from '../helpers/webhook-client.js'
import { until } from '../helpers/until.js'
import { fixturePath } from '../helpers/paths.js'

const fixtures = fixturePath()
const review = readFileSync(join(fixtures, 'admission-review-deployment-pod.json'), 'utf8')
const saFile = join(fixtures, 'serviceaccounts.json')
const root = t.testdir({})
const ca = await makeCa(root)
const caPem = readFileSync(ca.certFile)

const run = runMain

/** The flags that serve with `cert`. */
const certFlags = (cert: CertFiles): string[] => ['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile]

/** Loopback and system-chosen ports, as every test webhook runs. */
const loopback = ['--bind-address', '127.0.0.1', '--port', '0', '--health-port', '0', '--metrics-port', '0']

t.test('refuses to start, with a message naming the problem', async t => {
  const dir = t.testdir({ empty: {} })
  const bad = await makeMismatchedPair(dir, ca)
  type Row = [name: string, args: string[], code: number, message: RegExp]
  const rows: Row[] = [
    [
      'certificate missing',
      ['--cert-dir', join(dir, 'empty'), '--service-account', saFile],
      1,
      /TLS certificate file .*empty\/tls.crt does not exist/,
    ],
    ['key does not match', [...certFlags(bad), '--service-account', saFile], 1, /does not belong to the certificate/],
    [
      'ServiceAccount file missing',
      [...certFlags(bad), '--service-account', join(dir, 'nope.json')],
      1,
      /does not belong|cannot read --service-account file/,
    ],
    ['bad flag', ['--port', 'http'], 2, /--port "http" is not a port number/],
  ]
  for (const [name, args, code, message] of rows) {
    const r = await run(['serve', ...loopback, ...args])
    t.equal(r.code, code, name)
    t.match(r.stderr, message, name)
    t.equal(r.stdout, '', `${name}: nothing on stdout`)
  }
  const server = await makeServerCert(dir, ca)
  const missingSa = await run(['serve', ...certFlags(server), '--service-account', join(dir, 'nope.json'), ...loopback])
  t.equal(missingSa.code, 1)
  t.match(missingSa.stderr, /cannot read --service-account file .*nope.json/)
  const notInCluster = await run(['serve', ...certFlags(server), ...loopback])
  t.equal(notInCluster.code, 1, 'no API server and not in a cluster')
  t.match(
    notInCluster.stderr,
    /not running in a cluster .* pass --api-server URL, or --service-account FILE for offline mode/,
  )
  const taken = await startInProcess([...certFlags(server), '--service-account', saFile])
  const clash = await run([
    'serve',
    ...loopback,
    '--port',
    String(taken.ports.admission),
    ...certFlags(server),
    '--service-account',
    saFile,
  ])
  t.equal(clash.code, 1, 'port in use')
  t.match(clash.stderr, /cannot listen on 127\.0\.0\.1 .*EADDRINUSE/)
  t.equal(await taken.shutdown(), true)
})

t.test('serve --help documents every flag', async t => {
  const r = await run(['serve', '--help'])
  t.equal(r.code, 0)
  const flags = [
    '--port',
    '--bind-address',
    '--cert-dir',
    '--tls-cert-file',
    '--tls-key-file',
    '--tls-min-version',
    '--health-port',
    '--metrics-port',
    '--max-request-bytes',
    '--service-account',
    '--log-level',
    '--shutdown-timeout',
    '--api-server',
    '--api-token-file',
    '--api-ca-file',
    '--serviceaccount-cache',
    '--lookup-timeout',
    '--max-cache-staleness',
  ]
  for (const flag of flags) t.match(r.stdout, `  ${flag} `, flag)
})

/** Opens a TLS connection and sends a review's headers and the first half of its body. */
const halfSentReview = (port: number): Promise<{ finish: () => Promise<string>; socket: tls.TLSSocket }> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => {
      const body = Buffer.from(review)
      socket.write(postHead(body.length))
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

t.test('a drain that outlives --shutdown-timeout is cut: exit 1', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const args = [...certFlags(cert), '--service-account', saFile]
  const cut = await serveInProcess([...args, '--shutdown-timeout', '300ms'])
  const hanging = await halfSentReview(cut.ports.admission)
  cut.signal('SIGTERM')
  t.equal(await cut.exited, 1, 'timeout reached: exit 1')
  t.ok(cut.lines.some(l => l.includes('shutdown timeout reached')))
  hanging.socket.destroy()
})

t.test('SIGTERM: not ready at once, in-flight review completes, new connections refused, exit 0', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const p = await startServe([...certFlags(cert), '--service-account', saFile])
  const slow = await halfSentReview(p.ports.admission)
  p.child.kill('SIGTERM')
  const notReady = async (): Promise<boolean> =>
    (await request({ port: p.ports.health, path: '/readyz', method: 'GET', plain: true })).status === 503
  t.ok(await until(notReady), '/readyz turns 503')
  const refused = await request({ port: p.ports.admission, ca: caPem, body: review }).then(
    () => 'answered',
    (e: NodeJS.ErrnoException) => e.code,
  )
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused')
  const reply = await slow.finish()
  t.match(reply, /^HTTP\/1\.1 200 OK/, 'the in-flight review completes')
  t.match(reply, /"allowed":true/)
  t.equal(await p.exited, 0)
  t.ok(p.lines.some(l => l.includes('shut down cleanly')))
})

t.test('a second signal exits at once, exit 1', async t => {
  const dir = t.testdir({})
  const cert = await makeServerCert(dir, ca)
  const args = [...certFlags(cert), '--service-account', saFile]
  const twice = await startServe([...args, '--shutdown-timeout', '1m'])
  const stuck = await halfSentReview(twice.ports.admission)
  twice.child.kill('SIGTERM')
  await until(() => twice.lines.some(l => l.includes('shutting down')))
  twice.child.kill('SIGINT')
  t.equal(await twice.exited, 1, 'second signal: exit 1 without waiting for the drain')
  t.ok(twice.lines.some(l => l.includes('second signal')))
  stuck.socket.destroy()
})
