/**
 * The whole workload identity chain with a real signed token, with no kubelet and no STACKIT but every real piece
 * that runs here. The kube-apiserver is its own OIDC issuer (an RSA key, RS256, as kubeadm and managed clusters
 * sign); the real webhook (`serve`) mutates the example app's Pod from manifests/examples; the kubelet's part is
 * done as the kubelet does it (kubelet.ts: a TokenRequest bound to the stored Pod with the injected volume's
 * audience and expiration, written where the container's mount puts it); the example app runs as a process with
 * exactly the container's environment. STACKIT's token endpoint is the fake's federation verifier, which checks the
 * token as STACKIT does: the signature against the keys it finds through the issuer's discovery document (fetched
 * without credentials), then iss, aud, the times and sub, and client_id against the federation's e-mail.
 */
import { mkdtemp, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { isObject, isString, own } from '../../lib/json.js'
import type { JsonObject } from '../../lib/json.js'
import { defaults, envNames, keys, volumeName } from '../../lib/names.js'
import { makeCa, makeServerCert } from '../helpers/certs.js'
import { startFakeStackit, defaultVersions } from '../helpers/fake-stackit.js'
import { makeSigningKey, signJwt } from '../helpers/federation.js'
import type { Federation, OAuthError } from '../helpers/federation.js'
import { at, manifestsDir, parseYamlFile } from '../helpers/manifests.js'
import { until } from '../helpers/until.js'
import { isWebhookConfiguration, loadBaseManifests, pointAtLoopback } from './base-manifests.js'
import { startCluster } from './cluster.js'
import type { Cluster } from './cluster.js'
import { runExampleAppProcess } from './example-app-process.js'
import { mountWorkloadIdentity } from './kubelet.js'
import { makeWebhookCerts, webhookStarter } from './webhook-process.js'

// Two control planes, the webhook, and one example app process per case.
t.setTimeout(300_000)

// The cluster under test, and a second one that claims the same issuer but signs with its own (EC) key: its tokens
// look right in every claim and must still be refused.
const cluster = await startCluster({ signingKey: 'rsa' })
t.teardown(() => cluster.stop())
const impostor = await startCluster({ signingKey: 'ec', issuer: cluster.issuer })
t.teardown(() => impostor.stop())
const api = cluster.admin

// --- the webhook as users deploy it (manifests/base), registered once it listens -------------------------------
const base = await loadBaseManifests()
await api.apply(base.filter(o => !isWebhookConfiguration(o)))
const webhookAccount = base.find(o => own(o, 'kind') === 'ServiceAccount')
const accountNamespace = at(webhookAccount, 'metadata', 'namespace')
const accountName = at(webhookAccount, 'metadata', 'name')
if (!isString(accountNamespace) || !isString(accountName)) {
  throw new Error('manifests/base must hold the webhook ServiceAccount')
}
const webhookTokenFile = join(cluster.dir, 'webhook-token')
await writeFile(webhookTokenFile, await cluster.tokenFor(accountNamespace, accountName, 3600), { mode: 0o600 })
const { certDir, caBundle } = await makeWebhookCerts(cluster)
const webhook = await webhookStarter(cluster, webhookTokenFile, certDir)()
t.teardown(() => webhook.stop())
await api.apply(base.filter(isWebhookConfiguration).map(c => pointAtLoopback(c, webhook.admissionPort, caBundle)))

// The API server picks a new configuration up within a moment: wait until a dry-run Pod comes back injected.
await cluster.createNamespace('probe')
await api.create({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: { name: 'probe', namespace: 'probe', annotations: { [keys.email]: 'probe@sa.stackit.cloud' } },
})
const probe = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'probe', namespace: 'probe' },
  spec: { serviceAccountName: 'probe', containers: [{ name: 'main', image: 'registry.invalid/app:1' }] },
}
const effective = await until(async () => {
  const response = await api.request('POST', '/api/v1/namespaces/probe/pods?dryRun=All', probe)
  const volumes = at(response.body, 'spec', 'volumes')
  return Array.isArray(volumes) && volumes.some(v => at(v, 'name') === volumeName)
}, 500)
if (!effective) throw new Error('the webhook configuration did not take effect')

