// `validate` through main() in this process, on real files in a test folder and on stdin; the last test spawns the
// built binary for the exit code the shell sees.
import t from 'tap'
import { runCli, runMain } from '../helpers/webhook-client.js'
import { fixturePath } from '../helpers/paths.js'
import { invalidAnnotationCases } from '../helpers/annotation-cases.js'

const prefix = 'workload-identity.stackit.cloud/'
const email = `${prefix}service-account-email`
const expiration = `${prefix}service-account-token-expiration-seconds`

/** A ServiceAccount as kubectl prints it; `namespace: null` leaves metadata.namespace out. */
const sa = (name: string, annotations: Record<string, string>, namespace: string | null = 'team-a') => ({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: { name, ...(namespace === null ? {} : { namespace }), annotations },
})
const json = (doc: unknown): string => JSON.stringify(doc, null, 2)
const list = (...items: unknown[]): string => json({ apiVersion: 'v1', kind: 'List', items })

const expirationRule =
  "must be a whole number of seconds from 600 to 4294967296 (Kubernetes' limits for a projected token)"
const brokenLine = (at: string, ref: string): string =>
  `error: ${at}ServiceAccount ${ref} annotation ${expiration}="soon" ${expirationRule}`
const summary = (checked: number, broken: number, warnings: number): string =>
  `${checked} ServiceAccount${checked === 1 ? '' : 's'} checked: ${broken} with broken annotations, ` +
  `${warnings} warning${warnings === 1 ? '' : 's'}\n`

t.test('findings on stdout, the summary on stderr, exit 0 clean (warnings allowed) or 1 broken', async t => {
  const dir = t.testdir({
    'clean.json': json(sa('app', { [email]: 'app-1a2b@sa.stackit.cloud' })),
    'broken.json': json(sa('app', { [email]: 'a@b.cd', [expiration]: 'soon' })),
    'typo.json': json(sa('app', { [email]: 'a@b.cd', [`${prefix}service-acount-email`]: 'x@b.cd' })),
    'mixed.json': list(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'team-a' }, data: { k: 's3cr3t' } },
      sa('broken', { [email]: 'a@b.cd', [expiration]: 'soon' }),
      sa('plain', {}),
    ),
    'no-namespace.json': json(sa('app', { [email]: 'a@b.cd', [expiration]: 'soon' }, null)),
    'inert.json': list(sa('a', { [`${prefix}audience`]: 'x' }), sa('b', { [email]: '' })),
  })
  const f = (name: string): string => `${dir}/${name}`
  type Row = [name: string, files: string[], stdin: string, code: number, stdout: string[], stderr: string]
  const rows: Row[] = [
    ['clean file', [f('clean.json')], '', 0, [], summary(1, 0, 0)],
    [
      'broken annotation → exit 1, the value and the rule',
      [f('broken.json')],
      '',
      1,
      [brokenLine(`${f('broken.json')}: `, 'team-a/app')],
      summary(1, 1, 0),
    ],
    [
      "typo'd key → a warning naming the likely key, exit 0",
      [f('typo.json')],
      '',
      0,
      [
        `warning: ${f('typo.json')}: ServiceAccount team-a/app annotation "service-acount-email" is an unknown key;` +
          ' did you mean service-account-email?',
      ],
      summary(1, 0, 1),
    ],
    [
      'List with mixed kinds: the other kind skipped with a warning, each ServiceAccount judged',
      [f('mixed.json')],
      '',
      1,
      [
        `warning: ${f('mixed.json')}: item 0 (kind "ConfigMap") is not a ServiceAccount: skipped`,
        brokenLine(`${f('mixed.json')}: `, 'team-a/broken'),
      ],
      summary(2, 1, 1),
    ],
    [
      'missing metadata.namespace → named as in "default"',
      [f('no-namespace.json')],
      '',
      1,
      [brokenLine(`${f('no-namespace.json')}: `, 'default/app')],
      summary(1, 1, 0),
    ],
    [
      'optional annotations without the e-mail, an empty e-mail: warnings',
      [f('inert.json')],
      '',
      0,
      [
        `warning: ${f('inert.json')}: ServiceAccount team-a/a: audience has no effect without service-account-email`,
        `warning: ${f('inert.json')}: ServiceAccount team-a/b annotation service-account-email is empty: treated as` +
          ' absent',
      ],
      summary(2, 0, 2),
    ],
    [
      'two files, in order, each line after its file',
      [f('typo.json'), f('broken.json')],
      '',
      1,
      [
        `warning: ${f('typo.json')}: ServiceAccount team-a/app annotation "service-acount-email" is an unknown key;` +
          ' did you mean service-account-email?',
        brokenLine(`${f('broken.json')}: `, 'team-a/app'),
      ],
      summary(2, 1, 1),
    ],
    [
      'stdin when no file: lines without a file name',
      [],
      list(sa('x', { [email]: 'a@b.cd', [expiration]: 'soon' }), sa('y', { [email]: 'a@b.cd' })),
      1,
      [brokenLine('', 'team-a/x')],
      summary(2, 1, 0),
    ],
    [
      'stdin with documents one after another (kubectl create -o json): each read, other kinds skipped first',
      [],
      [json(sa('x', { [email]: 'a@b.cd', [expiration]: 'soon' })), json({ kind: 'Secret' }), list(sa('y', {}))].join(
        '\n',
      ),
      1,
      [
        'warning: standard input: document 2 (kind "Secret") is not a ServiceAccount: skipped',
        brokenLine('', 'team-a/x'),
      ],
      summary(2, 1, 1),
    ],
    ['an empty List', [], list(), 0, [], summary(0, 0, 0)],
  ]
  for (const [name, files, stdin, code, stdout, stderr] of rows) {
    const r = await runMain(['validate', ...files], stdin)
    t.equal(r.code, code, `${name}: exit code`)
    t.same(r.stdout.split('\n').slice(0, -1), stdout, `${name}: stdout`)
    t.equal(r.stderr, stderr, `${name}: stderr`)
    t.notMatch(r.stdout, /s3cr3t/, `${name}: no document echoed`)
  }
})

