import t, { type Test } from 'tap'
import https from 'node:https'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { WorkloadIdentityClient, resolveWorkloadIdentityConfig } from '../../lib/index.js'
import type { Env, WorkloadIdentityClientOptions, WorkloadIdentityOptions } from '../../lib/index.js'
import { refreshMarginMs, workloadJwtAssertionType } from '../../lib/workload-identity/workload-identity-client.js'
import { defaultFederatedTokenFile } from '../../lib/workload-identity/workload-identity-config.js'
import {
  isWorkloadIdentityError,
  type WorkloadIdentityErrorCode,
} from '../../lib/workload-identity/workload-identity-error.js'
import { jwtExpiry, unverifiedClaims } from '../../lib/workload-identity/jwt-claims.js'
import { maxExcerptLength } from '../../lib/http-excerpt.js'
import { fakeJwt, startFakeStackit, type FakeStackit } from '../helpers/fake-stackit.js'
import { makeCa, makeServerCert } from '../helpers/certs.js'
import { makeSigningKey, signJwt, startFakeIssuer, type FederationOptions } from '../helpers/federation.js'

const email = 'app-1a2b@sa.stackit.cloud'
// The Kubernetes tokens are real: signed by a key of a loopback issuer, and the fake token endpoint verifies them
// as a STACKIT federation for this e-mail, audience and ServiceAccount does.
const signingKey = makeSigningKey('RS256')
const issuer = await startFakeIssuer({ keys: [signingKey.jwk] })
t.teardown(() => issuer.close())
const subject = 'system:serviceaccount:team-a:app'
const federation: FederationOptions = {
  federation: { issuer: issuer.issuer, email, audience: 'sts.accounts.stackit.cloud', subject },
}
/** A projected ServiceAccount token as the kubelet mounts it; `v` tells two rotations apart. */
const kubernetesToken = (v: string): string => {
  const now = Math.floor(Date.now() / 1000)
  const claims = { iss: issuer.issuer, sub: subject, aud: ['sts.accounts.stackit.cloud'], iat: now, nbf: now, v }
  return signJwt({ ...claims, exp: now + 3600 }, signingKey)
}
const assertionA = kubernetesToken('A')
const assertionB = kubernetesToken('B')

/** A clock the test moves by hand. */
const manualClock = (start = Date.now()): { epochMs: () => number; advance: (ms: number) => void } => {
  let at = start
  return { epochMs: () => at, advance: ms => void (at += ms) }
}

/** A fake endpoint, a token file holding assertion A, and a client factory wired to both. */
const setup = async (
  t: Test,
): Promise<{
  fake: FakeStackit
  tokenFile: string
  client: (o?: Partial<WorkloadIdentityClientOptions>) => WorkloadIdentityClient
}> => {
  const dir = t.testdir({ token: assertionA })
  const tokenFile = join(dir, 'token')
  const fake = await startFakeStackit(undefined, { federation })
  t.teardown(() => fake.close())
  const client = (o: Partial<WorkloadIdentityClientOptions> = {}): WorkloadIdentityClient =>
    new WorkloadIdentityClient({
      env: { STACKIT_SERVICE_ACCOUNT_EMAIL: email, STACKIT_FEDERATED_TOKEN_FILE: tokenFile },
      tokenEndpoint: fake.tokenUrl,
      ...o,
    })
  return { fake, tokenFile, client }
}

const rejectsWith = async (
  t: Test,
  p: Promise<unknown>,
  code: WorkloadIdentityErrorCode,
  message: RegExp,
  forbidden: readonly string[] = [],
): Promise<void> => {
  try {
    await p
    t.fail('expected a rejection')
  } catch (e) {
    t.ok(isWorkloadIdentityError(e, code), `a WorkloadIdentityError with code ${code}`)
    t.match(e, { message })
    for (const f of forbidden) t.notOk(String(e).includes(f), 'message holds no credential')
  }
}

