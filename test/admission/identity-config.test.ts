import t, { type Test } from 'tap'
import { podOptsOut, resolveIdentity, skippedContainers } from '../../lib/admission/identity-config.js'
import { isWebhookError } from '../../lib/errors.js'
import type { ServiceAccount } from '../../lib/admission/serviceaccount.js'
import { email, invalidAnnotationCases, ours, skipKey } from '../helpers/annotation-cases.js'

const P = 'workload-identity.stackit.cloud/'
const sa = (annotations: Record<string, string>): ServiceAccount => ({
  namespace: 'team-a',
  name: 'app',
  annotations: new Map(Object.entries(annotations).map(([k, v]) => [P + k, v])),
})
const none = new Map<string, string>()
/** A map of our keys, given without the prefix. */
const keyed = (entries: Record<string, string>): Map<string, string> =>
  new Map(Object.entries(entries).map(([k, v]) => [P + k, v]))

/** Asserts an inject decision with the expected configuration fields, env and warnings. */
const expectInject = (
  t: Test,
  name: string,
  d: ReturnType<typeof resolveIdentity>,
  expect: Record<string, unknown>,
  warnings: readonly string[],
): void => {
  if (d.kind !== 'inject') {
    t.fail(`${name}: expected inject, got skip`)
    return
  }
  const { env, ...rest } = expect
  t.match(d.config, rest, name)
  if (env)
    t.same(
      d.config.env.map(e => [e.name, e.value]),
      env,
      `${name}: env`,
    )
  t.equal(d.config.email, email, `${name}: email`)
  t.same(d.warnings, warnings, `${name}: warnings`)
  t.ok(
    d.warnings.every(w => w.length < 120),
    `${name}: warnings fit a header`,
  )
}

t.test('valid annotations → configuration', async t => {
  type Row = [
    name: string,
    annotations: Record<string, string>,
    pod: Record<string, string>,
    expect: Record<string, unknown>,
  ]
  const rows: Row[] = [
    [
      'e-mail only → defaults',
      { 'service-account-email': email },
      {},
      {
        audience: 'sts.accounts.stackit.cloud',
        expirationSeconds: 600,
        mountPath: '/var/run/secrets/stackit.cloud/serviceaccount',
        tokenPath: 'token',
        env: [['STACKIT_SERVICE_ACCOUNT_EMAIL', email]],
      },
    ],
    ['custom audience', { 'service-account-email': email, audience: 'my-aud' }, {}, { audience: 'my-aud' }],
    [
      'expiration at the lower bound',
      { 'service-account-email': email, 'service-account-token-expiration-seconds': '600' },
      {},
      { expirationSeconds: 600 },
    ],
    [
      'expiration at the upper bound',
      { 'service-account-email': email, 'service-account-token-expiration-seconds': '4294967296' },
      {},
      { expirationSeconds: 4294967296 },
    ],
    [
      'Pod override wins over ServiceAccount',
      { 'service-account-email': email, 'service-account-token-expiration-seconds': '1200' },
      { 'service-account-token-expiration-seconds': '3600' },
      { expirationSeconds: 3600 },
    ],
    [
      'idp token expiration → env',
      { 'service-account-email': email, 'idp-token-expiration-seconds': '900' },
      {},
      {
        env: [
          ['STACKIT_SERVICE_ACCOUNT_EMAIL', email],
          ['STACKIT_IDP_TOKEN_EXPIRATION_SECONDS', '900'],
        ],
      },
    ],
    [
      'idp token endpoint → env',
      { 'service-account-email': email, 'idp-token-endpoint': 'https://idp.example.com/token' },
      {},
      {
        env: [
          ['STACKIT_SERVICE_ACCOUNT_EMAIL', email],
          ['STACKIT_IDP_TOKEN_ENDPOINT', 'https://idp.example.com/token'],
        ],
      },
    ],
    [
      'federated token file → mount dir, file name, env',
      { 'service-account-email': email, 'federated-token-file': '/custom/path/jwt' },
      {},
      {
        mountPath: '/custom/path',
        tokenPath: 'jwt',
        env: [
          ['STACKIT_SERVICE_ACCOUNT_EMAIL', email],
          ['STACKIT_FEDERATED_TOKEN_FILE', '/custom/path/jwt'],
        ],
      },
    ],
    [
      'skip annotation "false" does not skip',
      { 'service-account-email': email, 'skip-pod-identity-webhook': 'false' },
      {},
      { audience: 'sts.accounts.stackit.cloud' },
    ],
    [
      'federated token file whose directory starts with ".." is fine',
      ours({ 'federated-token-file': '/var/..run/token' }),
      {},
      { mountPath: '/var/..run', tokenPath: 'token' },
    ],
    [
      'federated token file name with ".." inside is fine',
      ours({ 'federated-token-file': '/var/run/a..token' }),
      {},
      { tokenPath: 'a..token' },
    ],
  ]
  for (const [name, annotations, pod, expect] of rows) {
    expectInject(t, name, resolveIdentity(sa(annotations), keyed(pod)), expect, [])
  }
})

