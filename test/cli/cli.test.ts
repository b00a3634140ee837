// The CLI through main() in this process, stdin to stdout, with its exit codes; the last test spawns the built
// binary for what only a process shows: stdin read from a pipe, the output drained, the exit code the shell sees.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { version } from '../../lib/version.js'
import { runCli, runMain } from '../helpers/webhook-client.js'
import { fixturePath } from '../helpers/paths.js'

const fixture = (name: string): string => fixturePath(name)

const run = runMain

const read = (name: string): Promise<string> => readFile(fixture(name), 'utf8')

t.test('AdmissionReview in → review with response out', async t => {
  const review = await read('admission-review-deployment-pod.json')
  const r = await run(['mutate', '--service-account', fixture('serviceaccounts.json')], review)
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  const out = JSON.parse(r.stdout)
  t.equal(out.kind, 'AdmissionReview')
  t.equal(out.response.uid, '705ab4f5-6393-11e8-b7cc-42010a800002')
  t.equal(out.response.allowed, true)
  t.equal(out.response.patchType, 'JSONPatch')
  const ops = JSON.parse(Buffer.from(out.response.patch, 'base64').toString())
  t.ok(
    ops.some((op: { path: string }) => op.path === '/spec/volumes/1'),
    'volume appended after the API server one',
  )
})

t.test('bare Pod in → mutated Pod out; namespace from the Pod, else --namespace, else default', async t => {
  const dir = t.testdir({
    'sa.json': JSON.stringify({
      kind: 'ServiceAccount',
      metadata: {
        name: 'app',
        namespace: 'ns1',
        annotations: { 'workload-identity.stackit.cloud/service-account-email': 'a@b.cd' },
      },
    }),
    'sa-default.json': JSON.stringify({
      kind: 'ServiceAccount',
      metadata: { name: 'app', annotations: { 'workload-identity.stackit.cloud/service-account-email': 'd@b.cd' } },
    }),
  })
  const pod = (ns?: string): string =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', ...(ns ? { namespace: ns } : {}) },
      spec: { serviceAccountName: 'app', containers: [{ name: 'c', image: 'x' }] },
    })
  type Row = [name: string, args: string[], input: string, email: string | undefined, code: number]
  const rows: Row[] = [
    ['namespace from metadata', ['--service-account', `${dir}/sa.json`], pod('ns1'), 'a@b.cd', 0],
    ['namespace from --namespace', ['--service-account', `${dir}/sa.json`, '--namespace', 'ns1'], pod(), 'a@b.cd', 0],
    ['namespace from --namespace=', [`--service-account=${dir}/sa.json`, '--namespace=ns1'], pod(), 'a@b.cd', 0],
    [
      'default namespace',
      ['--service-account', `${dir}/sa.json`, '--service-account', `${dir}/sa-default.json`],
      pod(),
      'd@b.cd',
      0,
    ],
    ['ServiceAccount missing → denied', ['--service-account', `${dir}/sa.json`], pod('other'), undefined, 1],
  ]
  for (const [name, args, input, email, code] of rows) {
    const r = await run(['mutate', ...args], input)
    t.equal(r.code, code, name)
    if (email) t.equal(JSON.parse(r.stdout).spec.containers[0].env[0].value, email, name)
    else {
      t.equal(r.stdout, '', `${name}: nothing on stdout`)
      t.match(r.stderr, /^denied: ServiceAccount other\/app not found/, name)
    }
  }
})

t.test('a skipped Pod comes back unchanged', async t => {
  const input = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', labels: { 'workload-identity.stackit.cloud/skip-pod-identity-webhook': 'true' } },
    spec: { containers: [{ name: 'c' }] },
  }
  const r = await run(['mutate'], JSON.stringify(input))
  t.equal(r.code, 0)
  t.same(JSON.parse(r.stdout), input)
})

t.test('denied review → exit 1, the review on stdout, the reason on stderr', async t => {
  const r = await run(
    ['mutate', '--service-account', fixture('reference/serviceaccounts.json')],
    await read('reference/invalid-expiration.json'),
  )
  t.equal(r.code, 1)
  t.equal(JSON.parse(r.stdout).response.allowed, false)
  // The file's broken ServiceAccount is a warning first (see the --service-account test), then the Pod's denial.
  t.match(r.stderr, /^warning: ServiceAccount default\/test-sa-invalid-expiration annotation .*"not-a-number"/)
  t.match(r.stderr, /\ndenied: ServiceAccount default\/test-sa-invalid-expiration annotation .*"not-a-number"/)
})