// --- the example app's ServiceAccount and Job from manifests/examples, as users apply them ---------------------
const exampleFile = join(manifestsDir, 'examples', 'stackit-workload-identity-example-app.yaml')
const exampleDocs = (await parseYamlFile(exampleFile)).map(d => d.doc)
const exampleAccountName = at(exampleDocs.find(d => at(d, 'kind') === 'ServiceAccount') ?? {}, 'metadata', 'name')
const exampleJob = exampleDocs.find(d => at(d, 'kind') === 'Job')
const templateMetadata = at(exampleJob, 'spec', 'template', 'metadata')
const templateSpec = at(exampleJob, 'spec', 'template', 'spec')
if (!isString(exampleAccountName) || !isObject(templateMetadata) || !isObject(templateSpec)) {
  throw new Error('the example manifest lost its ServiceAccount or its Job template')
}
/** The e-mail of the STACKIT service account the federations belong to (in place of the manifest's placeholder). */
const federationEmail = 'e2e-example-1a2b3c@sa.stackit.cloud'
const exampleSubject = (namespace: string): string => `system:serviceaccount:${namespace}:${exampleAccountName}`

/** The example's ServiceAccount in `namespace` with these annotations in place of the manifest's. */
const exampleServiceAccount = (namespace: string, annotations: Readonly<Record<string, string>>): JsonObject => ({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: { name: exampleAccountName, namespace, annotations },
})
/** A Pod of the example Job's template, as the Job controller would create it (no controller runs here). */
const examplePod = (namespace: string, name: string): JsonObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { ...templateMetadata, name, namespace },
  spec: templateSpec,
})

// --- STACKIT's endpoints: HTTPS with a CA of the run, which the app trusts through NODE_EXTRA_CA_CERTS ---------
const stackitCa = await makeCa(cluster.dir, { name: 'stackit-ca' })
const stackitTls = await makeServerCert(cluster.dir, stackitCa, {
  name: 'stackit',
  dnsNames: ['localhost'],
  ips: ['127.0.0.1'],
})

/** The claims part of a JWT, decoded (the test's own tokens; nothing here is verified by this). */
const claimsOf = (jwt: string): JsonObject => {
  const parsed: unknown = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'))
  if (!isObject(parsed)) throw new Error('the token has no claims object')
  return parsed
}
const headerOf = (jwt: string): JsonObject => {
  const parsed: unknown = JSON.parse(Buffer.from(jwt.split('.')[0] ?? '', 'base64url').toString('utf8'))
  if (!isObject(parsed)) throw new Error('the token has no header object')
  return parsed
}

/** A token the impostor cluster issues for the same ServiceAccount: every claim as the real one's, another key. */
const impostorToken = async (other: Cluster, namespace: string, audience: string): Promise<string> => {
  await other.createNamespace(namespace)
  await other.admin.create(exampleServiceAccount(namespace, {}))
  const sa = `/api/v1/namespaces/${namespace}/serviceaccounts/${exampleAccountName}/token`
  const review = await other.admin.post(sa, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { audiences: [audience], expirationSeconds: 600 },
  })
  const token = at(review, 'status', 'token')
  if (!isString(token)) throw new Error('the impostor issued no token')
  return token
}

type Expected =
  | { readonly accepted: true }
  | {
      readonly accepted: false
      readonly error: OAuthError
      readonly status: 400 | 401
      /** What the endpoint's error_description must say. */
      readonly description: RegExp
    }

interface FederationCase {
  readonly name: string
  /** Each case has its own namespace, so `sub` differs from case to case. */
  readonly namespace: string
  /** The ServiceAccount's annotations besides the token endpoint (which points at this case's fake). */
  readonly annotations: Readonly<Record<string, string>>
  /** The federation, changed from the matching one (the cluster's issuer, the e-mail, the default `aud`, our `sub`). */
  readonly federation?: Partial<Federation>
  /** Replace the kubelet's token before the app runs. */
  readonly swapToken?: 'impostor' | 'resigned'
  /** The Pod's expected projected token: its audience and expirationSeconds, and the container's token path. */
  readonly token: { readonly audience: string; readonly expirationSeconds: number; readonly file: string }
  readonly expected: Expected
}

const defaultToken = {
  audience: defaults.audience,
  expirationSeconds: defaults.tokenExpirationSeconds,
  file: `${defaults.mountPath}/${defaults.tokenPath}`,
}
const customToken = {
  audience: 'https://federation.example/my-cluster',
  expirationSeconds: 1200,
  file: '/var/run/secrets/tokens/stackit-token',
}
const refusedGrant = (description: RegExp): Expected => ({
  accepted: false,
  error: 'invalid_grant',
  status: 400,
  description,
})

