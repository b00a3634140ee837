import t from 'tap'
import { readFileSync } from 'node:fs'
import jsonpatch from 'fast-json-patch'
import { admit, parseReview, reviewResponse } from '../../lib/admission/admission-review.js'
import { decidePod, viewPod, type PodDecision } from '../../lib/admission/pod-decision.js'
import { auditKey } from '../../lib/names.js'
import { StaticServiceAccountSource, serviceAccountsFromDocument } from '../../lib/admission/offline-source.js'
import type { ServiceAccount, ServiceAccountSource } from '../../lib/admission/serviceaccount.js'
import { WebhookError } from '../../lib/errors.js'
import type { JsonObject } from '../../lib/json.js'
import { fixturePath } from '../helpers/paths.js'

const fixture = (name: string): JsonObject => JSON.parse(readFileSync(fixturePath(name), 'utf8')) as JsonObject
const referenceSource = new StaticServiceAccountSource(
  serviceAccountsFromDocument(fixture('reference/serviceaccounts.json'), 'fixture'),
)

type Response = {
  uid: string
  allowed: boolean
  patchType?: string
  patch?: string
  warnings?: string[]
  status?: { code: number; message: string }
  auditAnnotations?: Record<string, string>
}
const responseOf = (text: string): Response => (JSON.parse(text) as { response: Response }).response
const decodePatch = (r: Response): jsonpatch.Operation[] =>
  JSON.parse(Buffer.from(r.patch ?? '', 'base64').toString()) as jsonpatch.Operation[]
const applyTo = (review: JsonObject, r: Response): JsonObject =>
  jsonpatch.applyPatch(structuredClone((review['request'] as JsonObject)['object']), decodePatch(r), true, false)
    .newDocument as JsonObject

t.test("the reference webhook's six integration cases", async t => {
  type Row = [fixture: string, check: (r: Response, pod: JsonObject) => void]
  const envOf = (pod: JsonObject): Record<string, string> =>
    Object.fromEntries(((pod as any).spec.containers[0].env ?? []).map((e: any) => [e.name, e.value]))
  const rows: Row[] = [
    [
      'injection',
      (r, pod: any) => {
        t.equal(r.allowed, true)
        t.same(pod.spec.volumes, [
          {
            name: 'stackit-workload-identity',
            projected: {
              sources: [
                { serviceAccountToken: { audience: 'custom-audience', expirationSeconds: 1200, path: 'token' } },
              ],
            },
          },
        ])
        t.same(pod.spec.containers[0].volumeMounts, [
          { name: 'stackit-workload-identity', mountPath: '/custom/path', readOnly: true },
        ])
        t.same(envOf(pod), {
          STACKIT_SERVICE_ACCOUNT_EMAIL: 'test-sa@stackit.cloud',
          STACKIT_IDP_TOKEN_ENDPOINT: 'https://custom-idp.stackit.cloud',
          STACKIT_FEDERATED_TOKEN_FILE: '/custom/path/token',
        })
        t.same(r.auditAnnotations, { 'injected-service-account-email': 'test-sa@stackit.cloud' })
      },
    ],
    [
      'bare-bones',
      (r, pod: any) => {
        t.equal(r.patchType, 'JSONPatch')
        t.same(pod.spec.volumes[0].projected.sources[0].serviceAccountToken, {
          audience: 'sts.accounts.stackit.cloud',
          expirationSeconds: 600,
          path: 'token',
        })
        t.equal(pod.spec.containers[0].volumeMounts[0].mountPath, '/var/run/secrets/stackit.cloud/serviceaccount')
        t.same(envOf(pod), { STACKIT_SERVICE_ACCOUNT_EMAIL: 'test-sa@stackit.cloud' })
      },
    ],
    [
      'invalid-expiration',
      r => {
        t.equal(r.allowed, false)
        t.equal(r.status?.code, 403)
        t.match(r.status?.message, /"not-a-number"/)
        t.equal(r.patch, undefined)
      },
    ],
    ['no-annotation', r => t.same(r, { uid: r.uid, allowed: true })],
    ['skip-pod', r => t.same(r, { uid: r.uid, allowed: true })],
    ['skip-sa', r => t.same(r, { uid: r.uid, allowed: true })],
  ]
  for (const [name, check] of rows) {
    const review = fixture(`reference/${name}.json`)
    const { response } = await admit(parseReview(review), referenceSource)
    const doc = JSON.parse(response) as JsonObject
    t.equal(doc['apiVersion'], 'admission.k8s.io/v1', `${name}: apiVersion echoed`)
    t.equal(doc['kind'], 'AdmissionReview')
    t.same(Object.keys(doc), ['apiVersion', 'kind', 'response'], `${name}: nothing else at the top`)
    const r = responseOf(response)
    t.equal(r.uid, (review['request'] as JsonObject)['uid'], `${name}: uid echoed`)
    t.equal(r.patch === undefined, r.patchType === undefined, `${name}: patch and patchType together`)
    check(r, r.patch ? applyTo(review, r) : {})
  }
})