t.test('an empty value counts as absent, with a warning naming it', async t => {
  type Row = [
    name: string,
    annotations: Record<string, string>,
    pod: Record<string, string>,
    expect: Record<string, unknown>,
    warning: string,
  ]
  const defaultsOnly = {
    audience: 'sts.accounts.stackit.cloud',
    expirationSeconds: 600,
    mountPath: '/var/run/secrets/stackit.cloud/serviceaccount',
    tokenPath: 'token',
    env: [['STACKIT_SERVICE_ACCOUNT_EMAIL', email]],
  }
  const onSa = (key: string): string => `ServiceAccount team-a/app annotation ${key} is empty: treated as absent`
  const onPod = (key: string): string => `Pod annotation ${key} is empty: treated as absent`
  const expiration = 'service-account-token-expiration-seconds'
  const rows: Row[] = [
    ['empty audience → default', ours({ audience: '' }), {}, defaultsOnly, onSa('audience')],
    ['empty token expiration → default', ours({ [expiration]: '' }), {}, defaultsOnly, onSa(expiration)],
    [
      'empty idp token expiration → no env',
      ours({ 'idp-token-expiration-seconds': '' }),
      {},
      defaultsOnly,
      onSa('idp-token-expiration-seconds'),
    ],
    [
      'empty idp token endpoint → no env',
      ours({ 'idp-token-endpoint': '' }),
      {},
      defaultsOnly,
      onSa('idp-token-endpoint'),
    ],
    [
      'empty federated token file → default path, no env',
      ours({ 'federated-token-file': '' }),
      {},
      defaultsOnly,
      onSa('federated-token-file'),
    ],
    ['empty ServiceAccount skip → not skipped', ours({ [skipKey]: '' }), {}, defaultsOnly, onSa(skipKey)],
    [
      'empty Pod token expiration → the ServiceAccount value',
      ours({ [expiration]: '1200' }),
      { [expiration]: '' },
      { expirationSeconds: 1200 },
      onPod(expiration),
    ],
    ['empty Pod skip annotation → not skipped', ours(), { [skipKey]: '' }, defaultsOnly, onPod(skipKey)],
    [
      'empty Pod skip-containers → every container',
      ours(),
      { 'skip-containers': '' },
      defaultsOnly,
      onPod('skip-containers'),
    ],
  ]
  for (const [name, annotations, pod, expect, warning] of rows) {
    expectInject(t, name, resolveIdentity(sa(annotations), keyed(pod)), expect, [warning])
  }
  const label = resolveIdentity(sa(ours()), none, keyed({ [skipKey]: '' }))
  t.same(
    [label.kind, label.warnings],
    ['inject', [`Pod label ${skipKey} is empty: treated as absent`]],
    'empty Pod skip label → not skipped',
  )
})

t.test('skips', async t => {
  type Row = [name: string, annotations: Record<string, string>, reason: RegExp]
  const rows: Row[] = [
    ['no e-mail annotation', {}, /no service-account-email/],
    ['no e-mail, other annotations are not judged', { audience: '' }, /no service-account-email/],
    [
      'ServiceAccount skip "true"',
      { 'service-account-email': email, 'skip-pod-identity-webhook': 'true' },
      /opted out/,
    ],
    [
      'ServiceAccount skip "TRUE"',
      { 'service-account-email': email, 'skip-pod-identity-webhook': 'TRUE' },
      /opted out/,
    ],
  ]
  for (const [name, annotations, reason] of rows) {
    const d = resolveIdentity(sa(annotations), none)
    t.equal(d.kind, 'skip', name)
    if (d.kind === 'skip') t.match(d.reason, reason, name)
    t.same(d.warnings, [], `${name}: no warnings`)
  }
})

t.test('an empty e-mail means "not ours": skipped, with a warning, nothing else judged', async t => {
  const annotations = { 'service-account-email': '', audience: ' bad ', 'idp-token-endpoint': 'http://x' }
  const d = resolveIdentity(sa(annotations), none)
  t.equal(d.kind, 'skip')
  if (d.kind === 'skip') t.match(d.reason, /empty service-account-email/)
  t.same(d.warnings, ['ServiceAccount team-a/app annotation service-account-email is empty: treated as absent'])
})

