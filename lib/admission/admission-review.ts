/**
 * AdmissionReview handling: proves the shape of an untrusted review, decides what to do with its Pod, and
 * builds the response document. The only I/O is the ServiceAccount lookup, passed in as a source.
 */
import jsonpatch from 'fast-json-patch'
import type { Operation } from 'fast-json-patch'
import { WebhookError, isWebhookError } from '../errors.js'
import { isObject, isString, own, quote, type JsonObject } from '../json.js'
import { auditKey } from '../names.js'
import { podOptsOut, resolveIdentity, skippedContainers } from './identity-config.js'
import { boundWarning, maxWarningLength, mutatePod } from './mutate-pod.js'
import { prefixedAnnotations, type ServiceAccount, type ServiceAccountSource } from './serviceaccount.js'

/** AdmissionReview API versions the API server may send (it sends the first one our configuration lists). */
const reviewVersions = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const

/** What became of a Pod. */
export type PodDecision =
  | { readonly outcome: 'skipped'; readonly reason: string; readonly warnings: readonly string[] }
  | {
    readonly outcome: 'mutated'
    readonly pod: JsonObject
    readonly patch: readonly Operation[]
    readonly email: string
    readonly warnings: readonly string[]
  }
  | { readonly outcome: 'denied'; readonly error: WebhookError; readonly warnings: readonly string[] }

/** Identifiers of a review for the one log line it gets. Never documents, never values. */
export interface ReviewSummary {
  readonly uid: string
  readonly namespace?: string
  readonly pod?: string
  readonly serviceAccount?: string
  readonly outcome: PodDecision['outcome']
  readonly reason?: string
}

const noWarnings: readonly string[] = []

/** At most this many warnings per review; Kubernetes turns each into a response header. */
const maxWarnings = 10

const capWarnings = (w: readonly string[]): string[] =>
  w.length <= maxWarnings ? [...w] : [...w.slice(0, maxWarnings - 1), boundWarning(`and ${w.length - maxWarnings + 1} more warnings`)]