t.test('configuration: option, else environment, else default', async t => {
  type Row = [
    name: string,
    options: WorkloadIdentityOptions,
    env: Env,
    expect: { email: string; file: string; fileSource: string; endpoint: string },
  ]
  const envAll: Env = {
    STACKIT_SERVICE_ACCOUNT_EMAIL: 'env@sa.stackit.cloud',
    STACKIT_FEDERATED_TOKEN_FILE: '/env/token',
    STACKIT_IDP_TOKEN_ENDPOINT: 'https://idp.env.example/token',
  }
  const rows: Row[] = [
    [
      'environment only',
      {},
      envAll,
      {
        email: 'env@sa.stackit.cloud',
        file: '/env/token',
        fileSource: 'STACKIT_FEDERATED_TOKEN_FILE',
        endpoint: 'https://idp.env.example/token',
      },
    ],
    [
      'options win over environment',
      { serviceAccountEmail: email, federatedTokenFile: '/opt/token', tokenEndpoint: 'https://idp.opt.example/t' },
      envAll,
      { email, file: '/opt/token', fileSource: 'option federatedTokenFile', endpoint: 'https://idp.opt.example/t' },
    ],
    [
      'defaults for file and endpoint',
      {},
      { STACKIT_SERVICE_ACCOUNT_EMAIL: email },
      {
        email,
        file: '/var/run/secrets/stackit.cloud/serviceaccount/token',
        fileSource: 'default',
        endpoint: 'https://accounts.stackit.cloud/oauth/v2/token',
      },
    ],
    [
      'empty values count as unset',
      { serviceAccountEmail: '', federatedTokenFile: '', tokenEndpoint: '' },
      { STACKIT_SERVICE_ACCOUNT_EMAIL: email, STACKIT_FEDERATED_TOKEN_FILE: '', STACKIT_IDP_TOKEN_ENDPOINT: '' },
      {
        email,
        file: defaultFederatedTokenFile,
        fileSource: 'default',
        endpoint: 'https://accounts.stackit.cloud/oauth/v2/token',
      },
    ],
    [
      'http: endpoint allowed from the option',
      { serviceAccountEmail: email, tokenEndpoint: 'http://127.0.0.1:1/token' },
      {},
      { email, file: defaultFederatedTokenFile, fileSource: 'default', endpoint: 'http://127.0.0.1:1/token' },
    ],
  ]
  for (const [name, options, env, expect] of rows) {
    const c = resolveWorkloadIdentityConfig(options, env)
    t.same(
      {
        email: c.serviceAccountEmail,
        file: c.federatedTokenFile,
        fileSource: c.federatedTokenFileSource,
        endpoint: c.tokenEndpoint.href,
      },
      expect,
      name,
    )
  }
})

t.test('configuration errors name the input', async t => {
  type Row = [name: string, options: WorkloadIdentityOptions, env: Env, message: RegExp, notInMessage?: string]
  const withEmail = { STACKIT_SERVICE_ACCOUNT_EMAIL: email }
  const rows: Row[] = [
    ['no e-mail anywhere', {}, {}, /^STACKIT_SERVICE_ACCOUNT_EMAIL is not set/],
    ['empty e-mail', {}, { STACKIT_SERVICE_ACCOUNT_EMAIL: '' }, /^STACKIT_SERVICE_ACCOUNT_EMAIL is not set/],
    [
      'http: endpoint from the environment',
      {},
      { ...withEmail, STACKIT_IDP_TOKEN_ENDPOINT: 'http://idp.example/token' },
      /^token endpoint from STACKIT_IDP_TOKEN_ENDPOINT must be an https: URL, got "http:"/,
    ],
    [
      'other scheme from the option',
      { tokenEndpoint: 'ftp://idp.example/token' },
      withEmail,
      /^token endpoint from option tokenEndpoint must be an https: URL/,
    ],
    [
      'not a URL',
      {},
      { ...withEmail, STACKIT_IDP_TOKEN_ENDPOINT: 'accounts.stackit.cloud' },
      /from STACKIT_IDP_TOKEN_ENDPOINT is not a URL: "accounts.stackit.cloud"/,
    ],
    [
      'credentials in the URL are refused, not echoed',
      {},
      { ...withEmail, STACKIT_IDP_TOKEN_ENDPOINT: 'https://user:s3cret@idp.example/token' },
      /must not contain user name or password/,
      's3cret',
    ],
  ]
  for (const [name, options, env, message, notInMessage] of rows) {
    t.throws(
      () => resolveWorkloadIdentityConfig(options, env),
      { name: 'WorkloadIdentityError', code: 'CONFIG', message },
      name,
    )
    if (notInMessage !== undefined) {
      try {
        resolveWorkloadIdentityConfig(options, env)
      } catch (e) {
        t.notOk(String(e).includes(notInMessage), `${name}: value not echoed`)
      }
    }
  }
  t.throws(() => new WorkloadIdentityClient({ env: {} }), { code: 'CONFIG' }, 'the constructor throws the same error')
})

