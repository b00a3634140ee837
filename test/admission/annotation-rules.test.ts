import t from 'tap'
import {
  isPlainEmail,
  parseBoolean,
  podKeys,
  serviceAccountKeys,
  tokenFileProblem,
  unknownKeyWarnings,
} from '../../lib/admission/annotation-rules.js'

const P = 'workload-identity.stackit.cloud/'

t.test('e-mail rule', async t => {
  const rows: [string, boolean][] = [
    ['a@b.c', true],
    ['first.last+tag@sa.stackit.cloud', true],
    ['a@b', false],
    ['.a@b.c', false],
    ['a..b@c.d', false],
    ['a@-b.c', false],
    ['"a"@b.c', false],
    ['a@b.c ', false],
    ['a@b..c', false],
    [`${'a'.repeat(250)}@b.cd`, false],
  ]
  for (const [v, ok] of rows) t.equal(isPlainEmail(v), ok, v)
})

t.test('booleans', async t => {
  const rows: [string, boolean | undefined][] = [
    ['true', true],
    ['True', true],
    ['false', false],
    ['FALSE', false],
    ['1', undefined],
    ['', undefined],
    ['yes', undefined],
  ]
  for (const [v, b] of rows) t.equal(parseBoolean(v), b, JSON.stringify(v))
})

t.test('token file rule accepts good paths', async t => {
  for (const p of ['/var/run/secrets/x/token', '/a/b', '/custom/path/token', '/a/.token', '/a/b..', '/..a/b']) {
    t.equal(tokenFileProblem(p), undefined, p)
  }
  for (const p of ['/a/..b', '/a/...', '/a/..']) t.not(tokenFileProblem(p), undefined, p)
})

t.test('unknown keys under our prefix are named, with the known key they are likely a typo of', async t => {
  type Row = [key: string, known: readonly string[], warning: string]
  const rows: Row[] = [
    [
      'service-acount-email',
      serviceAccountKeys,
      '"service-acount-email" is an unknown key; did you mean service-account-email?',
    ],
    ['audiences', serviceAccountKeys, '"audiences" is an unknown key; did you mean audience?'],
    ['skip-container', podKeys, '"skip-container" is an unknown key; did you mean skip-containers?'],
    ['role', serviceAccountKeys, '"role" is an unknown key'],
    ['audience', podKeys, '"audience" is an unknown key'],
    ['x'.repeat(300), serviceAccountKeys, `${JSON.stringify(`${'x'.repeat(40)}…`)} is an unknown key`],
  ]
  for (const [key, known, warning] of rows) {
    const found = unknownKeyWarnings('ServiceAccount a/b', 'annotation', new Map([[`${P}${key}`, 'v']]), known)
    t.same(found, [`ServiceAccount a/b annotation ${warning}`], key.slice(0, 40))
    t.ok(
      found.every(w => w.length < 120),
      `${key.slice(0, 40)}: under 120 characters`,
    )
  }
  const ours = new Map(serviceAccountKeys.map(k => [k, 'v']))
  t.same(unknownKeyWarnings('ServiceAccount a/b', 'annotation', ours, serviceAccountKeys), [], 'known keys: no warning')
})