t.test("admission's table of broken annotations: each case an error line with the value and the rule", async t => {
  const cases = invalidAnnotationCases.filter(
    ([, , pod, , labels]) => Object.keys(pod).length === 0 && Object.keys(labels ?? {}).length === 0,
  )
  t.ok(cases.length >= 15, `${cases.length} ServiceAccount-only cases of the shared table`)
  const withPrefix = (a: Record<string, string>) =>
    Object.fromEntries(Object.entries(a).map(([k, v]) => [prefix + k, v]))
  const r = await runMain(
    ['validate'],
    list(...cases.map(([, annotations], i) => sa(`case-${i}`, withPrefix(annotations)))),
  )
  t.equal(r.code, 1)
  const errors = r.stdout
    .split('\n')
    .filter(line => line.startsWith('error: '))
    .map(line => line.slice('error: '.length))
  for (const [i, [name, , , messages]] of cases.entries()) {
    // One line per broken annotation; the table's patterns are written for the denial, which joins them with "; "
    // and ends in its advice ("Fix the annotation…"), which a validate line leaves out.
    const text = errors.filter(e => e.startsWith(`ServiceAccount team-a/case-${i} annotation `)).join('; ')
    t.not(text, '', `${name}: an error line`)
    for (const m of messages.filter(m => !m.source.startsWith('Fix the'))) t.match(text, m, name)
  }
  t.match(r.stderr, `${cases.length} ServiceAccounts checked: ${cases.length} with broken annotations`)
})

t.test('a broken value is shown quoted and cut, as admission shows it', async t => {
  const value = `${'9'.repeat(100)}\ns3cr3t`
  const r = await runMain(['validate'], json(sa('app', { [email]: 'a@b.cd', [expiration]: value })))
  t.equal(r.code, 1)
  t.match(r.stdout, `annotation ${expiration}="${'9'.repeat(80)}…" must not contain control characters`)
  t.notMatch(r.stdout, /s3cr3t/)
})