t.test('a Deployment-made Pod: generateName, no namespace in the object, API server token volume kept', async t => {
  const source = new StaticServiceAccountSource(serviceAccountsFromDocument(fixture('serviceaccounts.json'), 'fixture'))
  const review = fixture('admission-review-deployment-pod.json')
  const { response, summary } = await admit(parseReview(review), source)
  const r = responseOf(response)
  t.equal(r.allowed, true)
  t.same(summary, {
    uid: r.uid,
    resource: 'pods',
    outcome: 'mutated',
    namespace: 'team-a',
    pod: 'web-7d9f8c-',
    serviceAccount: 'app-sa',
  })
  const ops = decodePatch(r)
  t.notOk(
    ops.some(op => op.op === 'remove' || op.path === '/spec/containers' || op.path === '/spec/initContainers'),
    'no remove, no whole-list replacement',
  )
  const pod: any = applyTo(review, r)
  t.equal(pod.spec.volumes[0].name, 'kube-api-access-x')
  t.equal(pod.spec.volumes.length, 2)
  t.equal(pod.spec.initContainers[0].volumeMounts.length, 2)
  t.same(pod.spec.containers[0].env[0], { name: 'LOG_LEVEL', value: 'info' })
  const again = await admit(
    parseReview({ ...review, request: { ...(review['request'] as JsonObject), object: pod } }),
    source,
  )
  t.same(responseOf(again.response), { uid: r.uid, allowed: true }, 'reviewing our own output yields no patch')
  t.equal(again.summary.reason, 'already injected')
})

t.test('envelope validation → BAD_REVIEW naming the problem', async t => {
  const good = fixture('reference/bare-bones.json')
  const req = good['request'] as JsonObject
  const rows: [name: string, body: unknown, message: RegExp][] = [
    ['not an object', [1], /must be a JSON object/],
    ['null', null, /must be a JSON object/],
    ['unknown apiVersion', { ...good, apiVersion: 'admission.k8s.io/v2' }, /apiVersion must be one of/],
    ['wrong kind', { ...good, kind: 'Pod' }, /kind must be AdmissionReview/],
    ['no request', { apiVersion: good['apiVersion'], kind: 'AdmissionReview' }, /request must be an object/],
    ['uid missing', { ...good, request: { ...req, uid: undefined } }, /request.uid/],
    ['uid empty', { ...good, request: { ...req, uid: '' } }, /request.uid/],
    ['uid with a newline', { ...good, request: { ...req, uid: 'a\nb' } }, /request.uid/],
    ['uid too long', { ...good, request: { ...req, uid: 'u'.repeat(129) } }, /request.uid/],
    ['uid a number', { ...good, request: { ...req, uid: 7 } }, /request.uid/],
  ]
  for (const [name, body, message] of rows) t.throws(() => parseReview(body), { code: 'BAD_REVIEW', message }, name)
  t.equal(
    parseReview({ ...good, apiVersion: 'admission.k8s.io/v1beta1' }).apiVersion,
    'admission.k8s.io/v1beta1',
    'v1beta1 accepted',
  )
})

t.test('only CREATE of core/v1 Pods is mutated', async t => {
  const good = fixture('reference/bare-bones.json')
  const req = good['request'] as JsonObject
  const rows: [name: string, request: JsonObject][] = [
    ['UPDATE', { ...req, operation: 'UPDATE' }],
    ['DELETE', { ...req, operation: 'DELETE' }],
    ['another kind', { ...req, kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }],
    ['Pod of another group', { ...req, kind: { group: 'x.io', version: 'v1', kind: 'Pod' } }],
    ['kind missing', { ...req, kind: undefined }],
    ['binding subresource', { ...req, kind: { group: '', version: 'v1', kind: 'Binding' }, subResource: 'binding' }],
  ]
  for (const [name, request] of rows) {
    const { response, summary } = await admit(parseReview({ ...good, request }), referenceSource)
    t.same(responseOf(response), { uid: req['uid'], allowed: true }, name)
    t.equal(summary.reason, 'not a Pod CREATE', name)
  }
})