t.test('warnings go to stderr', async t => {
  const dir = t.testdir({
    'sa.json': JSON.stringify({
      kind: 'List',
      items: [
        {
          metadata: {
            name: 'default',
            namespace: 'default',
            annotations: { 'workload-identity.stackit.cloud/service-account-email': 'a@b.cd' },
          },
        },
      ],
    }),
  })
  const pod = {
    kind: 'Pod',
    metadata: { annotations: { 'workload-identity.stackit.cloud/skip-containers': 'ghost' } },
    spec: { containers: [{ name: 'c', env: [{ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: 'mine' }] }] },
  }
  const r = await run(['mutate', '--service-account', `${dir}/sa.json`], JSON.stringify(pod))
  t.equal(r.code, 0)
  t.match(r.stderr, /warning: container c: STACKIT_SERVICE_ACCOUNT_EMAIL already set/)
  t.match(r.stderr, /warning: skip-containers names "ghost"/)
  const review = JSON.parse(await read('admission-review-deployment-pod.json'))
  review.request.object.spec.containers[0].env.push({ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: 'mine' })
  const r2 = await run(['mutate', '--service-account', fixture('serviceaccounts.json')], JSON.stringify(review))
  t.equal(r2.code, 0)
  t.match(r2.stderr, /^warning: container web: STACKIT_SERVICE_ACCOUNT_EMAIL already set/)
})

t.test("mutate --service-account: each file's ServiceAccounts judged as validate judges them, as warnings", async t => {
  const prefix = 'workload-identity.stackit.cloud/'
  const expiration = `${prefix}service-account-token-expiration-seconds`
  const sa = (name: string, annotations: Record<string, string>) => ({
    kind: 'ServiceAccount',
    metadata: {
      name,
      namespace: 'team-a',
      annotations: { [`${prefix}service-account-email`]: 'a@b.cd', ...annotations },
    },
  })
  const dir = t.testdir({
    'sa.json': JSON.stringify({
      kind: 'List',
      items: [sa('typo', { [`${prefix}audiense`]: 'x' }), sa('broken', { [expiration]: 'soon' })],
    }),
  })
  const rule = "must be a whole number of seconds from 600 to 4294967296 (Kubernetes' limits for a projected token)"
  const broken = `warning: ServiceAccount team-a/broken annotation ${expiration}="soon" ${rule}\n`
  const typo = 'warning: ServiceAccount team-a/typo annotation "audiense" is an unknown key; did you mean audience?\n'
  const pod = (serviceAccountName: string): string =>
    JSON.stringify({
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'team-a' },
      spec: { serviceAccountName, containers: [{ name: 'c' }] },
    })
  type Row = [name: string, pod: string, code: number, stderr: string]
  const rows: Row[] = [
    // Broken ServiceAccounts in the file do not change the exit code; the Pod's own review repeats the warning about
    // its ServiceAccount's unknown key, which is printed once.
    ['a Pod of the ServiceAccount with the unknown key: mutated, each warning once', pod('typo'), 0, typo + broken],
    [
      'a Pod of the broken ServiceAccount: denied as before',
      pod('broken'),
      1,
      `${typo}${broken}denied: ServiceAccount team-a/broken annotation ${expiration}="soon" ${rule}. Fix the ` +
        'annotation and create the Pod again.\n',
    ],
  ]
  for (const [name, input, code, stderr] of rows) {
    const r = await run(['mutate', '--service-account', `${dir}/sa.json`], input)
    t.equal(r.code, code, `${name}: exit code`)
    t.equal(r.stderr, stderr, `${name}: stderr`)
    if (code === 0) t.equal(JSON.parse(r.stdout).spec.containers[0].env[0].value, 'a@b.cd', `${name}: mutated`)
  }
})