const cases: FederationCase[] = [
  {
    name: 'the default annotations (e-mail, and the token endpoint) → accepted, the versions listed',
    namespace: 'fed-default',
    annotations: { [keys.email]: federationEmail },
    token: defaultToken,
    expected: { accepted: true },
  },
  {
    name: 'a custom audience, token file and expiration, matched by the federation → accepted',
    namespace: 'fed-custom',
    annotations: {
      [keys.email]: federationEmail,
      [keys.audience]: customToken.audience,
      [keys.federatedTokenFile]: customToken.file,
      [keys.tokenExpiration]: String(customToken.expirationSeconds),
    },
    federation: { audience: customToken.audience },
    token: customToken,
    expected: { accepted: true },
  },
  {
    name: 'the federation pins another ServiceAccount as sub → refused',
    namespace: 'fed-other-sub',
    annotations: { [keys.email]: federationEmail },
    federation: { subject: 'system:serviceaccount:fed-other-sub:someone-else' },
    token: defaultToken,
    expected: refusedGrant(/sub is not the federation's subject/),
  },
  {
    name: "the ServiceAccount's audience is not the federation's → refused",
    namespace: 'fed-other-aud',
    annotations: { [keys.email]: federationEmail, [keys.audience]: 'some-other-audience' },
    token: { ...defaultToken, audience: 'some-other-audience' },
    expected: refusedGrant(/aud does not contain the federation's audience/),
  },
  {
    name: "the ServiceAccount's e-mail is not the federation's → refused as invalid_client",
    namespace: 'fed-other-email',
    annotations: { [keys.email]: 'someone-else-9z8y7x@sa.stackit.cloud' },
    token: defaultToken,
    expected: {
      accepted: false,
      error: 'invalid_client',
      status: 401,
      description: /client_id is not the federation's service account/,
    },
  },
  {
    name: 'a token from another API server claiming the same issuer (its own key) → refused',
    namespace: 'fed-impostor',
    annotations: { [keys.email]: federationEmail },
    swapToken: 'impostor',
    token: defaultToken,
    expected: refusedGrant(/no key in the issuer's JWKS has the token's kid/),
  },
  {
    name: "the real token's claims re-signed by a key made in the test, under the issuer's kid → refused",
    namespace: 'fed-resigned',
    annotations: { [keys.email]: federationEmail },
    swapToken: 'resigned',
    token: defaultToken,
    expected: refusedGrant(/the signature does not verify with the issuer's keys/),
  },
]

// Set-up ends here: tap ends the root test (running its teardown) as soon as no subtest is pending, so no top-level
// await may follow the first t.test.

t.test('the issuer serves its discovery document and key set to anyone, naming itself', async t => {
  const anonymous = api.as('')
  const discovery = await anonymous.request('GET', '/.well-known/openid-configuration')
  t.equal(discovery.status, 200, 'discovery document without credentials')
  t.match(discovery.body, { issuer: cluster.issuer, jwks_uri: `${cluster.issuer}/openid/v1/jwks` })
  const jwks = await anonymous.request('GET', '/openid/v1/jwks', undefined, undefined, 'application/jwk-set+json')
  t.equal(jwks.status, 200, 'key set without credentials')
  t.match(jwks.body, { keys: [{ kty: 'RSA', alg: 'RS256', use: 'sig', kid: /./, n: /./, e: 'AQAB' }] })
  t.equal((await anonymous.request('GET', '/api/v1/namespaces')).status, 403, 'nothing else without credentials')
  // The impostor names the same issuer but serves its own key: only the issuer's own key set counts.
  const impostorDiscovery = await impostor.admin.as('').request('GET', '/.well-known/openid-configuration')
  t.match(impostorDiscovery.body, { issuer: cluster.issuer })
  const impostorJwks = await impostor.admin.as('').request('GET', '/openid/v1/jwks', undefined, undefined, '*/*')
  t.match(impostorJwks.body, { keys: [{ kty: 'EC', alg: 'ES256' }] }, 'a key of its own')
})

for (const c of cases) {
  t.test(c.name, async t => {
    const { namespace } = c
    await cluster.createNamespace(namespace)
    const federation: Federation = {
      issuer: cluster.issuer,
      email: federationEmail,
      audience: defaults.audience,
      subject: exampleSubject(namespace),
      ...c.federation,
    }
    const fake = await startFakeStackit(stackitTls, { federation: { federation, issuerCa: cluster.caPem } })
    t.teardown(() => fake.close())
    // The ServiceAccount names the fake as token endpoint, so the webhook injects STACKIT_IDP_TOKEN_ENDPOINT.
    await api.create(exampleServiceAccount(namespace, { ...c.annotations, [keys.idpTokenEndpoint]: fake.tokenUrl }))
    const podName = `${exampleAccountName}-e2e`
    const stored = await api.create(examplePod(namespace, podName))

    // --- the kubelet's part ---
    const root = await mkdtemp(join(cluster.dir, `${namespace}-root-`))
    const mounted = await mountWorkloadIdentity(api, { namespace, pod: podName, root })
    t.match(
      mounted.tokenRequestSpec,
      {
        audiences: [c.token.audience],
        expirationSeconds: c.token.expirationSeconds,
        boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: podName, uid: at(stored, 'metadata', 'uid') },
      },
      "the TokenRequest carries the injected volume's audience and expiration, bound to the Pod",
    )
    t.equal(mounted.tokenFile, join(root, c.token.file), 'written where the container reads it')
    t.equal(mounted.env[envNames.federatedTokenFile], join(root, c.token.file), 'the env names that file')
    t.equal(mounted.env[envNames.idpTokenEndpoint], fake.tokenUrl, 'the webhook injected the token endpoint')
    const real = claimsOf(mounted.token)
    t.match(real, {
      iss: cluster.issuer,
      sub: exampleSubject(namespace),
      aud: [c.token.audience],
      'kubernetes.io': { namespace, pod: { name: podName, uid: at(stored, 'metadata', 'uid') } },
    })
    t.equal(Number(own(real, 'exp')) - Number(own(real, 'iat')), c.token.expirationSeconds, 'lives as requested')

    let assertion = mounted.token
    if (c.swapToken === 'impostor') assertion = await impostorToken(impostor, namespace, c.token.audience)
    if (c.swapToken === 'resigned') {
      const kid = own(headerOf(mounted.token), 'kid')
      assertion = signJwt(real, makeSigningKey('RS256'), { kid })
    }
    if (assertion !== mounted.token) await writeFile(mounted.tokenFile, assertion)

    // --- the example app, as the container would start it ---
    const env = { ...mounted.env, STACKIT_SKE_ENDPOINT: fake.base, NODE_EXTRA_CA_CERTS: stackitCa.certFile }
    const run = await runExampleAppProcess(env, join(cluster.dir, `${namespace}-app.log`))
    t.equal(fake.tokenRequests.length, 1, 'one exchange')
    t.equal(fake.tokenRequests[0]?.form.get('client_assertion'), assertion, 'the app sent the mounted token')
    t.equal(fake.tokenRequests[0]?.form.get('client_id'), c.annotations[keys.email], "the ServiceAccount's e-mail")
    const seen = fake.assertions[0]
    t.equal(seen?.claims?.iss, cluster.issuer, 'the endpoint saw the issuer')
    t.equal(seen?.claims?.sub, exampleSubject(namespace), 'the endpoint saw the ServiceAccount as sub')
    t.same(seen?.claims?.aud, [c.token.audience], "the endpoint saw the ServiceAccount's audience")
    const msgs = run.lines.map(l => l['msg'])
    t.match(run.lines[0], { msg: 'fetching SKE provider options', endpoint: fake.base }, 'SKE from the env')
    if (run.exitCode !== (c.expected.accepted ? 0 : 1)) t.comment(run.output)
    if (c.expected.accepted) {
      t.match(seen, { accepted: true, alg: 'RS256' }, 'the federation accepted the token')
      t.equal(run.exitCode, 0, 'the app exits 0')
      t.same(msgs, ['fetching SKE provider options', 'authenticated; SKE provider options received'])
      t.match(run.lines[1], { level: 'info', kubernetesVersions: defaultVersions.join(',') })
      t.equal(fake.skeRequests.length, 1, 'SKE was called with the access token')
    } else {
      const { error, status, description } = c.expected
      t.match(seen, { accepted: false, error, description }, 'the federation refused the token')
      t.equal(run.exitCode, 1, 'the app exits 1')
      t.same(msgs, ['fetching SKE provider options', 'authentication failed'])
      // The README's line for a federation mismatch: `authentication failed` with `… answered HTTP 400/401: …`.
      t.match(run.lines[1], {
        level: 'error',
        code: 'TOKEN_EXCHANGE',
        error: new RegExp(`^token endpoint ${fake.tokenUrl} answered HTTP ${status}: .*"${error}"`),
      })
      t.equal(fake.skeRequests.length, 0, 'SKE was never called')
    }
  })
}
