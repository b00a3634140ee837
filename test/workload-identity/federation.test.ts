// The STACKIT-like token endpoint of the test helpers (test/helpers/federation.ts) judged against a real issuer on
// loopback: an HTTPS server with a test CA serving a discovery document and a JWKS of keys made here. Every check
// STACKIT makes has a row; then the key cache, fake-stackit's federation mode, and the real WorkloadIdentityClient
// against the verifying endpoint.
import t from 'tap'
import { generateKeyPairSync, sign } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { WorkloadIdentityClient } from '../../lib/index.js'
import { isWorkloadIdentityError } from '../../lib/workload-identity/workload-identity-error.js'
import { sendRequest } from '../../lib/workload-identity/http-request.js'
import { makeCa, makeServerCert } from '../helpers/certs.js'
import {
  exchange,
  hmacJwt,
  makeSigningKey,
  signJwt,
  startFakeIssuer,
  workloadJwtAssertionType,
  type Federation,
  type FederationOptions,
  type SigningKey,
} from '../helpers/federation.js'
import { startFakeStackit } from '../helpers/fake-stackit.js'

const dir = t.testdir()
const ca = await makeCa(dir)
const serverCert = await makeServerCert(dir, ca)
const issuerCa = await readFile(ca.certFile)
const rsa = makeSigningKey('RS256', 'rsa-1')
const ec = makeSigningKey('ES256', 'ec-1')
const issuer = await startFakeIssuer({ tls: serverCert, keys: [rsa.jwk, ec.jwk] })
t.teardown(() => issuer.close())

const email = 'app-1a2b@sa.stackit.cloud'
const audience = 'sts.accounts.stackit.cloud'
const subject = 'system:serviceaccount:team-a:app'
const federation: Federation = { issuer: issuer.issuer, email, audience, subject }
// A fixed clock for the table, on a whole second.
const now = 1_800_000_000
/** Overrides of the table's options; an `undefined` value removes the option (e.g. `issuerCa`). */
type Overrides = { [K in keyof FederationOptions]?: FederationOptions[K] | undefined }
const options = (o: Overrides = {}): FederationOptions =>
  Object.fromEntries(
    Object.entries({ federation, issuerCa, epochMs: () => now * 1000, ...o }).filter(([, v]) => v !== undefined),
  ) as unknown as FederationOptions

/** A projected ServiceAccount token's claims as the API server writes them, with overrides. */
const claims = (o: Record<string, unknown> = {}): Record<string, unknown> => ({
  aud: [audience],
  exp: now + 600,
  iat: now,
  iss: issuer.issuer,
  kubernetes: { namespace: 'team-a', serviceaccount: { name: 'app', uid: 'd3c1' } },
  nbf: now,
  sub: subject,
  ...o,
})

/** The form the STACKIT SDK posts; `undefined` in `o` drops a field. */
const form = (assertion: string, o: Record<string, string | undefined> = {}): URLSearchParams => {
  const fields: Record<string, string | undefined> = {
    grant_type: 'client_credentials',
    client_assertion_type: workloadJwtAssertionType,
    client_assertion: assertion,
    client_id: email,
    ...o,
  }
  return new URLSearchParams(
    Object.entries(fields).flatMap(([k, v]): [string, string][] => (v === undefined ? [] : [[k, v]])),
  )
}

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')

/** An ES256 token whose signature is DER-encoded (as node:crypto signs by default), not the raw r||s of JWS. */
const derSigned = (key: SigningKey): string => {
  const input = `${b64url({ alg: 'ES256', typ: 'JWT', kid: key.kid })}.${b64url(claims())}`
  return `${input}.${sign('sha256', Buffer.from(input), key.privateKey).toString('base64url')}`
}