t.test('the client reads process.env when no env is given', async t => {
  const saved = process.env['STACKIT_SERVICE_ACCOUNT_EMAIL']
  process.env['STACKIT_SERVICE_ACCOUNT_EMAIL'] = 'from-process@sa.stackit.cloud'
  t.teardown(() => {
    if (saved === undefined) delete process.env['STACKIT_SERVICE_ACCOUNT_EMAIL']
    else process.env['STACKIT_SERVICE_ACCOUNT_EMAIL'] = saved
  })
  t.equal(new WorkloadIdentityClient().config.serviceAccountEmail, 'from-process@sa.stackit.cloud')
})

t.test('happy path: the exchange the STACKIT SDK makes', async t => {
  const { fake, client } = await setup(t)
  const token = await client().getAccessToken()
  t.equal(fake.tokenRequests.length, 1, 'one exchange')
  const req = fake.tokenRequests[0]!
  t.equal(req.method, 'POST')
  t.equal(req.contentType, 'application/x-www-form-urlencoded')
  t.same(
    [...req.form.keys()].sort(),
    ['client_assertion', 'client_assertion_type', 'client_id', 'grant_type'],
    'exactly the four fields',
  )
  t.equal(req.form.get('grant_type'), 'client_credentials')
  t.equal(req.form.get('client_assertion_type'), workloadJwtAssertionType)
  t.equal(workloadJwtAssertionType, 'urn:schwarz:params:oauth:client-assertion-type:workload-jwt')
  t.equal(req.form.get('client_assertion'), assertionA, 'the token file, verbatim')
  t.equal(req.form.get('client_id'), email)
  t.equal(token, fake.issued[0], 'the issued access token')
  t.same(
    fake.assertions.map(a => [a.accepted, a.alg, a.kid, a.claims?.sub]),
    [[true, 'RS256', signingKey.kid, subject]],
    'the endpoint verified the signed token and accepted it',
  )
})

t.test('a trailing newline in the token file is not sent', async t => {
  const { fake, tokenFile, client } = await setup(t)
  await writeFile(tokenFile, `${assertionA}\n`)
  await client().getAccessToken()
  t.equal(fake.tokenRequests[0]?.form.get('client_assertion'), assertionA)
  t.equal(fake.assertions[0]?.accepted, true, 'a verifying endpoint accepted it (with the newline it would not)')
})

t.test('token endpoint failures: endpoint, status and a bounded excerpt; never the assertion', async t => {
  type Row = [name: string, status: number, body: (form: URLSearchParams) => string, message: RegExp]
  const rows: Row[] = [
    [
      '401 with an OAuth error',
      401,
      () => '{"error":"invalid_client","error_description":"federation does not match"}',
      new RegExp(
        String.raw`^token endpoint http://127\.0\.0\.1:\d+/oauth/v2/token answered HTTP 401: ` +
          String.raw`\{"error":"invalid_client","error_description":"federation does not match"\}$`,
      ),
    ],
    [
      '400 echoing the assertion',
      400,
      form => `{"error":"invalid_grant","assertion":"${form.get('client_assertion') ?? ''}"}`,
      /answered HTTP 400: \{"error":"invalid_grant","assertion":"\[redacted\]"\}$/,
    ],
    ['500 with an empty body', 500, () => '', /answered HTTP 500: \(empty body\)$/],
    [
      '503 with a huge HTML page',
      503,
      () => `<html>\n<body>${'x'.repeat(100_000)}</body></html>`,
      new RegExp(`answered HTTP 503: <html> <body>x{${maxExcerptLength - 13}}…$`),
    ],
  ]
  for (const [name, status, body, message] of rows) {
    const { fake, client } = await setup(t)
    fake.tokenReply = (_n, req) => ({ status, body: body(req.form) })
    await rejectsWith(t, client().getAccessToken(), 'TOKEN_EXCHANGE', message, [assertionA])
    t.comment(name)
  }
})