t.test('Pod skip label or annotation: "true" skips, another value is judged only when an identity applies', async t => {
  type Row = [
    name: string,
    annotations: Record<string, string>,
    labels: Record<string, string>,
    podAnnotations: Record<string, string>,
    kind: 'inject' | 'skip',
    warnings: string[],
  ]
  const ignored = (kind: string, shown: string): string =>
    `Pod ${kind} ${skipKey}=${shown} ignored: not "true" or "false", and no identity applies`
  const yes = ignored('label', '"yes"')
  const rows: Row[] = [
    ['label "true" → skipped', ours(), { [skipKey]: 'true' }, {}, 'skip', []],
    ['annotation "True" → skipped', ours(), {}, { [skipKey]: 'True' }, 'skip', []],
    ['label "false" → injected', ours(), { [skipKey]: 'false' }, {}, 'inject', []],
    ['label "yes", annotation "true" → skipped', ours(), { [skipKey]: 'yes' }, { [skipKey]: 'true' }, 'skip', []],
    ['label "yes", no identity → skipped, a warning names the value', {}, { [skipKey]: 'yes' }, {}, 'skip', [yes]],
    [
      'label "yes", empty e-mail → skipped, both warnings',
      { 'service-account-email': '' },
      { [skipKey]: 'yes' },
      {},
      'skip',
      ['ServiceAccount team-a/app annotation service-account-email is empty: treated as absent', yes],
    ],
    [
      'label "yes", ServiceAccount opted out → skipped with the warning',
      ours({ [skipKey]: 'true' }),
      { [skipKey]: 'yes' },
      {},
      'skip',
      [yes],
    ],
    [
      'annotation with a newline, no identity → the warning shows it escaped',
      {},
      {},
      { [skipKey]: 'true\n' },
      'skip',
      [ignored('annotation', '"true\\n"')],
    ],
  ]
  for (const [name, annotations, labels, podAnnotations, kind, warnings] of rows) {
    const d = resolveIdentity(sa(annotations), keyed(podAnnotations), keyed(labels))
    t.equal(d.kind, kind, name)
    t.same(d.warnings, warnings, `${name}: warnings`)
  }
  const long = resolveIdentity(sa({}), none, keyed({ [skipKey]: 'y'.repeat(300) }))
  t.ok(long.warnings.length === 1 && long.warnings.every(w => w.includes('…')), 'a long value is cut in the warning')
})

t.test('invalid annotations → one denial naming each', async t => {
  const rows = invalidAnnotationCases
  for (const [name, annotations, pod, messages, labels = {}] of rows) {
    const d = resolveIdentity(sa(annotations), keyed(pod), keyed(labels))
    t.equal(d.kind, 'invalid', `${name}: denied`)
    const caught = d.kind === 'invalid' ? d.error : undefined
    t.ok(isWebhookError(caught, 'INVALID_ANNOTATION'), `${name}: INVALID_ANNOTATION`)
    const message = caught?.message ?? ''
    for (const m of messages) t.match(message, m, name)
    if (!pod['service-account-token-expiration-seconds'] && Object.keys(labels).length === 0) {
      t.match(message, /^ServiceAccount team-a\/app annotation/, `${name}: names the ServiceAccount`)
    }
    t.match(message, /Fix the annotations? and create the Pod again\.$/, `${name}: says how to fix it`)
  }
})

t.test('Pod opt-out by label or annotation, by value', async t => {
  type Row = [name: string, labels: Record<string, string>, annotations: Record<string, string>, skip: boolean]
  const k = `${P}skip-pod-identity-webhook`
  const rows: Row[] = [
    ['nothing set', {}, {}, false],
    ['label true', { [k]: 'true' }, {}, true],
    ['annotation true', {}, { [k]: 'true' }, true],
    ['annotation false', {}, { [k]: 'false' }, false],
    ['label false, annotation true', { [k]: 'false' }, { [k]: 'true' }, true],
    ['label TRUE', { [k]: 'TRUE' }, {}, true],
    // Only "true" skips the lookup; anything else is judged once the ServiceAccount is known (resolveIdentity).
    ['label garbage', { [k]: 'maybe' }, {}, false],
    ['annotation empty', {}, { [k]: '' }, false],
    ['label garbage, annotation true', { [k]: 'maybe' }, { [k]: 'true' }, true],
  ]
  for (const [name, labels, annotations, skip] of rows) {
    t.equal(podOptsOut(new Map(Object.entries(labels)), new Map(Object.entries(annotations))), skip, name)
  }
})

t.test('skip-containers list', async t => {
  const rows: [string | undefined, string[]][] = [
    [undefined, []],
    ['', []],
    ['a', ['a']],
    ['a, b', ['a', 'b']],
    [' a ,, b ,', ['a', 'b']],
  ]
  for (const [v, names] of rows) {
    const m = v === undefined ? none : new Map([[`${P}skip-containers`, v]])
    t.same([...skippedContainers(m)], names, JSON.stringify(v))
  }
})

t.test('unknown keys under our prefix, on the Pod and on its ServiceAccount, are warned about', async t => {
  const d = resolveIdentity(
    sa(ours({ 'service-acount-email': email })),
    keyed({ 'skip-container': 'app' }),
    keyed({ 'skip-pod-identity-webhok': 'true' }),
  )
  t.equal(d.kind, 'inject', 'an unknown key changes nothing else')
  t.same(d.warnings, [
    'Pod label "skip-pod-identity-webhok" is an unknown key; did you mean skip-pod-identity-webhook?',
    'Pod annotation "skip-container" is an unknown key; did you mean skip-containers?',
    'ServiceAccount team-a/app annotation "service-acount-email" is an unknown key; ' +
      'did you mean service-account-email?',
  ])
  const skipped = resolveIdentity(sa({ audiense: 'x' }), none)
  t.same(
    skipped.warnings,
    ['ServiceAccount team-a/app annotation "audiense" is an unknown key; did you mean audience?'],
    'also when no identity applies',
  )
})
