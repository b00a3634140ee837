import t, { type Test } from 'tap'
import https from 'node:https'
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import {
  exampleDefaults,
  kubernetesVersions,
  providerOptionsUrl,
  runExampleApp,
  type ExampleAppOptions,
} from '../../lib/workload-identity/example-app.js'
import { defaultVersions, fakeJwt, startFakeStackit, type FakeStackit } from '../helpers/fake-stackit.js'
import { makeCa, makeServerCert } from '../helpers/certs.js'
import { distBin, repoPath } from '../helpers/paths.js'

const run = promisify(execFile)
const bin = distBin('stackit-workload-identity-example-app')
const email = 'app-1a2b@sa.stackit.cloud'
const assertion = fakeJwt({
  sub: 'system:serviceaccount:default:stackit-workload-identity-example-app',
  aud: 'sts.accounts.stackit.cloud',
})

type Line = Record<string, unknown>

/** Runs the app in-process against a loopback fake; returns exit code, parsed log lines and the raw output. */
const runApp = async (
  t: Test,
  tweak: (fake: FakeStackit) => void = () => {},
  options: Partial<ExampleAppOptions> = {},
  env: Record<string, string> = {},
): Promise<{ code: number; lines: Line[]; raw: string; fake: FakeStackit }> => {
  const dir = t.testdir({ token: assertion })
  const fake = await startFakeStackit()
  t.teardown(() => fake.close())
  tweak(fake)
  let raw = ''
  const code = await runExampleApp({
    env: { STACKIT_SERVICE_ACCOUNT_EMAIL: email, STACKIT_FEDERATED_TOKEN_FILE: join(dir, 'token'), ...env },
    write: l => void (raw += l),
    currentDate: () => new Date(0),
    skeEndpoint: fake.base,
    client: { tokenEndpoint: fake.tokenUrl },
    ...options,
  })
  const lines = raw
    .trim()
    .split('\n')
    .map(l => JSON.parse(l) as Line)
  return { code, lines, raw, fake }
}

/** Output must never carry the assertion or an issued access token. */
const noCredentials = (t: Test, raw: string, fake: FakeStackit): void => {
  t.notOk(raw.includes(assertion), 'no assertion in the output')
  for (const token of fake.issued) t.notOk(raw.includes(token), 'no access token in the output')
}

t.test('happy path: authenticates, calls SKE, logs the versions', async t => {
  const { code, lines, raw, fake } = await runApp(t)
  t.equal(code, 0)
  t.same(lines, [
    {
      time: '1970-01-01T00:00:00.000Z',
      level: 'info',
      msg: 'fetching SKE provider options',
      region: 'eu01',
      endpoint: fake.base,
    },
    {
      time: '1970-01-01T00:00:00.000Z',
      level: 'info',
      msg: 'authenticated; SKE provider options received',
      region: 'eu01',
      kubernetesVersionCount: 2,
      kubernetesVersions: defaultVersions.join(','),
    },
  ])
  t.same(fake.skeRequests, [
    {
      path: '/v2/regions/eu01/provider-options',
      authorization: `Bearer ${fake.issued[0] ?? ''}`,
      accept: 'application/json',
    },
  ])
  t.equal(fake.tokenRequests[0]?.form.get('client_assertion'), assertion, 'the token file was the assertion')
  noCredentials(t, raw, fake)
})

t.test('STACKIT_REGION picks the region; an endpoint base path is kept', async t => {
  const { code, fake } = await runApp(t, () => {}, {}, { STACKIT_REGION: 'eu02' })
  t.equal(code, 0)
  t.equal(fake.skeRequests[0]?.path, '/v2/regions/eu02/provider-options')
  t.equal(
    providerOptionsUrl({ value: 'https://ske.example/base/', fromOption: false }, 'eu01').toString(),
    'https://ske.example/base/v2/regions/eu01/provider-options',
  )
  t.equal(
    providerOptionsUrl({ value: exampleDefaults.skeEndpoint, fromOption: false }, exampleDefaults.region).toString(),
    'https://ske.api.stackit.cloud/v2/regions/eu01/provider-options',
    'the default endpoint',
  )
})

t.test('no Kubernetes versions → success line with 0 and a warning', async t => {
  const { code, lines } = await runApp(t, fake => {
    fake.skeReply = () => ({ body: '{"machineTypes":[]}' })
  })
  t.equal(code, 0)
  t.match(lines[1], { level: 'info', kubernetesVersionCount: 0, kubernetesVersions: '' })
  t.match(lines[2], { level: 'warn', msg: 'SKE offers no Kubernetes versions in this region', region: 'eu01' })
  t.equal(lines.length, 3)
})

