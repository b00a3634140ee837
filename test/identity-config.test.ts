import t from 'tap'
import { isPlainEmail, parseBoolean, podOptsOut, resolveIdentity, showValue, skippedContainers, tokenFileProblem } from '../lib/identity-config.js'
import { isWebhookError } from '../lib/errors.js'
import type { ServiceAccount } from '../lib/serviceaccount.js'

const P = 'workload-identity.stackit.cloud/'
const email = 'app-1a2b@sa.stackit.cloud'
const sa = (annotations: Record<string, string>): ServiceAccount => ({
  namespace: 'team-a',
  name: 'app',
  annotations: new Map(Object.entries(annotations).map(([k, v]) => [P + k, v])),
})
const none = new Map<string, string>()

t.test('valid annotations → configuration', async t => {
  type Row = [name: string, annotations: Record<string, string>, pod: Record<string, string>, expect: Record<string, unknown>]
  const rows: Row[] = [
    ['e-mail only → defaults', { 'service-account-email': email }, {},
      { audience: 'sts.accounts.stackit.cloud', expirationSeconds: 600, mountPath: '/var/run/secrets/stackit.cloud/serviceaccount', tokenPath: 'token', env: [['STACKIT_SERVICE_ACCOUNT_EMAIL', email]] }],
    ['custom audience', { 'service-account-email': email, audience: 'my-aud' }, {}, { audience: 'my-aud' }],
    ['expiration at the lower bound', { 'service-account-email': email, 'service-account-token-expiration-seconds': '600' }, {}, { expirationSeconds: 600 }],
    ['expiration at the upper bound', { 'service-account-email': email, 'service-account-token-expiration-seconds': '4294967296' }, {}, { expirationSeconds: 4294967296 }],
    ['Pod override wins over ServiceAccount', { 'service-account-email': email, 'service-account-token-expiration-seconds': '1200' }, { 'service-account-token-expiration-seconds': '3600' }, { expirationSeconds: 3600 }],
    ['idp token expiration → env', { 'service-account-email': email, 'idp-token-expiration-seconds': '900' }, {},
      { env: [['STACKIT_SERVICE_ACCOUNT_EMAIL', email], ['STACKIT_IDP_TOKEN_EXPIRATION_SECONDS', '900']] }],
    ['idp token endpoint → env', { 'service-account-email': email, 'idp-token-endpoint': 'https://idp.example.com/token' }, {},
      { env: [['STACKIT_SERVICE_ACCOUNT_EMAIL', email], ['STACKIT_IDP_TOKEN_ENDPOINT', 'https://idp.example.com/token']] }],
    ['federated token file → mount dir, file name, env', { 'service-account-email': email, 'federated-token-file': '/custom/path/jwt' }, {},
      { mountPath: '/custom/path', tokenPath: 'jwt', env: [['STACKIT_SERVICE_ACCOUNT_EMAIL', email], ['STACKIT_FEDERATED_TOKEN_FILE', '/custom/path/jwt']] }],
    ['skip annotation "false" does not skip', { 'service-account-email': email, 'skip-pod-identity-webhook': 'false' }, {}, { audience: 'sts.accounts.stackit.cloud' }],
  ]
  for (const [name, annotations, pod, expect] of rows) {
    const d = resolveIdentity(sa(annotations), new Map(Object.entries(pod).map(([k, v]) => [P + k, v])))
    if (d.kind !== 'inject') {
      t.fail(`${name}: expected inject, got skip`)
      continue
    }
    const { env, ...rest } = expect
    t.match(d.config, rest, name)
    if (env) t.same(d.config.env.map(e => [e.name, e.value]), env, `${name}: env`)
    t.equal(d.config.email, email, `${name}: email`)
  }
})

t.test('skips', async t => {
  type Row = [name: string, annotations: Record<string, string>, reason: RegExp]
  const rows: Row[] = [
    ['no e-mail annotation', {}, /no service-account-email/],
    ['no e-mail, other annotations are not judged', { audience: '' }, /no service-account-email/],
    ['ServiceAccount skip "true"', { 'service-account-email': email, 'skip-pod-identity-webhook': 'true' }, /opted out/],
    ['ServiceAccount skip "TRUE"', { 'service-account-email': email, 'skip-pod-identity-webhook': 'TRUE' }, /opted out/],
  ]
  for (const [name, annotations, reason] of rows) {
    const d = resolveIdentity(sa(annotations), none)
    t.equal(d.kind, 'skip', name)
    if (d.kind === 'skip') t.match(d.reason, reason, name)
  }
})