t.test('each check STACKIT makes, one row each', async t => {
  type Expect = { status: 200 } | { status: 400 | 401; error: string; description: string | RegExp }
  type Row = [name: string, request: () => URLSearchParams, expect: Expect, options?: Overrides]
  const ok: Expect = { status: 200 }
  const grant = (description: string | RegExp): Expect => ({ status: 400, error: 'invalid_grant', description })
  const request = (description: string): Expect => ({ status: 400, error: 'invalid_request', description })
  const rows: Row[] = [
    ['RS256 signed by the issuer → accepted', () => form(signJwt(claims(), rsa)), ok],
    ['ES256 signed by the issuer → accepted', () => form(signJwt(claims(), ec)), ok],
    ['RS256 without kid: each RSA key tried → accepted', () => form(signJwt(claims(), rsa, { kid: undefined })), ok],
    ['ES256 without kid: each EC key is tried → accepted', () => form(signJwt(claims(), ec, { kid: undefined })), ok],
    [
      'another key with the same kid → signature refused',
      () => form(signJwt(claims(), makeSigningKey('RS256', rsa.kid))),
      grant("the signature does not verify with the issuer's keys"),
    ],
    [
      'another key without kid → signature refused',
      () => form(signJwt(claims(), makeSigningKey('ES256'), { kid: undefined })),
      grant("the signature does not verify with the issuer's keys"),
    ],
    [
      'ES256 with a DER signature → refused (JWS wants r||s)',
      () => form(derSigned(ec)),
      grant("the signature does not verify with the issuer's keys"),
    ],
    [
      "alg ES256 naming the RSA key's kid → refused",
      () => form(signJwt(claims(), ec, { kid: rsa.kid })),
      grant("the signature does not verify with the issuer's keys"),
    ],
    [
      'a claim changed after signing → refused',
      () => {
        const [h, , s] = signJwt(claims(), rsa).split('.')
        return form(`${h}.${b64url(claims({ sub: 'system:serviceaccount:team-a:admin' }))}.${s}`)
      },
      grant("the signature does not verify with the issuer's keys"),
    ],
    [
      'unknown kid → refused',
      () => form(signJwt(claims(), makeSigningKey('RS256', 'rsa-unknown'))),
      grant("no key in the issuer's JWKS has the token's kid"),
    ],
    [
      'alg none → refused',
      () => form(`${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims())}.`),
      grant('alg none is refused: the token must be signed'),
    ],
    [
      'HS256 keyed with the public key → refused',
      () => form(hmacJwt(claims(), rsa)),
      grant('alg is not RS256 or ES256'),
    ],
    ['no alg → refused', () => form(signJwt(claims(), rsa, { alg: undefined })), grant('alg is not RS256 or ES256')],
    ['kid not a string → refused', () => form(signJwt(claims(), rsa, { kid: 7 })), grant('kid is not a string')],
    [
      'iss of another issuer → refused',
      () => form(signJwt(claims({ iss: 'https://other.example' }), rsa)),
      grant("iss is not the federation's issuer"),
    ],
    [
      'aud missing → refused',
      () => form(signJwt(claims({ aud: undefined }), rsa)),
      grant("aud does not contain the federation's audience"),
    ],
    [
      'aud another audience → refused',
      () => form(signJwt(claims({ aud: ['api'] }), rsa)),
      grant("aud does not contain the federation's audience"),
    ],
    ['aud the audience as a string → accepted', () => form(signJwt(claims({ aud: audience }), rsa)), ok],
    [
      'aud an array containing the audience → accepted',
      () => form(signJwt(claims({ aud: ['api', audience] }), rsa)),
      ok,
    ],
    [
      'sub of another ServiceAccount while the federation pins one → refused',
      () => form(signJwt(claims({ sub: 'system:serviceaccount:team-a:other' }), rsa)),
      grant("sub is not the federation's subject"),
    ],
    [
      'sub of another ServiceAccount, federation without sub assertion → accepted',
      () => form(signJwt(claims({ sub: 'system:serviceaccount:team-a:other' }), rsa)),
      ok,
      { federation: { issuer: issuer.issuer, email, audience } },
    ],
    [
      'exp past beyond the skew → refused',
      () => form(signJwt(claims({ exp: now - 61 }), rsa)),
      grant('the token has expired (exp)'),
    ],
    ['exp past within the skew → accepted', () => form(signJwt(claims({ exp: now - 59 }), rsa)), ok],
    [
      'exp just past with no skew → refused',
      () => form(signJwt(claims({ exp: now }), rsa)),
      grant('the token has expired (exp)'),
      { clockSkewSeconds: 0 },
    ],
    [
      'exp missing → refused',
      () => form(signJwt(claims({ exp: undefined }), rsa)),
      grant('exp is missing or not a number'),
    ],
    [
      'exp a string → refused',
      () => form(signJwt(claims({ exp: String(now + 600) }), rsa)),
      grant('exp is missing or not a number'),
    ],
    [
      'nbf in the future beyond the skew → refused',
      () => form(signJwt(claims({ nbf: now + 61 }), rsa)),
      grant('the token is not valid yet (nbf)'),
    ],
    ['nbf in the future within the skew → accepted', () => form(signJwt(claims({ nbf: now + 59 }), rsa)), ok],
    [
      'nbf not a number → refused',
      () => form(signJwt(claims({ nbf: 'soon' }), rsa)),
      grant('nbf is missing or not a number'),
    ],
    [
      'iat in the future beyond the skew → refused',
      () => form(signJwt(claims({ iat: now + 61 }), rsa)),
      grant('iat is in the future'),
    ],
    ['iat in the future within the skew → accepted', () => form(signJwt(claims({ iat: now + 59 }), rsa)), ok],
    ['no nbf and no iat → accepted', () => form(signJwt(claims({ nbf: undefined, iat: undefined }), rsa)), ok],
    [
      'client_id another e-mail → invalid_client',
      () => form(signJwt(claims(), rsa), { client_id: 'other@sa.stackit.cloud' }),
      { status: 401, error: 'invalid_client', description: "client_id is not the federation's service account" },
    ],
    [
      'grant_type password → unsupported_grant_type',
      () => form(signJwt(claims(), rsa), { grant_type: 'password' }),
      { status: 400, error: 'unsupported_grant_type', description: 'grant_type must be client_credentials' },
    ],
    [
      'grant_type missing → invalid_request',
      () => form(signJwt(claims(), rsa), { grant_type: undefined }),
      request('grant_type is missing'),
    ],
    [
      'client_assertion_type of RFC 7523 → invalid_request',
      () =>
        form(signJwt(claims(), rsa), {
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        }),
      request(`client_assertion_type must be ${workloadJwtAssertionType}`),
    ],
    [
      'client_assertion_type missing → invalid_request',
      () => form(signJwt(claims(), rsa), { client_assertion_type: undefined }),
      request('client_assertion_type is missing'),
    ],
    [
      'client_assertion missing → invalid_request',
      () => form('', { client_assertion: undefined }),
      request('client_assertion is missing'),
    ],
    [
      'client_assertion empty → invalid_request',
      () => form('', { client_assertion: '' }),
      request('client_assertion is missing'),
    ],
    [
      'client_id missing → invalid_request',
      () => form(signJwt(claims(), rsa), { client_id: undefined }),
      request('client_id is missing'),
    ],
    ['client_assertion not a JWT → invalid_request', () => form('hello'), request('client_assertion is not a JWT')],
    [
      'client_assertion with a trailing newline → invalid_request',
      () => form(`${signJwt(claims(), rsa)}\n`),
      request('client_assertion is not a JWT'),
    ],
    [
      'client_assertion with a payload that is not JSON → invalid_request',
      () => form(`${b64url({ alg: 'RS256' })}.${Buffer.from('not json').toString('base64url')}.c2ln`),
      request('client_assertion is not a JWT'),
    ],
    [
      'client_assertion larger than 64 KiB → invalid_request',
      () => form(signJwt(claims({ pad: 'x'.repeat(70_000) }), rsa)),
      request('client_assertion is not a JWT'),
    ],
    [
      "the issuer's CA not trusted → its discovery document cannot be fetched",
      () => form(signJwt(claims(), rsa)),
      grant(/^cannot fetch the issuer's discovery document \(.*certificate.*\)$/),
      { issuerCa: undefined },
    ],
    [
      'federation issuer with a path the server does not serve → HTTP 404',
      () => form(signJwt(claims({ iss: `${issuer.issuer}/nowhere` }), rsa)),
      grant("the issuer's discovery document answered HTTP 404"),
      { federation: { ...federation, issuer: `${issuer.issuer}/nowhere` } },
    ],
  ]
  for (const [name, request, expect, o] of rows) {
    const sent = request()
    const { status, body, seen } = await exchange(sent, options(o))
    const assertion = sent.get('client_assertion')
    if (expect.status === 200) {
      t.match({ status, body, seen }, { status: 200, body: { token_type: 'Bearer', expires_in: 600 } }, name)
      t.match(body, { access_token: /^[\w-]+\.[\w-]+\.[\w-]*$/ }, `${name}: a JWT-shaped access token`)
      t.same([seen.accepted, seen.error, seen.description], [true, undefined, undefined], `${name}: seen as accepted`)
      continue
    }
    const description = (body as { error_description?: unknown }).error_description
    t.match({ status, body }, { status: expect.status, body: { error: expect.error } }, name)
    if (typeof expect.description === 'string') t.equal(description, expect.description, `${name}: description`)
    else t.match(description, expect.description, `${name}: description`)
    t.same([seen.accepted, seen.error, seen.description], [false, expect.error, description], `${name}: seen`)
    t.same(Object.keys(body as object).sort(), ['error', 'error_description'], `${name}: an OAuth error body`)
    if (assertion !== null && assertion.length > 20) {
      t.notOk(JSON.stringify(body).includes(assertion.split('.')[1] ?? ''), `${name}: the token is not echoed`)
    }
  }
})

t.test('what the endpoint saw: claims, alg and kid, also of a refused token', async t => {
  const seenOf = async (assertion: string, o: Record<string, string> = {}) =>
    (await exchange(form(assertion, o), options())).seen
  t.same(await seenOf(signJwt(claims(), ec)), {
    accepted: true,
    claims: { iss: issuer.issuer, sub: subject, aud: [audience], exp: now + 600, nbf: now, iat: now },
    alg: 'ES256',
    kid: ec.kid,
  })
  t.same(
    await seenOf(signJwt(claims({ nbf: undefined }), rsa), { client_id: 'other@sa.stackit.cloud' }),
    {
      accepted: false,
      error: 'invalid_client',
      description: "client_id is not the federation's service account",
      claims: { iss: issuer.issuer, sub: subject, aud: [audience], exp: now + 600, iat: now },
      alg: 'RS256',
      kid: rsa.kid,
    },
    'a refused client still shows its token',
  )
  t.same(
    await seenOf('hello'),
    { accepted: false, error: 'invalid_request', description: 'client_assertion is not a JWT' },
    'no claims of something that is not a JWT',
  )
})

t.test('a broken issuer: the discovery document and the JWKS are checked', async t => {
  type Row = [name: string, discovery: (base: string) => unknown, description: string]
  const rows: Row[] = [
    [
      'discovery names another issuer',
      base => ({ issuer: 'https://other.example', jwks_uri: `${base}/openid/v1/jwks` }),
      "the discovery document's issuer is not the federation's",
    ],
    ['discovery without jwks_uri', base => ({ issuer: base }), 'the discovery document has no usable jwks_uri'],
    [
      'jwks_uri not a URL',
      base => ({ issuer: base, jwks_uri: 'openid/v1/jwks' }),
      'the discovery document has no usable jwks_uri',
    ],
    [
      'jwks_uri over plain HTTP for an HTTPS issuer',
      base => ({ issuer: base, jwks_uri: `${base.replace('https:', 'http:')}/openid/v1/jwks` }),
      'the discovery document has no usable jwks_uri',
    ],
    [
      'jwks_uri answering 404',
      base => ({ issuer: base, jwks_uri: `${base}/nowhere` }),
      "the issuer's JWKS answered HTTP 404",
    ],
    [
      'jwks_uri pointing at a document without keys',
      base => ({ issuer: base, jwks_uri: `${base}/.well-known/openid-configuration` }),
      "the issuer's JWKS has no keys array",
    ],
    [
      'discovery not a JSON object',
      () => ['not', 'an', 'object'],
      "the issuer's discovery document is not a JSON object",
    ],
    [
      'discovery larger than 64 KiB',
      base => ({ issuer: base, jwks_uri: `${base}/openid/v1/jwks`, pad: 'x'.repeat(70_000) }),
      "the issuer's discovery document is larger than 65536 bytes",
    ],
  ]
  for (const [name, discovery, description] of rows) {
    const broken = await startFakeIssuer({ tls: serverCert, keys: [rsa.jwk] })
    broken.discovery = discovery(broken.issuer)
    const o = options({ federation: { ...federation, issuer: broken.issuer } })
    const { status, body } = await exchange(form(signJwt(claims({ iss: broken.issuer }), rsa)), o)
    await broken.close()
    t.same({ status, body }, { status: 400, body: { error: 'invalid_grant', error_description: description } }, name)
  }
  const empty = await startFakeIssuer({ tls: serverCert, keys: [] })
  t.teardown(() => empty.close())
  const o = options({ federation: { ...federation, issuer: empty.issuer } })
  const noKid = signJwt(claims({ iss: empty.issuer }), rsa, { kid: undefined })
  t.match(
    (await exchange(form(noKid), o)).body,
    { error_description: "the issuer's JWKS has no keys" },
    'no keys at all',
  )
  const down = await startFakeIssuer()
  await down.close()
  const gone = options({ federation: { ...federation, issuer: down.issuer } })
  t.match(
    (await exchange(form(signJwt(claims({ iss: down.issuer }), rsa)), gone)).body,
    { error: 'invalid_grant', error_description: /^cannot fetch the issuer's discovery document \(.*ECONNREFUSED/ },
    'issuer down',
  )
})

t.test('keys: a plain HTTP issuer, and odd entries in the JWKS are skipped', async t => {
  const plain = await startFakeIssuer({
    keys: [
      { kty: 'RSA', kid: rsa.kid, n: 'AQAB', e: 'AQAB' }, // malformed (a 17-bit modulus): verifies nothing
      { ...rsa.jwk, use: 'enc' }, // not a signing key
      { ...rsa.jwk, alg: 'RS512' }, // bound to another algorithm
      { ...makeSigningKey('ES256').jwk, kid: undefined },
    ],
  })
  t.teardown(() => plain.close())
  const o = options({ federation: { ...federation, issuer: plain.issuer } })
  const token = signJwt(claims({ iss: plain.issuer }), rsa)
  t.match((await exchange(form(token), o)).body, {
    error_description: "the signature does not verify with the issuer's keys",
  })
  plain.keys = [...plain.keys, rsa.jwk]
  t.equal((await exchange(form(token), options({ federation: { ...federation, issuer: plain.issuer } }))).status, 200)
  const p384 = await startFakeIssuer()
  t.teardown(() => p384.close())
  // An EC key of another curve is not an ES256 key, even under the right kid.
  const other = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  p384.keys = [{ ...other.publicKey.export({ format: 'jwk' }), kid: ec.kid }]
  const es = options({ federation: { ...federation, issuer: p384.issuer } })
  const esToken = signJwt(claims({ iss: p384.issuer }), { ...ec, privateKey: other.privateKey })
  t.match((await exchange(form(esToken), es)).body, {
    error_description: "the signature does not verify with the issuer's keys",
  })
})

t.test('the key set is cached per endpoint and fetched again once for an unknown kid', async t => {
  const rotating = await startFakeIssuer({ tls: serverCert, keys: [rsa.jwk] })
  t.teardown(() => rotating.close())
  const o = options({ federation: { ...federation, issuer: rotating.issuer } })
  const token = (key: SigningKey): URLSearchParams => form(signJwt(claims({ iss: rotating.issuer }), key))
  const fetches = (): number => rotating.requests.length / 2
  t.equal((await exchange(token(rsa), o)).status, 200, 'first token accepted')
  t.same(rotating.requests, ['/.well-known/openid-configuration', '/openid/v1/jwks'], 'discovery, then jwks_uri')
  t.equal((await exchange(token(rsa), o)).status, 200)
  t.equal(fetches(), 1, 'a known kid: from the cache')
  const rotated = makeSigningKey('ES256', 'ec-2')
  rotating.keys = [rsa.jwk, rotated.jwk]
  t.equal((await exchange(token(rotated), o)).status, 200, 'a key rotated in is found')
  t.equal(fetches(), 2, 'by one refetch')
  t.equal((await exchange(token(rotated), o)).status, 200)
  t.equal(fetches(), 2, 'and cached from then on')
  const stranger = makeSigningKey('RS256', 'nobody')
  t.match((await exchange(token(stranger), o)).body, {
    error_description: "no key in the issuer's JWKS has the token's kid",
  })
  t.equal(fetches(), 3, 'an unknown kid: one refetch, no more')
  t.equal((await exchange(token(rsa), options({ federation: o.federation }))).status, 200)
  t.equal(fetches(), 4, 'another endpoint has its own cache')

  const flaky = await startFakeIssuer({ tls: serverCert, keys: [rsa.jwk] })
  t.teardown(() => flaky.close())
  const good = flaky.discovery
  flaky.discovery = {}
  const f = options({ federation: { ...federation, issuer: flaky.issuer } })
  const flakyToken = form(signJwt(claims({ iss: flaky.issuer }), rsa))
  t.equal((await exchange(flakyToken, f)).status, 400, 'a broken issuer')
  flaky.discovery = good
  t.equal((await exchange(flakyToken, f)).status, 200, 'the failure was not cached')
})

t.test('fake-stackit with a federation: verified exchanges, then SKE accepts the token', async t => {
  const fake = await startFakeStackit(undefined, { federation: options({ epochMs: Date.now }) })
  t.teardown(() => fake.close())
  const post = (body: string, contentType = 'application/x-www-form-urlencoded', method: 'GET' | 'POST' = 'POST') =>
    sendRequest({
      url: new URL(fake.tokenUrl),
      method,
      headers: { 'content-type': contentType },
      body,
      timeoutMs: 5000,
      maxResponseBytes: 65536,
    })
  const live = (o: Record<string, unknown> = {}): Record<string, unknown> => {
    const s = Math.floor(Date.now() / 1000)
    return claims({ exp: s + 600, iat: s, nbf: s, ...o })
  }
  const accepted = await post(form(signJwt(live(), rsa)).toString(), 'application/x-www-form-urlencoded; charset=utf-8')
  t.equal(accepted.status, 200, 'a valid assertion is exchanged')
  const accessToken = (JSON.parse(accepted.body) as { access_token: string }).access_token
  t.same(fake.issued, [accessToken], 'the token is one the fake issued')
  const ske = await sendRequest({
    url: new URL(`${fake.base}/v2/regions/eu01/provider-options`),
    method: 'GET',
    headers: { authorization: `Bearer ${accessToken}` },
    timeoutMs: 5000,
    maxResponseBytes: 65536,
  })
  t.equal(ske.status, 200, 'SKE accepts it')
  const refused = await post(form(signJwt(live({ sub: 'system:serviceaccount:team-a:other' }), rsa)).toString())
  t.same(
    { status: refused.status, body: JSON.parse(refused.body) },
    { status: 400, body: { error: 'invalid_grant', error_description: "sub is not the federation's subject" } },
  )
  const wrongClient = await post(form(signJwt(live(), rsa), { client_id: 'x@sa.stackit.cloud' }).toString())
  t.equal(wrongClient.status, 401, 'invalid_client is 401')
  type Row = [name: string, contentType: string, method: 'GET' | 'POST']
  const notForms: Row[] = [
    ['JSON body', 'application/json', 'POST'],
    ['GET', 'application/x-www-form-urlencoded', 'GET'],
  ]
  for (const [name, contentType, method] of notForms) {
    const r = await post(form(signJwt(live(), rsa)).toString(), contentType, method)
    t.same(
      { status: r.status, error: (JSON.parse(r.body) as { error: string }).error },
      { status: 400, error: 'invalid_request' },
      name,
    )
  }
  t.same(
    fake.assertions.map(a => [a.accepted, a.error]),
    [
      [true, undefined],
      [false, 'invalid_grant'],
      [false, 'invalid_client'],
      [false, 'invalid_request'],
      [false, 'invalid_request'],
    ],
    'every request is in fake.assertions',
  )
  t.same(fake.issued, [accessToken], 'only the accepted one issued a token')
  fake.tokenReply = () => ({ status: 503, body: 'busy' })
  t.equal((await post(form(signJwt(live(), rsa)).toString())).status, 503, 'tokenReply still overrides')
  t.equal(fake.assertions.length, 5, 'an overridden answer judges nothing')
})

t.test('the client works against a verifying endpoint', async t => {
  const fake = await startFakeStackit(undefined, { federation: options({ epochMs: Date.now }) })
  t.teardown(() => fake.close())
  const tokenFile = join(t.testdir(), 'token')
  const s = Math.floor(Date.now() / 1000)
  const client = (serviceAccountEmail = email): WorkloadIdentityClient =>
    new WorkloadIdentityClient({ serviceAccountEmail, federatedTokenFile: tokenFile, tokenEndpoint: fake.tokenUrl })
  type Row = [name: string, token: string, clientEmail: string, refusal: RegExp | undefined]
  // The client's message ends in the endpoint's answer, the OAuth error body verbatim.
  const answered = (status: number, error: string, description: string): RegExp => {
    const body = JSON.stringify({ error, error_description: description })
    return new RegExp(`answered HTTP ${status}: ${body.replace(/[{}.]/g, '\\$&')}$`)
  }
  const valid = claims({ exp: s + 600, iat: s, nbf: s })
  const rows: Row[] = [
    ['the kubelet-shaped token, RS256', signJwt(valid, rsa), email, undefined],
    ['the kubelet-shaped token, ES256', signJwt(valid, ec), email, undefined],
    [
      "another ServiceAccount's token",
      signJwt({ ...valid, sub: 'system:serviceaccount:team-a:other' }, rsa),
      email,
      answered(400, 'invalid_grant', "sub is not the federation's subject"),
    ],
    [
      'another audience',
      signJwt({ ...valid, aud: ['api'] }, ec),
      email,
      answered(400, 'invalid_grant', "aud does not contain the federation's audience"),
    ],
    [
      'another e-mail',
      signJwt(valid, rsa),
      'other@sa.stackit.cloud',
      answered(401, 'invalid_client', "client_id is not the federation's service account"),
    ],
    [
      'a key the issuer does not hold',
      signJwt(valid, makeSigningKey('RS256')),
      email,
      answered(400, 'invalid_grant', "no key in the issuer's JWKS has the token's kid"),
    ],
  ]
  for (const [name, token, clientEmail, refusal] of rows) {
    await writeFile(tokenFile, `${token}\n`)
    const got = client(clientEmail).getAccessToken()
    if (refusal === undefined) {
      t.equal(await got, fake.issued.at(-1), `${name}: the access token the endpoint issued`)
      t.match(fake.assertions.at(-1), { accepted: true, claims: { sub: subject, aud: [audience] } }, `${name}: seen`)
      continue
    }
    const e = await got.then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(isWorkloadIdentityError(e, 'TOKEN_EXCHANGE'), `${name}: a TOKEN_EXCHANGE error`)
    t.match(e, { message: refusal }, `${name}: the endpoint's answer`)
  }
})
