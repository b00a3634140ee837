/**
 * The AdmissionReview envelope: proves the shape of an untrusted review, hands a Pod CREATE to the Pod decision
 * (pod-decision.ts) or a ServiceAccount write to its decision (serviceaccount-review.ts), and builds the response
 * document.
 */
import { WebhookError } from '../errors.js'
import { isObject, isString, own, type JsonObject } from '../json.js'
import { auditKey } from '../names.js'
import { boundWarning } from './mutate-pod.js'
import { reviewPod, viewPod, type PodDecision } from './pod-decision.js'
import type { ServiceAccountSource } from './serviceaccount.js'
import { reviewServiceAccount, type ServiceAccountDecision } from './serviceaccount-review.js'

/** What became of the object of a review: a Pod's decision or a ServiceAccount write's. */
export type Decision = PodDecision | ServiceAccountDecision

/** The resource an endpoint reviews, as metrics and logs name it. */
export type Resource = 'pods' | 'serviceaccounts'

/** AdmissionReview API versions the API server may send (it sends the first one our configuration lists). */
const reviewVersions = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const

/** Identifiers of a review for the one log line it gets. Never documents, never values. */
export interface ReviewSummary {
  readonly uid: string
  readonly resource: Resource
  readonly namespace?: string
  readonly pod?: string
  readonly serviceAccount?: string
  readonly outcome: Decision['outcome']
  readonly reason?: string
}

/** At most this many warnings per review; Kubernetes turns each into a response header. */
const maxWarnings = 10

const capWarnings = (w: readonly string[]): string[] =>
  w.length <= maxWarnings
    ? [...w]
    : [...w.slice(0, maxWarnings - 1), boundWarning(`and ${w.length - maxWarnings + 1} more warnings`)]

/** A review whose envelope has been proven: version, uid and the request object. */
export interface ParsedReview {
  readonly apiVersion: string
  readonly uid: string
  readonly request: JsonObject
}

// UIDs are UUIDs in practice; accept any short printable token so the echo and the log line stay bounded.
const uidPattern = /^[\x21-\x7e]{1,128}$/

/** Proves that `body` is an AdmissionReview with a request uid; throws BAD_REVIEW saying what is missing. */
export const parseReview = (body: unknown): ParsedReview => {
  const bad = (why: string): never => {
    throw new WebhookError('BAD_REVIEW', `not an AdmissionReview: ${why}`)
  }
  if (!isObject(body)) return bad('the body must be a JSON object')
  const apiVersion = own(body, 'apiVersion')
  if (!isString(apiVersion) || !(reviewVersions as readonly string[]).includes(apiVersion)) {
    return bad(`apiVersion must be one of ${reviewVersions.join(', ')}`)
  }
  if (own(body, 'kind') !== 'AdmissionReview') return bad('kind must be AdmissionReview')
  const request = own(body, 'request')
  if (!isObject(request)) return bad('request must be an object')
  const uid = own(request, 'uid')
  if (!isString(uid) || !uidPattern.test(uid))
    return bad('request.uid must be a non-empty printable string of at most 128 characters')
  return { apiVersion, uid, request }
}

/** True when the request is the CREATE of a core/v1 Pod, the only thing this webhook mutates. */
const isPodCreate = (request: JsonObject): boolean => {
  const kind = own(request, 'kind')
  return (
    own(request, 'operation') === 'CREATE' &&
    isObject(kind) &&
    own(kind, 'group') === '' &&
    own(kind, 'version') === 'v1' &&
    own(kind, 'kind') === 'Pod'
  )
}

/**
 * The AdmissionReview response for a decision, as JSON text. Built piece by piece so the base64 patch, which holds
 * only JSON-safe characters, is not scanned again by JSON.stringify: on a typical review that scan costs as much
 * as building the rest of the answer.
 */
export const reviewResponse = (review: ParsedReview, decision: Decision): string => {
  let text =
    `{"apiVersion":${JSON.stringify(review.apiVersion)},"kind":"AdmissionReview",` +
    `"response":{"uid":${JSON.stringify(review.uid)},"allowed":${decision.outcome !== 'denied'}`
  if (decision.outcome === 'mutated') {
    const patch = Buffer.from(JSON.stringify(decision.patch)).toString('base64')
    const audit = JSON.stringify({ [auditKey]: decision.email })
    text += `,"patchType":"JSONPatch","patch":"${patch}","auditAnnotations":${audit}`
  }
  if (decision.outcome === 'denied')
    text += `,"status":${JSON.stringify({ code: decision.error.status, message: decision.error.message })}`
  if (decision.warnings.length > 0) text += `,"warnings":${JSON.stringify(capWarnings(decision.warnings))}`
  return `${text}}}`
}

/** The result of one admission: the response (JSON text), the decision behind it, and the summary to log. */
export interface Admission {
  readonly response: string
  readonly decision: Decision
  readonly summary: ReviewSummary
}

/** Why a decision was reached, for the log line: a skip's reason or a denial's code. */
const reasonOf = (decision: Decision): { reason?: string } =>
  decision.outcome === 'skipped'
    ? { reason: decision.reason }
    : decision.outcome === 'denied'
      ? { reason: decision.error.code }
      : {}

/** The admission step of the ServiceAccount endpoint: a CREATE or UPDATE is judged, anything else allowed. */
export const admitServiceAccount = (review: ParsedReview): Admission => {
  const { decision, namespace, name } = reviewServiceAccount(review.request)
  const summary: ReviewSummary = {
    uid: review.uid,
    resource: 'serviceaccounts',
    outcome: decision.outcome,
    ...(namespace === undefined ? {} : { namespace }),
    ...(name === undefined ? {} : { serviceAccount: name }),
    ...reasonOf(decision),
  }
  return { response: reviewResponse(review, decision), decision, summary }
}

/**
 * The whole admission step for a parsed review: anything other than a Pod CREATE is allowed untouched;
 * a Pod CREATE is reviewed.
 */
export const admit = async (review: ParsedReview, source: ServiceAccountSource): Promise<Admission> => {
  const { request, uid } = review
  const namespace = own(request, 'namespace')
  if (!isPodCreate(request)) {
    const decision: PodDecision = { outcome: 'skipped', reason: 'not a Pod CREATE', warnings: [] }
    return {
      response: reviewResponse(review, decision),
      decision,
      summary: { uid, resource: 'pods', outcome: 'skipped', reason: decision.reason },
    }
  }
  const pod = own(request, 'object')
  let decision: PodDecision
  let view: ReturnType<typeof viewPod> | undefined
  if (!isString(namespace) || namespace === '') {
    decision = {
      outcome: 'denied',
      error: new WebhookError('BAD_REVIEW', 'request.namespace must be set on a Pod CREATE'),
      warnings: [],
    }
  } else if (!isObject(pod)) {
    decision = {
      outcome: 'denied',
      error: new WebhookError('BAD_POD', 'request.object must be a Pod object'),
      warnings: [],
    }
  } else {
    view = viewPod(pod)
    decision = await reviewPod(view, namespace, source)
  }
  const summary: ReviewSummary = {
    uid,
    resource: 'pods',
    outcome: decision.outcome,
    ...(isString(namespace) ? { namespace } : {}),
    ...(view ? { pod: view.name, serviceAccount: view.serviceAccount } : {}),
    ...reasonOf(decision),
  }
  return { response: reviewResponse(review, decision), decision, summary }
}