t.test('unusable input or usage → exit 2, the reason on stderr, nothing on stdout', async t => {
  const dir = t.testdir({
    'broken.json': json(sa('app', { [email]: 'a@b.cd', [expiration]: 'soon' })),
    'not-json.json': '{"kind": "ServiceAccount", "token": "s3cr3t"',
    'pod.json': json({ kind: 'Pod', metadata: { name: 'p' } }),
    'nameless.json': list({ kind: 'ServiceAccount', metadata: { namespace: 'team-a' } }),
    'a-directory': {},
  })
  const f = (name: string): string => `${dir}/${name}`
  type Row = [name: string, args: string[], stdin: string, message: string | RegExp]
  const rows: Row[] = [
    ['unreadable file', [f('nope.json')], '', `error: cannot read ${f('nope.json')} (ENOENT)\n`],
    ['a directory', [f('a-directory')], '', `error: cannot read ${f('a-directory')} (EISDIR)\n`],
    [
      'an unreadable file after a broken one: nothing of the first printed',
      [f('broken.json'), f('nope.json')],
      '',
      `error: cannot read ${f('nope.json')} (ENOENT)\n`,
    ],
    ['file not JSON', [f('not-json.json')], '', `error: ${f('not-json.json')} is not valid JSON\n`],
    ['stdin not JSON', [], '{"token": "s3cr3t"', 'error: standard input is not valid JSON\n'],
    ['empty stdin', [], '', 'error: standard input is not valid JSON\n'],
    [
      'neither a ServiceAccount nor a List',
      [f('pod.json')],
      '',
      `error: ${f('pod.json')}: kind is "Pod"; expected a ServiceAccount or a List of them (kubectl get sa -o json)\n`,
    ],
    ['a ServiceAccount without a name', [f('nameless.json')], '', /: item 0 has no metadata\.name;/],
    ['unknown flag', ['--frobnicate'], '', 'error: validate: unknown flag "--frobnicate" (see validate --help)\n'],
  ]
  for (const [name, args, stdin, message] of rows) {
    const r = await runMain(['validate', ...args], stdin)
    t.equal(r.code, 2, `${name}: exit code`)
    t.equal(r.stdout, '', `${name}: nothing on stdout`)
    if (typeof message === 'string') t.equal(r.stderr, message, name)
    else t.match(r.stderr, message, name)
    t.notMatch(r.stderr, /s3cr3t/, `${name}: input never echoed`)
  }
})

t.test('--help, and validate in the main help', async t => {
  const help = await runMain(['validate', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: stackit-pod-identity-webhook validate \[FILE\]\.\.\./)
  t.match(help.stdout, /Exit codes:\n {2}0 .*\n {2}1 {2}an annotation is broken\n {2}2 /)
  t.equal(help.stderr, '')
  const main = await runMain(['--help'])
  t.match(main.stdout, /\n {2}validate +check the annotations of ServiceAccount JSON files/)
})

t.test('the built binary: the exit code the shell sees, stdin from a pipe', async t => {
  const broken = json(sa('app', { [email]: 'a@b.cd', [expiration]: 'soon' }))
  type Row = [name: string, args: string[], stdin: string, code: number, stdout: RegExp, stderr: RegExp]
  const rows: Row[] = [
    ['clean', [fixturePath('serviceaccounts.json')], '', 0, /^$/, /^2 ServiceAccounts checked: 0 with broken/],
    ['broken', [], broken, 1, /^error: ServiceAccount team-a\/app annotation /, /^1 ServiceAccount checked: 1 /],
    ['unusable', [], '{', 2, /^$/, /^error: standard input is not valid JSON\n$/],
  ]
  for (const [name, args, stdin, code, stdout, stderr] of rows) {
    const r = await runCli(['validate', ...args], stdin)
    t.equal(r.code, code, `${name}: exit code`)
    t.match(r.stdout, stdout, `${name}: stdout`)
    t.match(r.stderr, stderr, `${name}: stderr`)
  }
})