t.test('unusable 200 answers', async t => {
  type Row = [name: string, body: string, message: RegExp]
  const rows: Row[] = [
    ['not JSON', 'access_token=abc', /answered HTTP 200 without a JSON access_token$/],
    ['JSON without access_token', '{"token_type":"Bearer"}', /without a JSON access_token$/],
    ['empty access_token', '{"access_token":""}', /without a JSON access_token$/],
    ['a JSON array', '[]', /without a JSON access_token$/],
    [
      'larger than the limit',
      JSON.stringify({ access_token: 'x'.repeat(70_000) }),
      /sent a response larger than 65536 bytes$/,
    ],
  ]
  for (const [name, body, message] of rows) {
    const { fake, client } = await setup(t)
    fake.tokenReply = () => ({ body })
    await rejectsWith(t, client().getAccessToken(), 'TOKEN_EXCHANGE', message)
    t.comment(name)
  }
})

t.test('token file problems name the file and where its path came from', async t => {
  const { fake, tokenFile, client } = await setup(t)
  await rm(tokenFile)
  await rejectsWith(
    t,
    client().getAccessToken(),
    'TOKEN_EXCHANGE',
    new RegExp(
      `^cannot read the federated token file ${tokenFile.replace(/[/\\.]/g, '\\$&')} from ` +
        `STACKIT_FEDERATED_TOKEN_FILE \\(ENOENT\\)`,
    ),
  )
  await rejectsWith(
    t,
    client({ federatedTokenFile: join(tokenFile, '..') }).getAccessToken(),
    'TOKEN_EXCHANGE',
    /from option federatedTokenFile \(EISDIR\)/,
  )
  for (const [name, content] of [
    ['empty', ''],
    ['not a JWT', 'hello'],
    ['JWT with a non-JSON payload', 'eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln'],
    ['too large', `${assertionA}${'A'.repeat(70_000)}`],
  ]) {
    await writeFile(tokenFile, content as string)
    await rejectsWith(t, client().getAccessToken(), 'TOKEN_EXCHANGE', /federated token file .* does not hold a JWT$/)
    t.comment(name as string)
  }
  t.equal(fake.tokenRequests.length, 0, 'nothing was sent')
})

t.test('rotated token file: the next exchange sends the new assertion', async t => {
  const { fake, tokenFile, client } = await setup(t)
  const clock = manualClock()
  const c = client({ epochMs: clock.epochMs })
  const first = await c.getAccessToken()
  await writeFile(tokenFile, assertionB)
  t.equal(await c.getAccessToken(), first, 'still cached: no re-read needed yet')
  clock.advance(3600_000)
  const second = await c.getAccessToken()
  t.not(second, first, 'a new access token')
  t.same(
    fake.tokenRequests.map(r => r.form.get('client_assertion')),
    [assertionA, assertionB],
    'second exchange used the rotated file',
  )
  t.same(
    fake.assertions.map(a => a.accepted),
    [true, true],
    'both rotations verified',
  )
})

t.test('ten concurrent callers share one exchange', async t => {
  const { fake, client } = await setup(t)
  const c = client()
  const tokens = await Promise.all(Array.from({ length: 10 }, () => c.getAccessToken()))
  t.equal(fake.tokenRequests.length, 1, 'one exchange')
  t.same(new Set(tokens), new Set([fake.issued[0]]), 'all got the same token')
})

t.test('caching follows the token expiry', async t => {
  type Row = [name: string, reply: (exp: number) => Record<string, unknown>, cachedFor: number | undefined]
  // exp is whole seconds; the clock starts on a whole second so the arithmetic is exact.
  const rows: Row[] = [
    ['JWT exp claim', exp => ({ access_token: fakeJwt({ exp }), expires_in: 99_999 }), 600_000],
    ['opaque token: expires_in', () => ({ access_token: 'opaque-token', expires_in: 900 }), 900_000],
    ['JWT without exp: expires_in', () => ({ access_token: fakeJwt({ sub: 'x' }), expires_in: 300 }), 300_000],
    ['no expiry at all: not cached', () => ({ access_token: 'opaque-token' }), undefined],
    [
      'expires_in not a positive number: not cached',
      () => ({ access_token: 'opaque-token', expires_in: '900' }),
      undefined,
    ],
  ]
  for (const [name, reply, cachedFor] of rows) {
    const { fake, client } = await setup(t)
    const start = Math.floor(Date.now() / 1000) * 1000
    const clock = manualClock(start)
    fake.tokenReply = () => ({ body: JSON.stringify(reply(start / 1000 + 600)) })
    const c = client({ epochMs: clock.epochMs })
    await c.getAccessToken()
    if (cachedFor === undefined) {
      await c.getAccessToken()
      t.equal(fake.tokenRequests.length, 2, `${name}: every call exchanges`)
      continue
    }
    clock.advance(cachedFor - refreshMarginMs - 1)
    await c.getAccessToken()
    t.equal(fake.tokenRequests.length, 1, `${name}: cached until a minute before expiry`)
    clock.advance(1)
    await c.getAccessToken()
    t.equal(fake.tokenRequests.length, 2, `${name}: renewed a minute before expiry`)
  }
})