/** A duration as Go prints one, to the whole second: `45s`, `2m10s`, `1h0m5s`. */
export const formatAge = (ms: number): string => {
  const total = Math.max(0, Math.floor(ms / 1000))
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`
}

/** The ServiceAccount a Pod runs as: serviceAccountName, else the deprecated serviceAccount, else `default`. */
export const serviceAccountName = (spec: unknown): string => {
  if (!isObject(spec)) return 'default'
  for (const field of ['serviceAccountName', 'serviceAccount']) {
    const v = own(spec, field)
    if (isString(v) && v !== '') return v
  }
  return 'default'
}

/** Pod name for messages and logs: metadata.name, else generateName, else empty. */
export const podName = (pod: JsonObject): string => {
  const meta = own(pod, 'metadata')
  if (!isObject(meta)) return ''
  const name = own(meta, 'name')
  if (isString(name) && name !== '') return name
  const gen = own(meta, 'generateName')
  return isString(gen) ? gen : ''
}

const podMeta = (pod: JsonObject): { labels: ReadonlyMap<string, string>; annotations: ReadonlyMap<string, string> } => {
  const metadata = own(pod, 'metadata')
  const meta = isObject(metadata) ? metadata : {}
  // Only our keys are ever read, so nothing else (last-applied-configuration, say) is copied.
  return { labels: prefixedAnnotations(own(meta, 'labels')), annotations: prefixedAnnotations(own(meta, 'annotations')) }
}

/**
 * The Pod's own opt-out (label or annotation `skip-pod-identity-webhook: "true"`): a skip, or undefined when the
 * Pod does not opt out. Decided before any lookup, so an opted-out Pod never waits for, or is denied by, the API
 * server. Any other value is judged after the lookup, by {@link decidePod}.
 */
export const podOptOutDecision = (pod: JsonObject): PodDecision | undefined => {
  const { labels, annotations } = podMeta(pod)
  return podOptsOut(labels, annotations) ? { outcome: 'skipped', reason: 'Pod opted out', warnings: [] } : undefined
}

/**
 * The warning for an answer from a cached copy that may be behind (the ServiceAccount's `staleMs`), or none.
 * Bounded: a long name is cut, never the age and the reason after it.
 */
const staleWarnings = (sa: ServiceAccount): readonly string[] => {
  if (sa.staleMs === undefined) return noWarnings
  const tail = ` read from a copy ${formatAge(sa.staleMs)} old: the API server is unreachable`
  const ref = `ServiceAccount ${sa.namespace}/${sa.name}`
  const room = maxWarningLength - tail.length
  return [`${ref.length > room ? `${ref.slice(0, room - 1)}…` : ref}${tail}`]
}

/**
 * Decides what to do with a Pod once its ServiceAccount has been looked up (`undefined`: it does not exist).
 * Pure. Denials are returned, not thrown; a mutation carries the JSON Patch against the original. An answer from
 * a possibly stale copy is named in the first warning of an allowed Pod.
 */
export const decidePod = (pod: JsonObject, namespace: string, saName: string, sa: ServiceAccount | undefined): PodDecision => {
  const { labels, annotations } = podMeta(pod)
  let warnings: readonly string[] = []
  try {
    if (!sa) {
      throw new WebhookError('SERVICEACCOUNT_NOT_FOUND', `ServiceAccount ${namespace}/${saName} not found; create it before the Pod, or fix spec.serviceAccountName`)
    }
    const identity = resolveIdentity(sa, annotations, labels)
    warnings = identity.warnings.map(boundWarning)
    const stale = staleWarnings(sa)
    if (identity.kind === 'skip') {
      return { outcome: 'skipped', reason: identity.reason, warnings: [...stale, ...warnings] }
    }
    const result = mutatePod(pod, identity.config, skippedContainers(annotations))
    warnings = [...stale, ...warnings, ...result.warnings]
    if (!result.changed) {
      return { outcome: 'skipped', reason: result.injected === 0 ? 'all containers skipped' : 'already injected', warnings }
    }
    const patch = jsonpatch.compare(pod, result.pod)
    return { outcome: 'mutated', pod: result.pod, patch, email: identity.config.email, warnings }
  } catch (e) {
    /* c8 ignore next -- every throw above is a WebhookError; anything else is a bug that must surface */
    if (!isWebhookError(e)) throw e
    return { outcome: 'denied', error: e, warnings }
  }
}

// A ServiceAccount name is a DNS-1123 subdomain. Checked before it goes into an API path, where "." or ".." would
// address another object.
const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

/**
 * The whole decision for a Pod: its own opt-out, then its ServiceAccount through `source`, then
 * {@link decidePod}. A lookup that cannot complete denies (fail closed: a Pod must not start without its identity
 * by accident).
 */
export const reviewPod = async (pod: JsonObject, namespace: string, source: ServiceAccountSource): Promise<PodDecision> => {
  const spec = own(pod, 'spec')
  // No lookup for something that is not a Pod; the deeper shape is proven where it is used.
  if (!isObject(spec)) return { outcome: 'denied', error: new WebhookError('BAD_POD', 'Pod spec must be an object'), warnings: [] }
  const optOut = podOptOutDecision(pod)
  if (optOut) return optOut
  const saName = serviceAccountName(spec)
  if (saName.length > 253 || !dnsSubdomain.test(saName)) {
    return { outcome: 'denied', error: new WebhookError('BAD_POD', `Pod spec.serviceAccountName ${quote(saName)} is not a valid ServiceAccount name (a DNS subdomain such as "my-app")`), warnings: [] }
  }
  let sa: ServiceAccount | undefined
  try {
    sa = await source.get(namespace, saName)
  } catch (e) {
    const why = isWebhookError(e) ? e.message : 'unexpected lookup error'
    const error = isWebhookError(e, 'SERVICEACCOUNT_LOOKUP_FAILED') ? e
      : new WebhookError('SERVICEACCOUNT_LOOKUP_FAILED', `ServiceAccount ${namespace}/${saName} could not be looked up: ${why}`)
    return { outcome: 'denied', error, warnings: [] }
  }
  return decidePod(pod, namespace, saName, sa)
}

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
  if (!isString(uid) || !uidPattern.test(uid)) return bad('request.uid must be a non-empty printable string of at most 128 characters')
  return { apiVersion, uid, request }
}

/** True when the request is the CREATE of a core/v1 Pod, the only thing this webhook mutates. */
const isPodCreate = (request: JsonObject): boolean => {
  const kind = own(request, 'kind')
  return own(request, 'operation') === 'CREATE' && isObject(kind) &&
    own(kind, 'group') === '' && own(kind, 'version') === 'v1' && own(kind, 'kind') === 'Pod'
}

/**
 * The AdmissionReview response for a decision, as JSON text. Built piece by piece so the base64 patch, which holds
 * only JSON-safe characters, is not scanned again by JSON.stringify: on a typical review that scan costs as much
 * as building the rest of the answer.
 */
export const reviewResponse = (review: ParsedReview, decision: PodDecision): string => {
  let text = `{"apiVersion":${JSON.stringify(review.apiVersion)},"kind":"AdmissionReview",` +
    `"response":{"uid":${JSON.stringify(review.uid)},"allowed":${decision.outcome !== 'denied'}`
  if (decision.outcome === 'mutated') {
    const patch = Buffer.from(JSON.stringify(decision.patch)).toString('base64')
    text += `,"patchType":"JSONPatch","patch":"${patch}","auditAnnotations":${JSON.stringify({ [auditKey]: decision.email })}`
  }
  if (decision.outcome === 'denied') text += `,"status":${JSON.stringify({ code: decision.error.status, message: decision.error.message })}`
  if (decision.warnings.length > 0) text += `,"warnings":${JSON.stringify(capWarnings(decision.warnings))}`
  return `${text}}}`
}

/** The result of one admission: the response (JSON text), the decision behind it, and the summary to log. */
export interface Admission {
  readonly response: string
  readonly decision: PodDecision
  readonly summary: ReviewSummary
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
    return { response: reviewResponse(review, decision), decision, summary: { uid, outcome: 'skipped', reason: decision.reason } }
  }
  const pod = own(request, 'object')
  let decision: PodDecision
  let summaryPod: string | undefined
  let saName: string | undefined
  if (!isString(namespace) || namespace === '') {
    decision = { outcome: 'denied', error: new WebhookError('BAD_REVIEW', 'request.namespace must be set on a Pod CREATE'), warnings: [] }
  } else if (!isObject(pod)) {
    decision = { outcome: 'denied', error: new WebhookError('BAD_POD', 'request.object must be a Pod object'), warnings: [] }
  } else {
    summaryPod = podName(pod)
    saName = serviceAccountName(own(pod, 'spec'))
    decision = await reviewPod(pod, namespace, source)
  }
  const reason = decision.outcome === 'skipped' ? decision.reason : decision.outcome === 'denied' ? decision.error.code : undefined
  const summary: ReviewSummary = {
    uid,
    outcome: decision.outcome,
    ...(isString(namespace) ? { namespace } : {}),
    ...(summaryPod !== undefined ? { pod: summaryPod } : {}),
    ...(saName !== undefined ? { serviceAccount: saName } : {}),
    ...(reason !== undefined ? { reason } : {}),
  }
  return { response: reviewResponse(review, decision), decision, summary }
}
