import path from 'node:path'
import t from 'tap'
import jsonpatch from 'fast-json-patch'
import { boundWarning, maxWarningLength, mutatePod } from '../../lib/admission/mutate-pod.js'
import type { IdentityConfig } from '../../lib/admission/identity-config.js'
import type { JsonObject } from '../../lib/json.js'

const config: IdentityConfig = {
  email: 'app@sa.stackit.cloud',
  audience: 'sts.accounts.stackit.cloud',
  expirationSeconds: 600,
  mountPath: '/var/run/secrets/stackit.cloud/serviceaccount',
  tokenPath: 'token',
  env: [{ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: 'app@sa.stackit.cloud' }],
}
const ourMount = { name: 'stackit-workload-identity', mountPath: config.mountPath, readOnly: true }
const ourVolume = {
  name: 'stackit-workload-identity',
  projected: {
    sources: [{ serviceAccountToken: { audience: config.audience, expirationSeconds: 600, path: 'token' } }],
  },
}
const ourEnv = { name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: config.email }
const dir = config.mountPath
// Our volume's mount at another path, another volume's mount, and a spec of one container with these mounts.
const oursAt = (mountPath: string): JsonObject => ({ ...ourMount, mountPath })
const cfgAt = (mountPath: string): JsonObject => ({ name: 'cfg', mountPath })
const app = (...volumeMounts: JsonObject[]): JsonObject => ({ containers: [{ name: 'app', volumeMounts }] })
const pod = (spec: JsonObject): JsonObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec })
const noSkip = new Set<string>()
/** A mount path as the kubelet (it roots a relative one) and the kernel resolve it, independently of the code. */
const normal = (p: string): string => path.posix.normalize(`/${p}`).replace(/\/+$/, '') || '/'
const at = (o: unknown, ...path: (string | number)[]): unknown =>
  path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], o)

t.test('injects volume, mount and env into every container and init container', async t => {
  const input = pod({
    initContainers: [
      { name: 'init', image: 'x' },
      { name: 'native-sidecar', image: 'y', restartPolicy: 'Always' },
    ],
    containers: [
      { name: 'a', image: 'a', env: [{ name: 'X', value: '1' }] },
      { name: 'b', image: 'b', volumeMounts: [{ name: 'data', mountPath: '/data' }] },
    ],
    volumes: [{ name: 'data', emptyDir: {} }],
  })
  const before = JSON.stringify(input)
  const r = mutatePod(input, config, noSkip)
  t.equal(JSON.stringify(input), before, 'input untouched')
  t.ok(r.changed)
  t.equal(r.injected, 4)
  t.same(at(r.pod, 'spec', 'volumes'), [{ name: 'data', emptyDir: {} }, ourVolume])
  for (const [field, i] of [
    ['initContainers', 0],
    ['initContainers', 1],
    ['containers', 0],
    ['containers', 1],
  ] as const) {
    const c = at(r.pod, 'spec', field, i) as JsonObject
    t.same(
      (c['volumeMounts'] as unknown[]).filter(m => (m as JsonObject)['name'] === 'stackit-workload-identity'),
      [ourMount],
      `${field}[${i}] mount`,
    )
    t.same(
      (c['env'] as unknown[]).filter(e => (e as JsonObject)['name'] === 'STACKIT_SERVICE_ACCOUNT_EMAIL'),
      [ourEnv],
      `${field}[${i}] env`,
    )
  }
  t.equal(at(r.pod, 'spec', 'initContainers', 1, 'restartPolicy'), 'Always', 'native sidecar keeps restartPolicy')
  t.same(at(r.pod, 'spec', 'containers', 0, 'env', 0), { name: 'X', value: '1' }, 'user env kept first')
  t.same(at(r.pod, 'spec', 'containers', 1, 'volumeMounts', 0), { name: 'data', mountPath: '/data' }, 'user mount kept')
})