t.test('invalid annotations → one denial naming each', async t => {
  type Row = [name: string, annotations: Record<string, string>, pod: Record<string, string>, message: RegExp[]]
  const rows: Row[] = [
    ['display-name e-mail', { 'service-account-email': 'App <app@sa.stackit.cloud>' }, {}, [/service-account-email="App <app@sa.stackit.cloud>" must be a plain e-mail/]],
    ['e-mail with a space', { 'service-account-email': 'app @sa.stackit.cloud' }, {}, [/plain e-mail/]],
    ['e-mail without domain dot', { 'service-account-email': 'app@localhost' }, {}, [/plain e-mail/]],
    ['empty audience', { 'service-account-email': email, audience: '' }, {}, [/audience="" must be non-empty/]],
    ['blank audience', { 'service-account-email': email, audience: '  ' }, {}, [/audience="  " must be non-empty/]],
    ['audience with surrounding spaces', { 'service-account-email': email, audience: ' a ' }, {}, [/without surrounding spaces/]],
    ['expiration below 600', { 'service-account-email': email, 'service-account-token-expiration-seconds': '599' }, {}, [/="599" must be a whole number of seconds from 600 to 4294967296/]],
    ['expiration above 2^32', { 'service-account-email': email, 'service-account-token-expiration-seconds': '4294967297' }, {}, [/="4294967297"/]],
    ['expiration not a number', { 'service-account-email': email, 'service-account-token-expiration-seconds': 'not-a-number' }, {}, [/"not-a-number"/]],
    ['expiration negative', { 'service-account-email': email, 'service-account-token-expiration-seconds': '-600' }, {}, [/"-600"/]],
    ['expiration decimal', { 'service-account-email': email, 'service-account-token-expiration-seconds': '600.5' }, {}, [/"600.5"/]],
    ['expiration exponent', { 'service-account-email': email, 'service-account-token-expiration-seconds': '6e2' }, {}, [/"6e2"/]],
    ['Pod override below 600', { 'service-account-email': email }, { 'service-account-token-expiration-seconds': '60' }, [/^Pod annotation .*="60" must be/]],
    ['idp expiration zero', { 'service-account-email': email, 'idp-token-expiration-seconds': '0' }, {}, [/idp-token-expiration-seconds="0" must be a positive whole number/]],
    ['idp expiration text', { 'service-account-email': email, 'idp-token-expiration-seconds': 'soon' }, {}, [/"soon"/]],
    ['idp endpoint http', { 'service-account-email': email, 'idp-token-endpoint': 'http://idp.example.com/token' }, {}, [/idp-token-endpoint="http:\/\/idp.example.com\/token" must be an absolute https:\/\/ URL/]],
    ['idp endpoint relative', { 'service-account-email': email, 'idp-token-endpoint': '/oauth/token' }, {}, [/must be an absolute https/]],
    ['idp endpoint with credentials', { 'service-account-email': email, 'idp-token-endpoint': 'https://u:p@idp.example.com/' }, {}, [/without credentials/]],
    ['idp endpoint with spaces', { 'service-account-email': email, 'idp-token-endpoint': ' https://idp.example.com/' }, {}, [/must be an absolute https/]],
    ['token file relative', { 'service-account-email': email, 'federated-token-file': 'token' }, {}, [/federated-token-file="token" must be an absolute path/]],
    ['token file with ..', { 'service-account-email': email, 'federated-token-file': '/var/../etc/token' }, {}, [/must not contain "\.\." elements/]],
    ['token file not normalised', { 'service-account-email': email, 'federated-token-file': '/var//run/token' }, {}, [/must be normalised/]],
    ['token file trailing slash', { 'service-account-email': email, 'federated-token-file': '/var/run/' }, {}, [/end in a file name/]],
    ['token file directly in /', { 'service-account-email': email, 'federated-token-file': '/token' }, {}, [/not directly in "\/"/]],
    ['token file with a colon', { 'service-account-email': email, 'federated-token-file': '/var/run:x/token' }, {}, [/must not contain whitespace/]],
    ['skip annotation "yes"', { 'service-account-email': email, 'skip-pod-identity-webhook': 'yes' }, {}, [/skip-pod-identity-webhook="yes" must be "true" or "false"/]],
    ['three errors together', { 'service-account-email': 'x', audience: '', 'idp-token-expiration-seconds': '-1' }, {},
      [/service-account-email="x"/, /audience=""/, /idp-token-expiration-seconds="-1"/, /Fix the annotations/]],
  ]
  for (const [name, annotations, pod, messages] of rows) {
    let caught: unknown
    try {
      resolveIdentity(sa(annotations), new Map(Object.entries(pod).map(([k, v]) => [P + k, v])))
    } catch (e) {
      caught = e
    }
    t.ok(isWebhookError(caught, 'INVALID_ANNOTATION'), `${name}: INVALID_ANNOTATION`)
    for (const m of messages) t.match((caught as Error).message, m, name)
    if (!pod['service-account-token-expiration-seconds']) t.match((caught as Error).message, /^ServiceAccount team-a\/app annotation/, `${name}: names the ServiceAccount`)
  }
})