t.test('denials inside a well-formed review', async t => {
  const good = fixture('reference/bare-bones.json')
  const req = good['request'] as JsonObject
  const failing: ServiceAccountSource = {
    get: () =>
      Promise.reject(
        new WebhookError(
          'SERVICEACCOUNT_LOOKUP_FAILED',
          'ServiceAccount default/test-sa-bare-bones could not be looked up: timeout after 2s',
        ),
      ),
    ready: () => true,
  }
  const crashing: ServiceAccountSource = { get: () => Promise.reject(new Error('boom secret')), ready: () => true }
  const kubeError: ServiceAccountSource = {
    get: () => Promise.reject(new WebhookError('KUBE_API', 'GET …: HTTP 500')),
    ready: () => true,
  }
  const rows: [name: string, request: JsonObject, source: ServiceAccountSource, code: number, message: RegExp][] = [
    ['no namespace', { ...req, namespace: undefined }, referenceSource, 400, /request.namespace must be set/],
    ['object not a Pod', { ...req, object: 'x' }, referenceSource, 400, /request.object must be a Pod object/],
    [
      'Pod without spec',
      { ...req, object: { kind: 'Pod', metadata: {} } },
      referenceSource,
      400,
      /Pod spec must be an object/,
    ],
    [
      'malformed Pod',
      { ...req, object: { kind: 'Pod', spec: { serviceAccountName: 'test-sa-bare-bones', containers: 3 } } },
      referenceSource,
      400,
      /spec.containers must be a list/,
    ],
    [
      'ServiceAccount missing',
      { ...req, object: { kind: 'Pod', spec: { serviceAccountName: 'ghost', containers: [] } } },
      referenceSource,
      403,
      /ServiceAccount default\/ghost not found/,
    ],
    ['lookup failed', req, failing, 403, /could not be looked up: timeout after 2s/],
    [
      'lookup failed with another code',
      req,
      kubeError,
      403,
      /test-sa-bare-bones could not be looked up: GET …: HTTP 500$/,
    ],
    [
      'lookup crashed',
      req,
      crashing,
      403,
      /ServiceAccount default\/test-sa-bare-bones could not be looked up: unexpected lookup error$/,
    ],
  ]
  for (const [name, request, source, code, message] of rows) {
    const { response, summary } = await admit(parseReview({ ...good, request }), source)
    const r = responseOf(response)
    t.equal(r.allowed, false, name)
    t.equal(r.status?.code, code, name)
    t.match(r.status?.message, message, name)
    t.equal(summary.outcome, 'denied', name)
  }
})

t.test('warnings are capped and bounded', async t => {
  const sa: ServiceAccount = {
    namespace: 'ns',
    name: 'default',
    annotations: new Map([['workload-identity.stackit.cloud/service-account-email', 'a@b.cd']]),
  }
  const containers = Array.from({ length: 15 }, (_, i) => ({
    name: `c${i}`,
    env: [{ name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: 'x' }],
  }))
  const decision = decidePod(viewPod({ spec: { containers } }), 'ns', sa)
  t.equal(decision.outcome, 'mutated')
  t.equal(decision.warnings.length, 15)
  const doc = reviewResponse({ apiVersion: 'admission.k8s.io/v1', uid: 'u', request: {} }, decision)
  const w = responseOf(doc).warnings ?? []
  t.equal(w.length, 10)
  t.equal(w[9], 'and 6 more warnings')
  t.ok(w.every(x => x.length < 120))
})

const emailKey = 'workload-identity.stackit.cloud/service-account-email'

t.test('an empty service-account-email: allowed untouched, the warning reaches the response', async t => {
  const source = new StaticServiceAccountSource([
    {
      namespace: 'ns',
      name: 'templated',
      annotations: new Map([
        [emailKey, ''],
        ['workload-identity.stackit.cloud/audience', ''],
      ]),
    },
  ])
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u-1',
      operation: 'CREATE',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: 'ns',
      object: { metadata: { name: 'p' }, spec: { serviceAccountName: 'templated', containers: [{ name: 'app' }] } },
    },
  }
  const { response, summary } = await admit(parseReview(review), source)
  const warning = 'ServiceAccount ns/templated annotation service-account-email is empty: treated as absent'
  t.same(responseOf(response), { uid: 'u-1', allowed: true, warnings: [warning] })
  t.equal(summary.outcome, 'skipped')
})

t.test('the response text is JSON for every kind of decision, whatever the uid holds', async t => {
  const uid = 'a"b\\c</script>'
  const review = { apiVersion: 'admission.k8s.io/v1beta1', uid, request: {} }
  const decisions: PodDecision[] = [
    { outcome: 'skipped', reason: 'x', warnings: ['say "hi"\n'] },
    { outcome: 'denied', error: new WebhookError('CONFLICT', 'quote " backslash \\ newline \n'), warnings: [] },
    {
      outcome: 'mutated',
      pod: {},
      patch: [{ op: 'add', path: '/a~1b', value: { s: '"\u2028' } }],
      email: 'e"@x.y',
      warnings: [],
    },
  ]
  for (const d of decisions) {
    const doc = JSON.parse(reviewResponse(review, d)) as {
      apiVersion: string
      kind: string
      response: Response & { status?: unknown; auditAnnotations?: unknown }
    }
    t.equal(doc.apiVersion, 'admission.k8s.io/v1beta1', `${d.outcome}: version echoed`)
    t.equal(doc.kind, 'AdmissionReview')
    t.equal(doc.response.uid, uid, `${d.outcome}: uid echoed exactly`)
    t.equal(doc.response.allowed, d.outcome !== 'denied')
    if (d.outcome === 'skipped') t.same(doc.response.warnings, ['say "hi"\n'])
    if (d.outcome === 'denied') t.same(doc.response.status, { code: 403, message: d.error.message })
    if (d.outcome === 'mutated') {
      t.same(JSON.parse(Buffer.from(doc.response.patch ?? '', 'base64').toString('utf8')), d.patch, 'patch round-trips')
      t.same(doc.response.auditAnnotations, { [auditKey]: 'e"@x.y' })
    }
  }
})