t.test('custom directory, all env vars', async t => {
  const c: IdentityConfig = {
    ...config,
    mountPath: '/custom/path',
    tokenPath: 'jwt',
    audience: 'aud',
    expirationSeconds: 1200,
    env: [...config.env, { name: 'STACKIT_FEDERATED_TOKEN_FILE', value: '/custom/path/jwt' }],
  }
  const r = mutatePod(pod({ containers: [{ name: 'a' }] }), c, noSkip)
  t.same(at(r.pod, 'spec', 'volumes', 0, 'projected', 'sources', 0, 'serviceAccountToken'), {
    audience: 'aud',
    expirationSeconds: 1200,
    path: 'jwt',
  })
  t.same(at(r.pod, 'spec', 'containers', 0, 'volumeMounts'), [
    { name: 'stackit-workload-identity', mountPath: '/custom/path', readOnly: true },
  ])
  t.same(at(r.pod, 'spec', 'containers', 0, 'env'), [
    ourEnv,
    { name: 'STACKIT_FEDERATED_TOKEN_FILE', value: '/custom/path/jwt' },
  ])
})

t.test('conflicts and reuse', async t => {
  type Row = [
    name: string,
    spec: JsonObject,
    expect: {
      conflict?: RegExp
      warnings?: RegExp[]
      volumes?: unknown
      env?: unknown
      mounts?: unknown
      changed?: boolean
    },
  ]
  const rows: Row[] = [
    [
      'user env var keeps its value, with a warning',
      { containers: [{ name: 'app', env: [{ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: 'mine@x.io' }] }] },
      {
        warnings: [/container app: STACKIT_SERVICE_ACCOUNT_EMAIL already set, keeping the container's value/],
        env: [{ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: 'mine@x.io' }],
      },
    ],
    [
      'user env var from a secret keeps valueFrom',
      {
        containers: [
          {
            name: 'app',
            env: [{ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }],
          },
        ],
      },
      {
        warnings: [/already set/],
        env: [{ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }],
      },
    ],
    [
      'stale injected volume → brought up to date in place, not duplicated',
      {
        containers: [{ name: 'app', env: [ourEnv], volumeMounts: [ourMount] }],
        volumes: [
          {
            name: 'stackit-workload-identity',
            projected: {
              defaultMode: 420,
              sources: [{ serviceAccountToken: { audience: 'old', expirationSeconds: 3600, path: 'token' } }],
            },
          },
        ],
      },
      {
        volumes: [
          { name: 'stackit-workload-identity', projected: { defaultMode: 420, sources: ourVolume.projected.sources } },
        ],
      },
    ],
    [
      'injected volume with API server defaults → unchanged',
      {
        containers: [{ name: 'app', env: [ourEnv], volumeMounts: [ourMount] }],
        volumes: [
          { name: 'stackit-workload-identity', projected: { defaultMode: 420, sources: ourVolume.projected.sources } },
        ],
      },
      { changed: false },
    ],
    [
      'a foreign volume with the reserved name → denial naming it',
      { containers: [{ name: 'app' }], volumes: [{ name: 'stackit-workload-identity', emptyDir: {} }] },
      { conflict: /volume named stackit-workload-identity that is not a projected serviceAccountToken volume/ },
    ],
    [
      'a projected volume with other sources under the reserved name → denial',
      {
        containers: [{ name: 'app' }],
        volumes: [{ name: 'stackit-workload-identity', projected: { sources: [{ configMap: { name: 'x' } }] } }],
      },
      { conflict: /not a projected serviceAccountToken volume/ },
    ],
    [
      'a projected volume without sources under the reserved name → denial',
      { containers: [{ name: 'app' }], volumes: [{ name: 'stackit-workload-identity', projected: {} }] },
      { conflict: /not a projected serviceAccountToken volume/ },
    ],
    [
      'a volume with two kinds under the reserved name → denial',
      { containers: [{ name: 'app' }], volumes: [{ ...ourVolume, emptyDir: {} }] },
      { conflict: /not a projected serviceAccountToken volume/ },
    ],
    [
      'a source mixing two kinds under the reserved name → denial',
      {
        containers: [{ name: 'app' }],
        volumes: [
          {
            name: 'stackit-workload-identity',
            projected: { sources: [{ ...ourVolume.projected.sources[0], secret: { name: 's' } }] },
          },
        ],
      },
      { conflict: /not a projected serviceAccountToken volume/ },
    ],
    [
      'another volume at the target path → denial naming path and container',
      {
        containers: [
          {
            name: 'app',
            volumeMounts: [{ name: 'creds', mountPath: '/var/run/secrets/stackit.cloud/serviceaccount/' }],
          },
        ],
      },
      {
        conflict: /container "app" already mounts volume "creds" at \/var\/run\/secrets\/stackit.cloud\/serviceaccount/,
      },
    ],
    [
      'our mount at a stale path → moved, not duplicated',
      {
        containers: [
          {
            name: 'app',
            env: [ourEnv],
            volumeMounts: [{ name: 'stackit-workload-identity', mountPath: '/old', readOnly: true }],
          },
        ],
      },
      { mounts: [ourMount] },
    ],
    [
      'our mount writable → made read-only',
      {
        containers: [
          {
            name: 'app',
            env: [ourEnv],
            volumeMounts: [{ name: 'stackit-workload-identity', mountPath: config.mountPath }],
          },
        ],
      },
      { mounts: [ourMount] },
    ],
    [
      'our mount with subPath → denial',
      { containers: [{ name: 'app', env: [ourEnv], volumeMounts: [{ ...ourMount, subPath: 'token' }] }] },
      { conflict: /container "app" mounts stackit-workload-identity with a subPath; remove the subPath/ },
    ],
    [
      'our mount with subPathExpr → denial',
      { containers: [{ name: 'app', env: [ourEnv], volumeMounts: [{ ...ourMount, subPathExpr: '$(X)' }] }] },
      { conflict: /with a subPath/ },
    ],
    [
      'our mount moved in place keeps its other fields',
      {
        containers: [
          { name: 'app', env: [ourEnv], volumeMounts: [{ ...ourMount, mountPath: '/old', mountPropagation: 'None' }] },
        ],
      },
      { mounts: [{ ...ourMount, mountPropagation: 'None' }] },
    ],
    [
      'two token sources under our name → denial',
      {
        containers: [{ name: 'app', env: [ourEnv], volumeMounts: [ourMount] }],
        volumes: [
          {
            name: 'stackit-workload-identity',
            projected: { sources: [...ourVolume.projected.sources, ...ourVolume.projected.sources] },
          },
        ],
      },
      { conflict: /projecting 2 tokens; the name is reserved/ },
    ],
    [
      'no token source under our name → denial',
      { containers: [{ name: 'app' }], volumes: [{ name: 'stackit-workload-identity', projected: { sources: [] } }] },
      { conflict: /projecting 0 tokens/ },
    ],
    [
      'a stale token source with another field keeps that field',
      {
        containers: [{ name: 'app', env: [ourEnv], volumeMounts: [ourMount] }],
        volumes: [
          {
            name: 'stackit-workload-identity',
            projected: {
              sources: [
                { serviceAccountToken: { audience: 'old', expirationSeconds: 3600, path: 'token', future: 1 } },
              ],
            },
          },
        ],
      },
      {
        volumes: [
          {
            name: 'stackit-workload-identity',
            projected: {
              sources: [
                {
                  serviceAccountToken: { audience: config.audience, expirationSeconds: 600, path: 'token', future: 1 },
                },
              ],
            },
          },
        ],
      },
    ],
    [
      'a volume mounted at / does not conflict',
      { containers: [{ name: 'app', volumeMounts: [{ name: 'root', mountPath: '/' }] }] },
      { mounts: [{ name: 'root', mountPath: '/' }, ourMount] },
    ],
    [
      'another volume at the target path written with /./ → denial',
      {
        containers: [
          {
            name: 'app',
            volumeMounts: [{ name: 'creds', mountPath: '/var/run/secrets/stackit.cloud/serviceaccount/.' }],
          },
        ],
      },
      { conflict: /already mounts volume "creds"/ },
    ],
    [
      'another volume at the target path written with // → denial',
      {
        containers: [
          {
            name: 'app',
            volumeMounts: [{ name: 'creds', mountPath: '/var/run//secrets/stackit.cloud/serviceaccount' }],
          },
        ],
      },
      { conflict: /already mounts volume "creds"/ },
    ],
    [
      'another volume at the target path with a trailing / → denial',
      {
        containers: [
          {
            name: 'app',
            volumeMounts: [{ name: 'creds', mountPath: '/var/run/secrets/stackit.cloud/serviceaccount/' }],
          },
        ],
      },
      { conflict: /already mounts volume "creds"/ },
    ],
    [
      'another volume at the target path written with /../ → denial',
      {
        containers: [
          {
            name: 'app',
            volumeMounts: [{ name: 'creds', mountPath: '/var/run/x/../secrets/stackit.cloud/serviceaccount' }],
          },
        ],
      },
      { conflict: /already mounts volume "creds"/ },
    ],
    [
      'a volume elsewhere does not conflict',
      { containers: [{ name: 'app', volumeMounts: [{ name: 'other', mountPath: '/var/run/secrets' }] }] },
      { mounts: [{ name: 'other', mountPath: '/var/run/secrets' }, ourMount] },
    ],
    [
      'two conflicts reported together',
      {
        containers: [
          { name: 'a', volumeMounts: [{ name: 'x', mountPath: config.mountPath }] },
          { name: 'b', volumeMounts: [{ name: 'y', mountPath: config.mountPath }] },
        ],
      },
      { conflict: /container "a" .*; container "b"/ },
    ],
    // Our volume more than once in a container: every mount of it belongs at the token directory, and a container
    // cannot hold two mounts at one path (the API server rejects "mountPath must be unique").
    [
      'our volume elsewhere and at the token directory → denial, not two mounts at one path',
      { containers: [{ name: 'app', env: [ourEnv], volumeMounts: [oursAt('/old'), ourMount] }] },
      {
        conflict: new RegExp(
          '^container "app" mounts volume stackit-workload-identity 2 times; remove all but one: ' +
            `the webhook mounts it once, read-only at ${dir}$`,
        ),
      },
    ],
    [
      'our volume at the token directory and elsewhere → denial',
      { containers: [{ name: 'app', env: [ourEnv], volumeMounts: [ourMount, oursAt('/old')] }] },
      { conflict: /container "app" mounts volume stackit-workload-identity 2 times/ },
    ],
    [
      'our volume twice elsewhere (both would move to the token directory) → denial',
      app(oursAt('/a'), oursAt('/b')),
      { conflict: /container "app" mounts volume stackit-workload-identity 2 times/ },
    ],
    [
      'our volume three times, one spelled with a trailing / → denial counting all',
      app(ourMount, oursAt(`${dir}/`), oursAt('/b')),
      { conflict: /mounts volume stackit-workload-identity 3 times/ },
    ],
    [
      'our volume twice in one container, once in another → only the first named',
      {
        containers: [
          { name: 'a', volumeMounts: [ourMount] },
          { name: 'b', volumeMounts: [ourMount, ourMount] },
        ],
      },
      { conflict: /^container "b" mounts volume stackit-workload-identity 2 times/ },
    ],
    [
      'our volume once elsewhere in each of two containers → both moved',
      {
        containers: [
          { name: 'a', env: [ourEnv], volumeMounts: [oursAt('/a')] },
          { name: 'b', volumeMounts: [oursAt('/b')] },
        ],
      },
      { mounts: [ourMount] },
    ],
    // A foreign mount inside the token directory covers the token (or a part of the projection).
    [
      'a ConfigMap subPath at the token file → denial naming container, volume and path',
      app({ name: 'cfg', mountPath: `${dir}/token`, subPath: 'token' }),
      {
        conflict: new RegExp(
          `^container "app" mounts volume "cfg" at "${dir}/token", ` +
            `inside the token directory ${dir}, on top of the token; ` +
            'choose another directory with the federated-token-file annotation or move that mount$',
        ),
      },
    ],
    [
      'a mount deep below the token directory → denial',
      app(cfgAt(`${dir}/a/b`)),
      { conflict: /mounts volume "cfg" at ".*\/serviceaccount\/a\/b", inside the token directory/ },
    ],
    [
      'a mount inside the token directory written with // → denial',
      app(cfgAt('/var/run/secrets/stackit.cloud//serviceaccount//token')),
      { conflict: /mounts volume "cfg" at "\/var\/run\/secrets\/stackit.cloud\/\/serviceaccount\/\/token", inside/ },
    ],
    [
      'a mount inside the token directory written with /./ → denial',
      app(cfgAt(`${dir}/./token`)),
      { conflict: /mounts volume "cfg" .*, inside the token directory/ },
    ],
    [
      'a mount inside the token directory with a trailing / → denial',
      app(cfgAt(`${dir}/sub/`)),
      { conflict: /mounts volume "cfg" .*, inside the token directory/ },
    ],
    [
      'a mount inside the token directory reached through .. → denial',
      app(cfgAt('/var/run/secrets/stackit.cloud/x/../serviceaccount/token')),
      { conflict: /mounts volume "cfg" .*, inside the token directory/ },
    ],
    [
      'a mount inside the token directory next to our own mount → denial',
      { ...app(ourMount, cfgAt(`${dir}/token`)), volumes: [ourVolume] },
      { conflict: /mounts volume "cfg" .*, inside the token directory/ },
    ],
    [
      'a mount inside and our volume twice in one container → both reported',
      app(cfgAt(`${dir}/token`), ourMount, ourMount),
      { conflict: /^container "app" mounts volume "cfg" .*; container "app" mounts volume stackit-.* 2 times/ },
    ],
    // The API server accepts a mountPath without its leading "/" (and compares paths as strings for uniqueness);
    // the kubelet puts "/" in front (MakeAbsolutePath), so it is the same directory.
    [
      'another volume at the token directory written without the leading / → denial',
      app(cfgAt('var/run/secrets/stackit.cloud/serviceaccount')),
      { conflict: new RegExp(`^container "app" already mounts volume "cfg" at ${dir}; `) },
    ],
    [
      'a mount inside the token directory written without the leading / → denial',
      app(cfgAt('var/run/secrets/stackit.cloud/serviceaccount/token')),
      { conflict: new RegExp(`^container "app" mounts volume "cfg" at "${dir.slice(1)}/token", inside the token `) },
    ],
    ['a relative mount path elsewhere → allowed', app(cfgAt('data')), { mounts: [cfgAt('data'), ourMount] }],
    [
      'a sibling directory sharing the prefix is not inside → allowed',
      app(cfgAt(`${dir}-other`)),
      { mounts: [cfgAt(`${dir}-other`), ourMount] },
    ],
    [
      'a sibling file sharing the prefix is not inside → allowed',
      app({ ...cfgAt(`${dir}.token`), subPath: 't' }),
      { mounts: [{ ...cfgAt(`${dir}.token`), subPath: 't' }, ourMount] },
    ],
    [
      'a parent of the token directory with a trailing / → allowed, ours mounted on top',
      app(cfgAt('/var/run/secrets/stackit.cloud/')),
      { mounts: [cfgAt('/var/run/secrets/stackit.cloud/'), ourMount] },
    ],
    [
      'a parent of the token directory spelled …/serviceaccount/.. → allowed',
      app(cfgAt(`${dir}/..`)),
      { mounts: [cfgAt(`${dir}/..`), ourMount] },
    ],
    [
      'our own mount below the token directory → moved up to it',
      { containers: [{ name: 'app', env: [ourEnv], volumeMounts: [oursAt(`${dir}/sub`)] }] },
      { mounts: [ourMount] },
    ],
  ]
  for (const [name, spec, expect] of rows) {
    const input = pod(spec)
    if (expect.conflict) {
      t.throws(() => mutatePod(input, config, noSkip), { code: 'CONFLICT', message: expect.conflict }, name)
      continue
    }
    const r = mutatePod(input, config, noSkip)
    if (expect.changed !== undefined) t.equal(r.changed, expect.changed, `${name}: changed`)
    if (expect.changed === false) t.equal(r.pod, input, `${name}: same object back`)
    t.equal(r.warnings.length, expect.warnings?.length ?? 0, `${name}: warning count`)
    for (const [i, w] of (expect.warnings ?? []).entries()) t.match(r.warnings[i], w, `${name}: warning`)
    if (expect.volumes) t.same(at(r.pod, 'spec', 'volumes'), expect.volumes, `${name}: volumes`)
    if (expect.env) t.same(at(r.pod, 'spec', 'containers', 0, 'env'), expect.env, `${name}: env`)
    if (expect.mounts) t.same(at(r.pod, 'spec', 'containers', 0, 'volumeMounts'), expect.mounts, `${name}: mounts`)
    for (const c of at(r.pod, 'spec', 'containers') as JsonObject[]) {
      const paths = ((c['volumeMounts'] ?? []) as JsonObject[]).map(m => normal(m['mountPath'] as string))
      t.equal(new Set(paths).size, paths.length, `${name}: ${String(c['name'])} holds no two mounts at one path`)
    }
    const again = mutatePod(r.pod, config, noSkip)
    t.notOk(again.changed, `${name}: idempotent`)
    t.same(
      jsonpatch.compare(input, r.pod).filter(op => op.op === 'remove'),
      [],
      `${name}: no remove operation`,
    )
  }
})

t.test('a denial names at most 10 conflicts, then counts the rest', async t => {
  const conflicting = (n: number): JsonObject => ({
    containers: Array.from({ length: n }, (_, i) => ({ name: `c${i}`, volumeMounts: [cfgAt(dir)] })),
  })
  const named = (m: string): string[] => [...m.matchAll(/container "(c\d+)"/g)].map(x => x[1] as string)
  type Row = [containers: number, names: number, rest: string | undefined]
  const rows: Row[] = [
    [10, 10, undefined],
    [11, 10, 'and 1 more conflict'],
    [2000, 10, 'and 1990 more conflicts'],
  ]
  for (const [containers, names, rest] of rows) {
    const error = (() => {
      try {
        return mutatePod(pod(conflicting(containers)), config, noSkip)
      } catch (e) {
        return e
      }
    })()
    t.match(error, { code: 'CONFLICT' }, `${containers} containers: denied`)
    const message = (error as Error).message
    const first = Array.from({ length: names }, (_, i) => `c${i}`)
    t.same(named(message), first, `${containers} containers: the first named`)
    if (rest === undefined) t.notMatch(message, /more conflict/, `${containers} containers: nothing left out`)
    else t.match(message, new RegExp(`; ${rest}$`), `${containers} containers: the rest counted`)
    t.ok(message.length < 3000, `${containers} containers: the message stays short`)
  }
})

t.test('a custom token directory: mounts inside it are denied, its parent and siblings are not', async t => {
  const c: IdentityConfig = { ...config, mountPath: '/custom/path', tokenPath: 'jwt' }
  const mine = { name: 'stackit-workload-identity', mountPath: '/custom/path', readOnly: true }
  const rows: [mountPath: string, conflict: RegExp | undefined][] = [
    [
      '/custom/path/jwt',
      /^container "app" mounts volume "cfg" at "\/custom\/path\/jwt", inside the token directory \/custom\/path,/,
    ],
    ['/custom//path/jwt/', /inside the token directory \/custom\/path,/],
    ['/custom/path', /container "app" already mounts volume "cfg" at \/custom\/path;/],
    ['/custom', undefined],
    ['/custom/', undefined],
    ['/custom/pathology', undefined],
    ['/var/run/secrets/stackit.cloud/serviceaccount/token', undefined],
  ]
  for (const [mountPath, conflict] of rows) {
    const input = pod(app(cfgAt(mountPath)))
    if (conflict) {
      t.throws(() => mutatePod(input, c, noSkip), { code: 'CONFLICT', message: conflict }, mountPath)
      continue
    }
    const mounts = at(mutatePod(input, c, noSkip).pod, 'spec', 'containers', 0, 'volumeMounts')
    t.same(mounts, [cfgAt(mountPath), mine], `${mountPath}: allowed, ours added after it`)
  }
})

t.test('a skipped container may hold anything in the token directory', async t => {
  const side = { name: 'side', volumeMounts: [ourMount, ourMount, cfgAt(`${dir}/token`)] }
  const input = pod({ containers: [{ name: 'app' }, side] })
  const r = mutatePod(input, config, new Set(['side']))
  t.equal(at(r.pod, 'spec', 'containers', 1), at(input, 'spec', 'containers', 1), 'skipped container untouched')
})

t.test('skip-containers', async t => {
  const input = pod({ initContainers: [{ name: 'init' }], containers: [{ name: 'app' }, { name: 'istio-proxy' }] })
  const r = mutatePod(input, config, new Set(['istio-proxy', 'init', 'ghost']))
  t.equal(r.injected, 1)
  t.equal(
    at(r.pod, 'spec', 'containers', 1),
    at(input, 'spec', 'containers', 1),
    'skipped container is the same object',
  )
  t.equal(at(r.pod, 'spec', 'initContainers'), at(input, 'spec', 'initContainers'), 'untouched list is shared')
  t.same(r.warnings, ['skip-containers names "ghost", which is not a container of this Pod'])
  const all = mutatePod(input, config, new Set(['app', 'istio-proxy', 'init']))
  t.equal(all.changed, false, 'all skipped → nothing, not even the volume')
  t.equal(all.pod, input)
})

t.test(
  'structural sharing: only changed paths are copied, patch has no remove and no whole-list replacement',
  async t => {
    const input = pod({
      containers: [
        { name: 'a', env: [{ name: 'X', value: '1' }], resources: { limits: { cpu: '1' } } },
        { name: 'b', env: [ourEnv], volumeMounts: [ourMount] },
      ],
      volumes: [ourVolume],
      tolerations: [{ key: 'k' }],
    })
    const r = mutatePod(input, config, noSkip)
    t.equal(at(r.pod, 'metadata'), at(input, 'metadata'))
    t.equal(at(r.pod, 'spec', 'tolerations'), at(input, 'spec', 'tolerations'))
    t.equal(at(r.pod, 'spec', 'containers', 1), at(input, 'spec', 'containers', 1), 'already-injected container shared')
    t.equal(at(r.pod, 'spec', 'containers', 0, 'resources'), at(input, 'spec', 'containers', 0, 'resources'))
    const patch = jsonpatch.compare(input, r.pod)
    t.same(patch.map(op => `${op.op} ${op.path}`).sort(), [
      'add /spec/containers/0/env/1',
      'add /spec/containers/0/volumeMounts',
    ])
  },
)

t.test('100 containers', async t => {
  const containers = Array.from({ length: 100 }, (_, i) => ({ name: `c${i}`, image: 'x' }))
  const r = mutatePod(pod({ containers }), config, noSkip)
  t.equal(r.injected, 100)
  const patch = jsonpatch.compare(pod({ containers }), r.pod)
  t.equal(patch.length, 201, 'a mount and env per container plus the volume')
  t.notOk(patch.some(op => op.op !== 'add' || op.path === '/spec/containers'))
})

t.test('malformed Pods → BAD_POD naming the field', async t => {
  const rows: [name: string, spec: unknown, message: RegExp][] = [
    ['no spec', undefined, /Pod spec must be an object/],
    ['containers not a list', { containers: {} }, /spec.containers must be a list/],
    ['container not an object', { containers: ['x'] }, /spec.containers\[0\] must be an object/],
    ['container without name', { containers: [{ image: 'x' }] }, /spec.containers\[0\].name must be a string/],
    ['env not a list', { containers: [{ name: 'a', env: 'X=1' }] }, /spec.containers\[0\].env must be a list/],
    [
      'mount without path',
      { containers: [{ name: 'a', volumeMounts: [{ name: 'v' }] }] },
      /volumeMounts\[0\].mountPath must be a string/,
    ],
    ['volumes not a list', { containers: [{ name: 'a' }], volumes: 5 }, /spec.volumes must be a list/],
    ['volume without name', { containers: [{ name: 'a' }], volumes: [{}] }, /spec.volumes\[0\].name must be a string/],
  ]
  for (const [name, spec, message] of rows) {
    const p: JsonObject = { kind: 'Pod' }
    if (spec !== undefined) p['spec'] = spec
    t.throws(() => mutatePod(p, config, noSkip), { code: 'BAD_POD', message }, name)
  }
  const nulls = mutatePod(
    pod({ containers: [{ name: 'a', env: null, volumeMounts: null }], volumes: null, initContainers: null }),
    config,
    noSkip,
  )
  t.same(at(nulls.pod, 'spec', 'containers', 0, 'env'), [ourEnv], 'null lists are treated as absent')
})

t.test('warnings stay under 120 characters', async t => {
  const long = 'c'.repeat(63)
  const r = mutatePod(
    pod({ containers: [{ name: long, env: [{ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: 'other' }] }] }),
    config,
    new Set(['x'.repeat(200)]),
  )
  t.equal(r.warnings.length, 2)
  for (const w of r.warnings) t.ok(w.length <= maxWarningLength, `${w.length} ≤ ${maxWarningLength}`)
  t.equal(boundWarning('short'), 'short')
  t.equal(boundWarning('y'.repeat(300)).length, maxWarningLength)
})
