/**
 * ServiceAccount admission: our annotations judged where they are written, on CREATE and UPDATE, with the rules and
 * the wording of Pod admission (annotation-rules.ts). Pure. A CREATE with a broken annotation is denied; an UPDATE
 * only when it adds one or changes one to a broken value, so a controller writing another field of an old
 * ServiceAccount is never blocked (it gets a warning instead).
 */
import { WebhookError } from '../errors.js'
import { isObject, isString, own, quote, type JsonObject } from '../json.js'
import { keys } from '../names.js'
import {
  Judge,
  readServiceAccount,
  saRef,
  serviceAccountKeys,
  shortKey,
  unknownKeyWarnings,
  type Problem,
} from './annotation-rules.js'
import { boundWarning } from './mutate-pod.js'
import { prefixedAnnotations, type ServiceAccount } from './serviceaccount.js'

/** What became of a ServiceAccount write. */
export type ServiceAccountDecision =
  | { readonly outcome: 'allowed'; readonly warnings: readonly string[] }
  | { readonly outcome: 'skipped'; readonly reason: string; readonly warnings: readonly string[] }
  | { readonly outcome: 'denied'; readonly error: WebhookError; readonly warnings: readonly string[] }

/** Every broken annotation of a ServiceAccount, and its warnings (not yet cut to a header's length). */
export const judgeServiceAccount = (sa: ServiceAccount): { problems: readonly Problem[]; warnings: string[] } => {
  const judge = new Judge()
  const owner = saRef(sa)
  judge.warnings.push(...unknownKeyWarnings(owner, 'annotation', sa.annotations, serviceAccountKeys))
  readServiceAccount(sa, judge)
  if (!sa.annotations.get(keys.email)) {
    const inert = serviceAccountKeys.filter(k => k !== keys.email && sa.annotations.has(k)).map(shortKey)
    const verb = inert.length === 1 ? 'has' : 'have'
    if (inert.length > 0)
      judge.warnings.push(`${owner}: ${inert.join(', ')} ${verb} no effect without service-account-email`)
  }
  return judge
}

/**
 * The decision for a ServiceAccount as written (`sa`), and as it was before an UPDATE (`old`). Denied when a
 * broken annotation is new or changed; the denial then names every broken one.
 */
export const decideServiceAccount = (sa: ServiceAccount, old?: ServiceAccount): ServiceAccountDecision => {
  const { problems, warnings } = judgeServiceAccount(sa)
  const before = old === undefined ? [] : judgeServiceAccount(old).problems
  const kept = (p: Problem): boolean => before.some(q => q.key === p.key && q.value === p.value)
  if (problems.some(p => !kept(p))) {
    const fix = `Fix the annotation${problems.length > 1 ? 's' : ''} and apply the ServiceAccount again.`
    const message = `${problems.map(p => p.text).join('; ')}. ${fix}`
    return {
      outcome: 'denied',
      error: new WebhookError('INVALID_ANNOTATION', message),
      warnings: warnings.map(boundWarning),
    }
  }
  // Short enough for the longest key: the write names the ServiceAccount, and a Pod's denial names the rule.
  for (const p of problems) {
    warnings.push(
      `${shortKey(p.key)}=${quote(p.value, 12)} is broken and kept by this update; Pods using it are denied`,
    )
  }
  return { outcome: 'allowed', warnings: warnings.map(boundWarning) }
}

/** A ServiceAccount object of a review reduced to our annotations; the name may come from the request. */
const serviceAccountOf = (object: JsonObject, namespace: string, requestName: unknown): ServiceAccount => {
  const meta = own(object, 'metadata')
  const field = (name: string): unknown => (isObject(meta) ? own(meta, name) : undefined)
  const names = [requestName, field('name'), field('generateName')].filter(n => isString(n) && n !== '')
  const name = (names[0] as string | undefined) ?? ''
  return { namespace, name, annotations: prefixedAnnotations(field('annotations')) }
}

/** True when the request is the CREATE or UPDATE of a core/v1 ServiceAccount. */
const isServiceAccountWrite = (request: JsonObject): boolean => {
  const kind = own(request, 'kind')
  const operation = own(request, 'operation')
  return (
    (operation === 'CREATE' || operation === 'UPDATE') &&
    isObject(kind) &&
    own(kind, 'group') === '' &&
    own(kind, 'version') === 'v1' &&
    own(kind, 'kind') === 'ServiceAccount'
  )
}

/** The decision for the request of a review sent to the ServiceAccount endpoint, and the names it was about. */
export const reviewServiceAccount = (
  request: JsonObject,
): { decision: ServiceAccountDecision; namespace?: string; name?: string } => {
  if (!isServiceAccountWrite(request)) {
    return { decision: { outcome: 'skipped', reason: 'not a ServiceAccount CREATE or UPDATE', warnings: [] } }
  }
  const namespace = own(request, 'namespace')
  const object = own(request, 'object')
  const bad = (why: string): { decision: ServiceAccountDecision } => ({
    decision: { outcome: 'denied', error: new WebhookError('BAD_REVIEW', why), warnings: [] },
  })
  if (!isString(namespace) || namespace === '') return bad('request.namespace must be set on a ServiceAccount write')
  if (!isObject(object)) return bad('request.object must be a ServiceAccount object')
  const sa = serviceAccountOf(object, namespace, own(request, 'name'))
  const oldObject = own(request, 'oldObject')
  const old =
    own(request, 'operation') === 'UPDATE' && isObject(oldObject)
      ? serviceAccountOf(oldObject, namespace, sa.name)
      : undefined
  return { decision: decideServiceAccount(sa, old), namespace, name: sa.name }
}
