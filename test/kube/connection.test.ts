import t from 'tap'
import { join } from 'node:path'
import { resolveKubeConnection } from '../../lib/kube/connection.js'
import type { KubeConnectionOptions } from '../../lib/kube/connection.js'

type Expected = { server: string; tokenFile?: 'in-cluster' | 'flag'; ca?: string } | { code: string; message: RegExp }
const inCluster = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }

// Each case gets a fresh temp dir holding an in-cluster token and CA, plus a flag-given token and CA.
const cases: [
  name: string,
  options: (dir: string) => Omit<KubeConnectionOptions, 'inClusterDir'>,
  expected: Expected,
][] = [
  [
    'in cluster over IPv4',
    () => ({ env: inCluster }),
    { server: 'https://10.96.0.1/', tokenFile: 'in-cluster', ca: 'cluster-ca' },
  ],
  [
    'in cluster over IPv6: host in brackets',
    () => ({ env: { KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '6443' } }),
    { server: 'https://[fd00:10:96::1]:6443/', tokenFile: 'in-cluster', ca: 'cluster-ca' },
  ],
  [
    'in cluster with flag overrides',
    dir => ({ env: inCluster, tokenFile: join(dir, 'flag-token'), caFile: join(dir, 'flag-ca.crt') }),
    { server: 'https://10.96.0.1/', tokenFile: 'flag', ca: 'flag-ca' },
  ],
  [
    '--api-server https with token and CA flags',
    dir => ({
      env: inCluster,
      apiServer: 'https://api.example:6443',
      tokenFile: join(dir, 'flag-token'),
      caFile: join(dir, 'flag-ca.crt'),
    }),
    { server: 'https://api.example:6443/', tokenFile: 'flag', ca: 'flag-ca' },
  ],
  [
    '--api-server http (kubectl proxy): no token, no CA',
    () => ({ env: inCluster, apiServer: 'http://127.0.0.1:8001' }),
    { server: 'http://127.0.0.1:8001/' },
  ],
  [
    '--api-server https alone: system roots, no token',
    () => ({ env: {}, apiServer: 'https://api.example' }),
    { server: 'https://api.example/' },
  ],
  [
    'not in a cluster and no flag',
    () => ({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1' } }),
    { code: 'USAGE', message: /not running in a cluster .*pass --api-server/ },
  ],
  [
    '--api-server without a scheme',
    () => ({ env: {}, apiServer: 'localhost:8001' }),
    { code: 'USAGE', message: /must start with https:\/\// },
  ],
  [
    '--api-server that is no URL',
    () => ({ env: {}, apiServer: 'not a url' }),
    { code: 'USAGE', message: /--api-server "not a url" is not a URL/ },
  ],
  [
    '--api-server with a user name and password: refused, not shown',
    () => ({ env: {}, apiServer: 'https://admin:s3cret@api.example' }),
    {
      code: 'USAGE',
      message: /^--api-server must not contain a user name or password; pass a token with --api-token-file$/,
    },
  ],
  [
    'a token over plain HTTP is refused',
    dir => ({ env: {}, apiServer: 'http://10.0.0.1:8080', tokenFile: join(dir, 'flag-token') }),
    { code: 'USAGE', message: /bearer token is only sent over https/ },
  ],
  [
    'missing CA file',
    dir => ({ env: {}, apiServer: 'https://api.example', caFile: join(dir, 'nope.crt') }),
    { code: 'BAD_INPUT_FILE', message: /CA file .*nope\.crt: ENOENT/ },
  ],
  [
    'missing token file',
    dir => ({ env: {}, apiServer: 'https://api.example', tokenFile: join(dir, 'nope') }),
    { code: 'BAD_INPUT_FILE', message: /token file .*nope: ENOENT/ },
  ],
]
for (const [name, options, expected] of cases) {
  t.test(name, async t => {
    const dir = t.testdir({
      sa: { token: 'cluster-token', 'ca.crt': 'cluster-ca' },
      'flag-token': 'flag-token',
      'flag-ca.crt': 'flag-ca',
    })
    const result = resolveKubeConnection({ ...options(dir), inClusterDir: join(dir, 'sa') })
    if ('code' in expected) return void (await t.rejects(result, expected))
    const c = await result
    t.equal(c.server.href, expected.server)
    t.equal(
      c.tokenFile,
      expected.tokenFile === 'in-cluster'
        ? join(dir, 'sa', 'token')
        : expected.tokenFile === 'flag'
          ? join(dir, 'flag-token')
          : undefined,
    )
    t.equal(c.ca?.toString(), expected.ca)
  })
}

t.test('the default in-cluster directory is the kubelet mount', async t => {
  await t.rejects(
    resolveKubeConnection({ env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '1' } }),
    { code: 'BAD_INPUT_FILE', message: /\/var\/run\/secrets\/kubernetes\.io\/serviceaccount\/token/ },
  )
})
