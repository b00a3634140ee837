import t from 'tap'
import { admitServiceAccount, parseReview } from '../../lib/admission/admission-review.js'
import {
  decideServiceAccount,
  judgeServiceAccount,
  reviewServiceAccount,
} from '../../lib/admission/serviceaccount-review.js'
import type { ServiceAccount } from '../../lib/admission/serviceaccount.js'
import type { JsonObject } from '../../lib/json.js'
import { email, invalidAnnotationCases, ours } from '../helpers/annotation-cases.js'

const P = 'workload-identity.stackit.cloud/'
const sa = (annotations: Record<string, string>): ServiceAccount => ({
  namespace: 'team-a',
  name: 'app',
  annotations: new Map(Object.entries(annotations).map(([k, v]) => [P + k, v])),
})

t.test('CREATE: the Pod admission table, addressed to the ServiceAccount', async t => {
  const cases = invalidAnnotationCases.filter(
    ([, , pod, , labels]) => Object.keys(pod).length === 0 && Object.keys(labels ?? {}).length === 0,
  )
  t.ok(cases.length >= 15, `${cases.length} ServiceAccount-only cases of the shared table`)
  for (const [name, annotations, , messages] of cases) {
    const d = decideServiceAccount(sa(annotations))
    t.equal(d.outcome, 'denied', `${name}: denied`)
    const message = d.outcome === 'denied' ? d.error.message : ''
    t.equal(d.outcome === 'denied' ? d.error.code : undefined, 'INVALID_ANNOTATION', `${name}: code`)
    for (const m of messages) t.match(message, m, name)
    t.match(message, /^ServiceAccount team-a\/app annotation /, `${name}: names the ServiceAccount`)
    t.match(message, /Fix the annotations? and apply the ServiceAccount again\.$/, `${name}: says how to fix it`)
  }
})

t.test('CREATE: allowed, and what it warns about', async t => {
  type Row = [name: string, annotations: Record<string, string>, warnings: string[]]
  const rows: Row[] = [
    ['not ours: no annotations', {}, []],
    ['valid', ours({ audience: 'a', 'service-account-token-expiration-seconds': '3600' }), []],
    [
      'a typo in a key',
      ours({ 'service-acount-email': email }),
      [
        'ServiceAccount team-a/app annotation "service-acount-email" is an unknown key; ' +
          'did you mean service-account-email?',
      ],
    ],
    [
      'optional annotations without the e-mail',
      { audience: 'a', 'federated-token-file': '/x/token' },
      ['ServiceAccount team-a/app: audience, federated-token-file have no effect without service-account-email'],
    ],
    [
      'one optional annotation and an empty e-mail',
      { 'service-account-email': '', audience: 'not judged ' },
      [
        'ServiceAccount team-a/app annotation service-account-email is empty: treated as absent',
        'ServiceAccount team-a/app: audience has no effect without service-account-email',
      ],
    ],
    [
      'an empty optional value',
      ours({ audience: '' }),
      ['ServiceAccount team-a/app annotation audience is empty: treated as absent'],
    ],
    ['opted out: the rest is not judged', ours({ 'skip-pod-identity-webhook': 'true', audience: ' ' }), []],
  ]
  for (const [name, annotations, warnings] of rows) {
    const d = decideServiceAccount(sa(annotations))
    t.same(d, { outcome: 'allowed', warnings }, name)
    t.ok(
      d.warnings.every(w => w.length < 120),
      `${name}: warnings fit a header`,
    )
  }
})