t.test('failures → exit 1 with one clear error line', async t => {
  type Row = [
    name: string,
    tweak: (fake: FakeStackit) => void,
    options: Partial<ExampleAppOptions>,
    env: Record<string, string>,
    expect: Line,
  ]
  const rows: Row[] = [
    [
      'SKE answers 500',
      fake => {
        fake.skeReply = () => ({ status: 500, body: '{"message":"internal error"}' })
      },
      {},
      {},
      {
        msg: 'SKE request failed',
        status: 500,
        error: '{"message":"internal error"}',
        url: /\/v2\/regions\/eu01\/provider-options$/,
      },
    ],
    [
      'SKE answers 500 with no body',
      fake => {
        fake.skeReply = () => ({ status: 500 })
      },
      {},
      {},
      { msg: 'SKE request failed', status: 500, error: '(empty body)' },
    ],
    [
      'SKE answers 204 (no body at all)',
      fake => {
        fake.skeReply = () => ({ status: 204 })
      },
      {},
      {},
      { msg: 'SKE request failed', status: 204, error: '(empty body)' },
    ],
    [
      'SKE answers 200 without JSON',
      fake => {
        fake.skeReply = () => ({ body: '<html>' })
      },
      {},
      {},
      { msg: 'SKE answered HTTP 200 without a JSON object' },
    ],
    [
      'SKE answers 200 with a JSON array',
      fake => {
        fake.skeReply = () => ({ body: '[{"version":"1.33.2"}]' })
      },
      {},
      {},
      { msg: 'SKE answered HTTP 200 without a JSON object' },
    ],
    [
      'SKE answers 200 with a body over the limit',
      fake => {
        fake.skeReply = () => ({ body: `{"kubernetesVersions":[${'{},'.repeat(2_000_000)}{}]}` })
      },
      {},
      {},
      { msg: 'SKE answered HTTP 200 without a JSON object' },
    ],
    [
      'SKE times out',
      fake => {
        fake.skeReply = () => ({ hang: true })
      },
      { timeoutMs: 100 },
      {},
      { msg: 'SKE request failed', error: 'TimeoutError: The operation was aborted due to timeout' },
    ],
    [
      'SKE hangs up mid-body',
      fake => {
        fake.skeReply = () => ({ hangUpAfterHeaders: true })
      },
      {},
      {},
      { msg: 'SKE request failed', error: 'terminated: other side closed' },
    ],
    [
      'token endpoint answers 401',
      fake => {
        fake.tokenReply = () => ({ status: 401, body: '{"error":"invalid_client"}' })
      },
      {},
      {},
      {
        msg: 'authentication failed',
        code: 'TOKEN_EXCHANGE',
        error: /answered HTTP 401: \{"error":"invalid_client"\}$/,
      },
    ],
    [
      'token file missing',
      () => {},
      {},
      { STACKIT_FEDERATED_TOKEN_FILE: '/nonexistent/token' },
      {
        msg: 'authentication failed',
        code: 'TOKEN_EXCHANGE',
        error:
          /^cannot read the federated token file \/nonexistent\/token from STACKIT_FEDERATED_TOKEN_FILE \(ENOENT\)/,
      },
    ],
    [
      'e-mail missing',
      () => {},
      {},
      { STACKIT_SERVICE_ACCOUNT_EMAIL: '' },
      { msg: 'configuration error', code: 'CONFIG', error: /^STACKIT_SERVICE_ACCOUNT_EMAIL is not set/ },
    ],
    [
      'bad region',
      () => {},
      {},
      { STACKIT_REGION: '../eu01' },
      { msg: 'configuration error', code: 'CONFIG', error: 'STACKIT_REGION must be a region name such as "eu01"' },
    ],
    [
      'empty STACKIT_REGION counts as unset',
      fake => {
        fake.skeReply = () => ({ status: 500 })
      },
      {},
      { STACKIT_REGION: '' },
      { msg: 'SKE request failed', url: /\/v2\/regions\/eu01\/provider-options$/ },
    ],
    [
      'http: SKE endpoint by option is allowed, other schemes are not',
      () => {},
      { skeEndpoint: 'file:///etc/passwd' },
      {},
      { msg: 'configuration error', error: 'option skeEndpoint must be an https: URL' },
    ],
    [
      'SKE endpoint not a URL',
      () => {},
      { skeEndpoint: 'ske.example' },
      {},
      { msg: 'configuration error', error: 'option skeEndpoint is not a URL' },
    ],
  ]
  for (const [name, tweak, options, env, expect] of rows) {
    const { code, lines, raw, fake } = await runApp(t, tweak, options, env)
    t.equal(code, 1, `${name}: exit 1`)
    const last = lines.at(-1)
    t.match(last, { level: 'error', ...expect }, `${name}: error line`)
    t.equal(lines.filter(l => l['level'] === 'error').length, 1, `${name}: exactly one error line`)
    noCredentials(t, raw, fake)
  }
})

t.test('environment only: defaults, and an http: SKE endpoint from the environment is refused', async t => {
  let raw = ''
  t.equal(
    await runExampleApp({ env: {}, write: l => void (raw += l) }),
    1,
    'default endpoint, no e-mail → exit 1 before any request',
  )
  t.match(JSON.parse(raw), {
    level: 'error',
    msg: 'configuration error',
    code: 'CONFIG',
    error: /^STACKIT_SERVICE_ACCOUNT_EMAIL is not set/,
  })
  t.equal(
    providerOptionsUrl({ value: 'http://ske.example', fromOption: false }, 'eu01'),
    'STACKIT_SKE_ENDPOINT must be an https: URL',
  )
  t.equal(
    providerOptionsUrl({ value: 'https://user:secret@ske.example', fromOption: true }, 'eu01'),
    'option skeEndpoint must not contain user name or password',
    'credentials in the URL are refused, unquoted',
  )
})

