import t from 'tap'
import { parseDuration, parseServeArgs, serveHelp } from '../../lib/cli/serve-config.js'

t.test('defaults', async t => {
  const { help, config } = parseServeArgs([])
  t.equal(help, false)
  t.same(config, {
    port: 9443,
    bindAddress: '0.0.0.0',
    certFile: '/etc/webhook/certs/tls.crt',
    keyFile: '/etc/webhook/certs/tls.key',
    tlsMinVersion: 'TLSv1.3',
    healthPort: 8081,
    metricsPort: 8080,
    maxRequestBytes: 4194304,
    serviceAccounts: { mode: 'watch', connection: {} },
    logLevel: 'info',
    shutdownTimeoutMs: 10000,
    lookupTimeoutMs: 2000,
    maxCacheStalenessMs: 300_000,
  })
})

t.test('every flag', async t => {
  const { help, config } = parseServeArgs([
    '--port',
    '1',
    '--bind-address',
    '::1',
    '--cert-dir',
    '/c',
    '--tls-key-file',
    '/k',
    '--tls-min-version',
    '1.2',
    '--health-port',
    '2',
    '--metrics-port=3',
    '--max-request-bytes',
    '1024',
    '--log-level',
    'debug',
    '--shutdown-timeout',
    '1.5s',
    '--api-server',
    'https://k:6443',
    '--api-token-file',
    '/t',
    '--api-ca-file',
    '/ca',
    '--serviceaccount-cache',
    'off',
    '--lookup-timeout',
    '500ms',
    '--max-cache-staleness',
    '90s',
    '--help',
  ])
  t.equal(help, true)
  t.same(config, {
    port: 1,
    bindAddress: '::1',
    certFile: '/c/tls.crt',
    keyFile: '/k',
    tlsMinVersion: 'TLSv1.2',
    healthPort: 2,
    metricsPort: 3,
    maxRequestBytes: 1024,
    logLevel: 'debug',
    shutdownTimeoutMs: 1500,
    lookupTimeoutMs: 500,
    maxCacheStalenessMs: 90_000,
    serviceAccounts: { mode: 'off', connection: { apiServer: 'https://k:6443', tokenFile: '/t', caFile: '/ca' } },
  })
})

t.test('the ServiceAccount mode: offline with files, else the cache mode with the API connection flags', async t => {
  type Row = [argv: string[], mode: unknown]
  const rows: Row[] = [
    [
      ['--service-account', 'a', '--service-account', 'b', '--serviceaccount-cache', 'off'],
      { mode: 'offline', files: ['a', 'b'] },
    ],
    [['--service-account=a'], { mode: 'offline', files: ['a'] }],
    [['--serviceaccount-cache', 'off', '--serviceaccount-cache', 'watch'], { mode: 'watch', connection: {} }],
    [['--api-server', 'http://127.0.0.1:8001'], { mode: 'watch', connection: { apiServer: 'http://127.0.0.1:8001' } }],
    [['--api-token-file', '/t', '--serviceaccount-cache=off'], { mode: 'off', connection: { tokenFile: '/t' } }],
  ]
  for (const [argv, mode] of rows) t.same(parseServeArgs(argv).config.serviceAccounts, mode, argv.join(' '))
})

t.test('bad flags name the flag, the value and what is expected', async t => {
  const rows: [argv: string[], message: RegExp][] = [
    [['--port', '70000'], /--port "70000" is not a port number \(0–65535\)/],
    [['--health-port', '-1'], /--health-port "-1" is not a port number/],
    [['--metrics-port', 'x'], /--metrics-port "x"/],
    [['--tls-min-version', '1.1'], /--tls-min-version "1.1" must be 1.2 or 1.3/],
    [['--log-level', 'trace'], /--log-level "trace" must be debug, info, warn or error/],
    [['--max-request-bytes', '10'], /--max-request-bytes "10" must be a number of bytes from 1024 to 67108864/],
    [['--max-request-bytes', '1e6'], /--max-request-bytes "1e6"/],
    [['--max-request-bytes', '999999999'], /--max-request-bytes "999999999"/],
    [['--serviceaccount-cache', 'lru'], /--serviceaccount-cache "lru" must be watch or off/],
    [['--shutdown-timeout', 'soon'], /--shutdown-timeout "soon" is not a duration; write e.g. 10s, 500ms or 1m/],
    [['--lookup-timeout', '0s'], /--lookup-timeout "0s" is not a duration; write e\.g\. 10s, 500ms or 1m$/],
    [['--max-cache-staleness', '-1s'], /--max-cache-staleness "-1s" is not a duration; .*, or 0 to turn the fallback/],
    [['--max-cache-staleness', '25h'], /--max-cache-staleness "25h" is not a duration/],
    [['--service-account', 'a', '--api-server', 'https://x'], /--api-server cannot be combined with --service-account/],
    [['--api-token-file', '/t', '--service-account', 'a'], /--api-token-file cannot be combined with --service-acc/],
    [['--service-account', 'a', '--api-ca-file', '/ca'], /--api-ca-file cannot be combined with --service-account/],
    [['extra'], /unexpected argument "extra"/],
    [['--nope'], /unknown flag "--nope"/],
  ]
  for (const [argv, message] of rows) t.throws(() => parseServeArgs(argv), { code: 'USAGE', message }, argv.join(' '))
})

t.test('durations', async t => {
  const rows: [string, number][] = [
    ['10s', 10000],
    ['500ms', 500],
    ['1m', 60000],
    ['2', 2000],
    ['0.25s', 250],
  ]
  for (const [v, ms] of rows) t.equal(parseDuration('x', v), ms, v)
  const bad = ['', 's', '-1s', '1h', '25m0', '1441m', '0', '0s']
  for (const v of bad) t.throws(() => parseDuration('x', v), { code: 'USAGE' }, v)
  const zeroAllowed: [string, number][] = [
    ['0', 0],
    ['0s', 0],
    ['0ms', 0],
    ['0.0m', 0],
    ['5m', 3e5],
    ['1440m', 864e5],
  ]
  for (const [v, ms] of zeroAllowed) t.equal(parseDuration('x', v, 'turn it off'), ms, `${v} where 0 means off`)
  const named = { code: 'USAGE', message: /, or 0 to turn it off$/ }
  for (const v of ['', '-0', '1441m']) t.throws(() => parseDuration('x', v, 'turn it off'), named, v)
})

t.test('--max-cache-staleness 0 turns the stale fallback off', async t => {
  t.equal(parseServeArgs(['--max-cache-staleness', '0']).config.maxCacheStalenessMs, 0)
  t.match(serveHelp, /--max-cache-staleness D {5}watch mode: when that GET fails, answer from the cache's copy/)
  t.ok(
    serveHelp.split('\n').every(line => line.length <= 110),
    'help lines fit a terminal',
  )
})