t.test('UPDATE: denied only when it adds or changes a broken annotation', async t => {
  const broken = ours({ audience: ' x' })
  type Row = [name: string, before: Record<string, string>, after: Record<string, string>, outcome: string]
  const rows: Row[] = [
    ['another field changed, broken annotation kept', broken, broken, 'allowed'],
    ['a broken annotation added', ours(), broken, 'denied'],
    ['a valid annotation changed to a broken value', ours({ audience: 'a' }), broken, 'denied'],
    ['a broken annotation changed to another broken value', broken, ours({ audience: ' y' }), 'denied'],
    ['a broken annotation fixed', broken, ours({ audience: 'x' }), 'allowed'],
    ['the e-mail added to a ServiceAccount whose other annotation was broken', { audience: ' x' }, broken, 'denied'],
    ['a second broken one added next to a kept one', broken, { ...broken, 'federated-token-file': 'rel' }, 'denied'],
  ]
  for (const [name, before, after, outcome] of rows) {
    const d = decideServiceAccount(sa(after), sa(before))
    t.equal(d.outcome, outcome, name)
  }
  const kept = decideServiceAccount(sa(broken), sa(broken))
  t.equal(kept.warnings.length, 1, 'a kept broken annotation is warned about')
  t.equal(kept.warnings[0], 'audience=" x" is broken and kept by this update; Pods using it are denied')
  const longest = decideServiceAccount(
    sa(ours({ 'service-account-token-expiration-seconds': 'x'.repeat(50) })),
    sa(ours({ 'service-account-token-expiration-seconds': 'x'.repeat(50) })),
  )
  t.match(
    longest.warnings[0],
    /^service-account-token-expiration-seconds="x{12}…" is broken .* are denied$/,
    'the longest key fits whole',
  )
  t.ok(kept.warnings[0] && kept.warnings[0].length < 120, 'and the warning fits a header')
  const both = decideServiceAccount(sa({ ...broken, 'federated-token-file': 'rel' }), sa(broken))
  t.match(
    both.outcome === 'denied' ? both.error.message : '',
    /audience=" x".*; .*federated-token-file="rel"/,
    'the denial names every broken annotation',
  )
  t.same(
    judgeServiceAccount(sa(broken)).problems.map(p => p.key),
    [`${P}audience`],
    'problems carry the key',
  )
})

const request = (over: JsonObject): JsonObject => ({
  uid: 'u-1',
  kind: { group: '', version: 'v1', kind: 'ServiceAccount' },
  operation: 'CREATE',
  namespace: 'team-a',
  name: 'app',
  object: { metadata: { name: 'app', annotations: { [`${P}audience`]: ' x', [`${P}service-account-email`]: email } } },
  ...over,
})

t.test('the review: which requests are judged, and the names taken from them', async t => {
  type Row = [name: string, request: JsonObject, outcome: string, detail?: RegExp]
  const rows: Row[] = [
    ['CREATE with a broken annotation', request({}), 'denied', /audience=" x"/],
    ['DELETE', request({ operation: 'DELETE' }), 'skipped'],
    ['a Pod', request({ kind: { group: '', version: 'v1', kind: 'Pod' } }), 'skipped'],
    ['another group', request({ kind: { group: 'x.io', version: 'v1', kind: 'ServiceAccount' } }), 'skipped'],
    ['no namespace', request({ namespace: '' }), 'denied', /request.namespace must be set/],
    ['no object', request({ object: 'x' }), 'denied', /request.object must be a ServiceAccount object/],
    [
      'UPDATE keeping the broken annotation',
      request({ operation: 'UPDATE', oldObject: request({})['object'] as JsonObject }),
      'allowed',
    ],
    ['UPDATE without an old object is judged as written', request({ operation: 'UPDATE' }), 'denied', /audience/],
    ['generateName, no name', request({ name: '', object: { metadata: { generateName: 'gen-' } } }), 'allowed'],
  ]
  for (const [name, r, outcome, detail] of rows) {
    const { decision } = reviewServiceAccount(r)
    t.equal(decision.outcome, outcome, name)
    if (detail) t.match(decision.outcome === 'denied' ? decision.error.message : '', detail, name)
  }
  t.equal(reviewServiceAccount(request({ name: '', object: { metadata: { generateName: 'gen-' } } })).name, 'gen-')
  t.equal(reviewServiceAccount(request({ name: undefined })).name, 'app', 'the name from the object')
  t.equal(reviewServiceAccount(request({ name: undefined, object: {} })).name, '', 'no name anywhere: empty')
})

t.test('admitServiceAccount: the answer and the summary', async t => {
  const review = parseReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: request({}) })
  const { response, summary } = admitServiceAccount(review)
  const answer = (JSON.parse(response) as { response: { allowed: boolean; status: { code: number; message: string } } })
    .response
  t.equal(answer.allowed, false)
  t.equal(answer.status.code, 403)
  t.match(answer.status.message, /apply the ServiceAccount again\.$/)
  t.same(summary, {
    uid: 'u-1',
    resource: 'serviceaccounts',
    outcome: 'denied',
    namespace: 'team-a',
    serviceAccount: 'app',
    reason: 'INVALID_ANNOTATION',
  })
  const skipped = admitServiceAccount(
    parseReview({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: request({ operation: 'DELETE' }),
    }),
  )
  t.same(skipped.summary, {
    uid: 'u-1',
    resource: 'serviceaccounts',
    outcome: 'skipped',
    reason: 'not a ServiceAccount CREATE or UPDATE',
  })
  t.same(JSON.parse(skipped.response).response, { uid: 'u-1', allowed: true })
})