t.test('a failed exchange is not cached, and all waiting callers see it', async t => {
  const { fake, client } = await setup(t)
  fake.tokenReply = n => (n === 0 ? { status: 503, body: 'busy' } : undefined)
  const c = client()
  const results = await Promise.allSettled([c.getAccessToken(), c.getAccessToken(), c.getAccessToken()])
  t.same(
    results.map(r => r.status),
    ['rejected', 'rejected', 'rejected'],
    'one failure, shared',
  )
  t.equal(fake.tokenRequests.length, 1)
  t.equal(await c.getAccessToken(), fake.issued[0], 'the next call tries again and succeeds')
  t.equal(fake.tokenRequests.length, 2)
})

t.test('network failures', async t => {
  await t.test('deadline', async t => {
    const { fake, client } = await setup(t)
    fake.tokenReply = () => ({ hang: true })
    await rejectsWith(
      t,
      client({ timeoutMs: 100 }).getAccessToken(),
      'TOKEN_EXCHANGE',
      /\/oauth\/v2\/token failed: no complete response within 100 ms$/,
    )
  })
  await t.test('peer hangs up mid-body', async t => {
    const { fake, client } = await setup(t)
    fake.tokenReply = () => ({ hangUpAfterHeaders: true })
    await rejectsWith(
      t,
      client().getAccessToken(),
      'TOKEN_EXCHANGE',
      /failed: connection closed before the response was complete$/,
    )
  })
  await t.test('connection refused', async t => {
    const { fake, client } = await setup(t)
    const url = fake.tokenUrl
    await fake.close()
    await rejectsWith(
      t,
      client({ tokenEndpoint: url }).getAccessToken(),
      'TOKEN_EXCHANGE',
      /failed: connect ECONNREFUSED/,
    )
  })
})

t.test('https endpoint: trusted through an injected agent, refused without it', async t => {
  const dir = t.testdir({ token: assertionA })
  const ca = await makeCa(dir)
  const server = await makeServerCert(dir, ca)
  const fake = await startFakeStackit(server)
  t.teardown(() => fake.close())
  const env = {
    STACKIT_SERVICE_ACCOUNT_EMAIL: email,
    STACKIT_FEDERATED_TOKEN_FILE: join(dir, 'token'),
    STACKIT_IDP_TOKEN_ENDPOINT: fake.tokenUrl,
  }
  const agent = new https.Agent({ ca: await readFile(ca.certFile) })
  t.teardown(() => agent.destroy())
  t.equal(await new WorkloadIdentityClient({ env, agent }).getAccessToken(), fake.issued[0], 'trusted CA → token')
  await rejectsWith(t, new WorkloadIdentityClient({ env }).getAccessToken(), 'TOKEN_EXCHANGE', /failed: .*certificate/i)
})

t.test('JWT claims', async t => {
  type Row = [name: string, token: string, exp: number | undefined]
  const rows: Row[] = [
    ['numeric exp', fakeJwt({ exp: 1700000000 }), 1700000000_000],
    ['string exp', fakeJwt({ exp: '1700000000' }), undefined],
    ['no exp', fakeJwt({}), undefined],
    [
      'header not an object',
      `${Buffer.from('"x"').toString('base64url')}.${Buffer.from('{"exp":1}').toString('base64url')}.`,
      undefined,
    ],
    [
      'payload not an object',
      `${Buffer.from('{}').toString('base64url')}.${Buffer.from('[1]').toString('base64url')}.`,
      undefined,
    ],
    ['two parts', 'abc.def', undefined],
  ]
  for (const [name, token, exp] of rows) t.equal(jwtExpiry(token), exp, name)
  t.same(unverifiedClaims(fakeJwt({ a: 1 })), { a: 1 })
})