t.test('unusable input or usage → exit 2, message on stderr, nothing on stdout', async t => {
  const dir = t.testdir({
    'bad.json': '{nope',
    'pod.json': '{"kind":"Pod"}',
    'list.json': '{"kind":"List","items":{}}',
  })
  writeFileSync(`${dir}/secret.json`, '{"kind":"ServiceAccount","metadata":{"name":"x"}, "token": "s3cr3t"')
  type Row = [name: string, args: string[], input: string, message: RegExp]
  const rows: Row[] = [
    ['stdin not JSON', ['mutate'], '{"password": "hunter2"', /^error: standard input is not valid JSON\n$/],
    ['empty stdin', ['mutate'], '', /standard input is not valid JSON/],
    [
      'neither review nor Pod',
      ['mutate'],
      '{"kind":"Deployment"}',
      /must hold an AdmissionReview or a Pod, found kind "Deployment"/,
    ],
    ['no kind', ['mutate'], '[]', /found kind null/],
    [
      'review without uid',
      ['mutate'],
      '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}',
      /not an AdmissionReview: request.uid/,
    ],
    [
      'Pod without spec',
      ['mutate'],
      '{"kind":"Pod","metadata":{"namespace":"default"}}',
      /^error: Pod spec must be an object\n$/,
    ],
    [
      'missing ServiceAccount file',
      ['mutate', '--service-account', `${dir}/nope.json`],
      '{}',
      /cannot read --service-account file .*nope.json \(ENOENT\)/,
    ],
    [
      'ServiceAccount file not JSON',
      ['mutate', '--service-account', `${dir}/secret.json`],
      '{}',
      /--service-account file .*secret.json is not valid JSON/,
    ],
    [
      'ServiceAccount file of the wrong kind',
      ['mutate', '--service-account', `${dir}/pod.json`],
      '{}',
      /kind is "Pod"; expected a ServiceAccount or a List/,
    ],
    ['List without items array', ['mutate', '--service-account', `${dir}/list.json`], '{}', /items is not an array/],
    ['unknown flag', ['mutate', '--frobnicate'], '{}', /unknown flag "--frobnicate" \(see mutate --help\)/],
    ['flag without value', ['mutate', '--namespace'], '{}', /--namespace needs a value/],
    [
      'positional argument',
      ['mutate', 'pod.json'],
      '{}',
      /unexpected argument "pod.json"; the input is read from stdin/,
    ],
    ['unknown command', ['frobnicate'], '', /unknown command "frobnicate"/],
    ['no command', [], '', /Usage: stackit-pod-identity-webhook <command>/],
  ]
  for (const [name, args, input, message] of rows) {
    const r = await run(args, input)
    t.equal(r.code, 2, name)
    t.equal(r.stdout, '', `${name}: stdout empty`)
    t.match(r.stderr, message, name)
    t.notMatch(r.stderr, /hunter2|s3cr3t/, `${name}: input never echoed`)
  }
})

t.test('--help and --version', async t => {
  const rows: [args: string[], out: RegExp][] = [
    [['--help'], /Commands:\n {2}serve .*\n {2}mutate /],
    [['help'], /Usage: stackit-pod-identity-webhook <command>/],
    [['mutate', '--help'], /Exit codes:\n {2}0 {2}allowed/],
    [['--version'], new RegExp(`^${version.replace(/\./g, '\\.')}\\n$`)],
  ]
  for (const [args, out] of rows) {
    const r = await run(args)
    t.equal(r.code, 0, args.join(' '))
    t.match(r.stdout, out, args.join(' '))
  }
})

t.test('the built binary: stdin from a pipe, the answer on stdout, the exit code the shell sees', async t => {
  const review = await read('admission-review-deployment-pod.json')
  const denied = await read('reference/invalid-expiration.json')
  type Row = [name: string, args: string[], stdin: string, code: number, stdout: RegExp, stderr: RegExp]
  const rows: Row[] = [
    [
      'allowed',
      ['mutate', '--service-account', fixture('serviceaccounts.json')],
      review,
      0,
      /"patchType": "JSONPatch"/,
      /^$/,
    ],
    [
      'denied',
      ['mutate', '--service-account', fixture('reference/serviceaccounts.json')],
      denied,
      1,
      /"allowed": false/,
      /^warning: ServiceAccount default\/test-sa-invalid-expiration .*\ndenied: ServiceAccount default\//,
    ],
    ['unusable input', ['mutate'], '{"password": "hunter2"', 2, /^$/, /^error: standard input is not valid JSON\n$/],
    [
      'unknown flag',
      ['mutate', '--frobnicate'],
      '{}',
      2,
      /^$/,
      /^error: mutate: unknown flag "--frobnicate" \(see mutate --help\)\n$/,
    ],
    ['--version', ['--version'], '', 0, new RegExp(`^${version.replace(/\./g, '\\.')}\\n$`), /^$/],
  ]
  for (const [name, args, stdin, code, stdout, stderr] of rows) {
    const r = await runCli(args, stdin)
    t.equal(r.code, code, `${name}: exit code`)
    t.match(r.stdout, stdout, `${name}: stdout`)
    t.match(r.stderr, stderr, `${name}: stderr`)
  }
})