t.test('values are bounded and quoted in messages', async t => {
  t.equal(showValue('a b'), '"a b"')
  t.equal(showValue('x'.repeat(200)), JSON.stringify('x'.repeat(80) + '…'))
  t.equal(showValue('line\nbreak'), '"line\\nbreak"')
})

t.test('e-mail rule', async t => {
  const rows: [string, boolean][] = [
    ['a@b.c', true], ['first.last+tag@sa.stackit.cloud', true], ['a@b', false], ['.a@b.c', false], ['a..b@c.d', false],
    ['a@-b.c', false], ['"a"@b.c', false], ['a@b.c ', false], ['a@b..c', false], [`${'a'.repeat(250)}@b.cd`, false],
  ]
  for (const [v, ok] of rows) t.equal(isPlainEmail(v), ok, v)
})

t.test('booleans', async t => {
  const rows: [string, boolean | undefined][] = [['true', true], ['True', true], ['false', false], ['FALSE', false], ['1', undefined], ['', undefined], ['yes', undefined]]
  for (const [v, b] of rows) t.equal(parseBoolean(v), b, JSON.stringify(v))
})

t.test('token file rule accepts good paths', async t => {
  for (const p of ['/var/run/secrets/x/token', '/a/b', '/custom/path/token']) t.equal(tokenFileProblem(p), undefined, p)
})

t.test('Pod opt-out by label or annotation, by value', async t => {
  type Row = [name: string, labels: Record<string, string>, annotations: Record<string, string>, skip: boolean | RegExp]
  const k = P + 'skip-pod-identity-webhook'
  const rows: Row[] = [
    ['nothing set', {}, {}, false],
    ['label true', { [k]: 'true' }, {}, true],
    ['annotation true', {}, { [k]: 'true' }, true],
    ['annotation false', {}, { [k]: 'false' }, false],
    ['label false, annotation true', { [k]: 'false' }, { [k]: 'true' }, true],
    ['label garbage', { [k]: 'maybe' }, {}, /Pod label .*="maybe" must be "true" or "false"/],
    ['annotation empty', {}, { [k]: '' }, /Pod annotation .*="" must be/],
  ]
  for (const [name, labels, annotations, skip] of rows) {
    const run = (): boolean => podOptsOut(new Map(Object.entries(labels)), new Map(Object.entries(annotations)))
    if (skip instanceof RegExp) t.throws(run, { code: 'INVALID_ANNOTATION', message: skip }, name)
    else t.equal(run(), skip, name)
  }
})

t.test('skip-containers list', async t => {
  const rows: [string | undefined, string[]][] = [
    [undefined, []], ['', []], ['a', ['a']], ['a, b', ['a', 'b']], [' a ,, b ,', ['a', 'b']],
  ]
  for (const [v, names] of rows) {
    const m = v === undefined ? none : new Map([[P + 'skip-containers', v]])
    t.same([...skippedContainers(m)], names, JSON.stringify(v))
  }
})