t.test('SKE unreachable (default agent, closed port)', async t => {
  const probe = await startFakeStackit()
  const base = probe.base
  await probe.close()
  const { code, lines } = await runApp(t, () => {}, { skeEndpoint: base })
  t.equal(code, 1)
  t.match(lines.at(-1), { level: 'error', msg: 'SKE request failed', error: /ECONNREFUSED/ })
})

t.test('kubernetesVersions keeps well-formed entries in order', async t => {
  type Row = [name: string, body: unknown, expect: string[]]
  const rows: Row[] = [
    [
      'mixed entries',
      {
        kubernetesVersions: [{ version: '1.33.1' }, 'x', { state: 'supported' }, { version: 7 }, { version: '1.32.0' }],
      },
      ['1.33.1', '1.32.0'],
    ],
    ['not an array', { kubernetesVersions: {} }, []],
    ['not an object', [], []],
  ]
  for (const [name, body, expect] of rows) t.same(kubernetesVersions(body), expect, name)
})

t.test('an https token endpoint trusted through the client agent', async t => {
  const dir = t.testdir({ token: assertion })
  const ca = await makeCa(dir)
  const idp = await startFakeStackit(await makeServerCert(dir, ca))
  t.teardown(() => idp.close())
  const ske = await startFakeStackit()
  t.teardown(() => ske.close())
  // This fake did not issue the token; the check below compares it with the one the https endpoint issued.
  ske.skeReply = () => ({ body: '{"kubernetesVersions":[{"version":"1.33.2"}]}' })
  const agent = new https.Agent({ ca: await readFile(ca.certFile) })
  t.teardown(() => agent.destroy())
  let raw = ''
  const code = await runExampleApp({
    env: {
      STACKIT_SERVICE_ACCOUNT_EMAIL: email,
      STACKIT_FEDERATED_TOKEN_FILE: join(dir, 'token'),
      STACKIT_IDP_TOKEN_ENDPOINT: idp.tokenUrl,
    },
    write: l => void (raw += l),
    skeEndpoint: ske.base,
    client: { agent },
  })
  t.equal(code, 0, raw)
  t.equal(idp.tokenRequests.length, 1, 'the token came from the https endpoint')
  t.equal(ske.skeRequests[0]?.authorization, `Bearer ${idp.issued[0] ?? ''}`)
})

t.test('the example uses only what an app can: the package entry and Node', async t => {
  for (const file of ['lib/workload-identity/example-app.ts', 'bin/stackit-workload-identity-example-app.ts']) {
    const text = await readFile(repoPath(file), 'utf8')
    const specifiers = [...text.matchAll(/\bfrom\s+'([^']+)'/g)].map(([, s]) => s)
    t.ok(specifiers.length > 0, `${file}: imports found`)
    const allowed = file.startsWith('bin/') ? ['../lib/workload-identity/example-app.js'] : ['../index.js']
    t.same(
      specifiers.filter(s => !s?.startsWith('node:') && !allowed.includes(s ?? '')),
      [],
      file,
    )
  }
})

t.test('the built binary: environment in, JSON lines on stdout, exit code out', async t => {
  const dir = t.testdir({ token: assertion })
  const ca = await makeCa(dir)
  const fake = await startFakeStackit(await makeServerCert(dir, ca))
  t.teardown(() => fake.close())
  const env = {
    // Inherited so that tap's coverage (NODE_V8_COVERAGE, NODE_OPTIONS) measures the binary too.
    ...process.env,
    STACKIT_REGION: 'eu01',
    // The spawned app trusts the test CA the way a Pod would trust a private CA.
    NODE_EXTRA_CA_CERTS: ca.certFile,
    STACKIT_SERVICE_ACCOUNT_EMAIL: email,
    STACKIT_FEDERATED_TOKEN_FILE: join(dir, 'token'),
    STACKIT_IDP_TOKEN_ENDPOINT: fake.tokenUrl,
    STACKIT_SKE_ENDPOINT: fake.base,
  }
  const ok = await run(process.execPath, [bin], { env })
  const okLines = ok.stdout
    .trim()
    .split('\n')
    .map(l => JSON.parse(l) as Line)
  t.match(okLines, [
    { msg: 'fetching SKE provider options' },
    { msg: 'authenticated; SKE provider options received', kubernetesVersionCount: 2 },
  ])
  t.equal(ok.stderr, '', 'nothing on stderr')

  fake.skeReply = () => ({ status: 500, body: 'upstream broke' })
  const failed = await run(process.execPath, [bin], { env }).then(
    () => undefined,
    (e: { code: number; stdout: string }) => e,
  )
  t.equal(failed?.code, 1, 'exit code 1')
  t.match(JSON.parse(failed?.stdout.trim().split('\n').at(-1) ?? '{}'), {
    level: 'error',
    msg: 'SKE request failed',
    status: 500,
    error: 'upstream broke',
  })
})
