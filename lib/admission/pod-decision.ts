/**
 * The decision for one Pod: its own opt-out, its ServiceAccount (looked up through a source passed in), the
 * identity rules and the mutation. Pure apart from that lookup; denials are returned, not thrown.
 */
import jsonpatch from 'fast-json-patch'
import type { Operation } from 'fast-json-patch'
import { WebhookError, isWebhookError, returnWebhookError } from '../errors.js'
import { isObject, isString, own, quote, type JsonObject } from '../json.js'
import { podOptsOut, resolveIdentity, skippedContainers } from './identity-config.js'
import { boundWarning, maxWarningLength, mutatePod } from './mutate-pod.js'
import { prefixedAnnotations, type ServiceAccount, type ServiceAccountSource } from './serviceaccount.js'

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

/** What the decision reads of a Pod besides its spec, computed once per review. */
export interface PodView {
  readonly pod: JsonObject
  /** metadata.name, else generateName, else empty: for messages and logs. */
  readonly name: string
  /** spec.serviceAccountName, else the deprecated spec.serviceAccount, else `default`. */
  readonly serviceAccount: string
  /** Only labels and annotations under our prefix: nothing else (last-applied-configuration, say) is copied. */
  readonly labels: ReadonlyMap<string, string>
  readonly annotations: ReadonlyMap<string, string>
}

const nonEmptyString = (o: unknown, ...fields: string[]): string | undefined => {
  if (!isObject(o)) return undefined
  for (const field of fields) {
    const v = own(o, field)
    if (isString(v) && v !== '') return v
  }
  return undefined
}

/** The {@link PodView} of a Pod object whose shape is not yet proven. */
export const viewPod = (pod: JsonObject): PodView => {
  const meta = own(pod, 'metadata')
  return {
    pod,
    name: nonEmptyString(meta, 'name', 'generateName') ?? '',
    serviceAccount: nonEmptyString(own(pod, 'spec'), 'serviceAccountName', 'serviceAccount') ?? 'default',
    labels: prefixedAnnotations(isObject(meta) ? own(meta, 'labels') : undefined),
    annotations: prefixedAnnotations(isObject(meta) ? own(meta, 'annotations') : undefined),
  }
}

const denied = (error: WebhookError, warnings: readonly string[] = []): PodDecision => ({
  outcome: 'denied',
  error,
  warnings,
})

/** A duration as Go prints one, to the whole second: `45s`, `2m10s`, `1h0m5s`. */
export const formatAge = (ms: number): string => {
  const total = Math.max(0, Math.floor(ms / 1000))
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`
}

/**
 * The warning for an answer from a cached copy that may be behind (the ServiceAccount's `staleMs`), or none.
 * Bounded: a long name is cut, never the age and the reason after it.
 */
const staleWarnings = (sa: ServiceAccount): readonly string[] => {
  if (sa.staleMs === undefined) return []
  const tail = ` read from a copy ${formatAge(sa.staleMs)} old: the API server is unreachable`
  const ref = `ServiceAccount ${sa.namespace}/${sa.name}`
  const room = maxWarningLength - tail.length
  return [`${ref.length > room ? `${ref.slice(0, room - 1)}…` : ref}${tail}`]
}

/**
 * Decides what to do with a Pod once its ServiceAccount has been looked up (`undefined`: it does not exist).
 * Pure. A mutation carries the JSON Patch against the original. An answer from a possibly stale copy is named in
 * the first warning of an allowed Pod.
 */
export const decidePod = (view: PodView, namespace: string, sa: ServiceAccount | undefined): PodDecision => {
  if (!sa) {
    const why = `ServiceAccount ${namespace}/${view.serviceAccount} not found`
    return denied(
      new WebhookError('SERVICEACCOUNT_NOT_FOUND', `${why}; create it before the Pod, or fix spec.serviceAccountName`),
    )
  }
  const identity = resolveIdentity(sa, view.annotations, view.labels)
  // A denial names the problem alone; the copy's age is news only on an allowed Pod.
  if (identity.kind === 'invalid') return denied(identity.error)
  const warnings = identity.warnings.map(boundWarning)
  if (identity.kind === 'skip')
    return { outcome: 'skipped', reason: identity.reason, warnings: [...staleWarnings(sa), ...warnings] }
  const result = returnWebhookError(() => mutatePod(view.pod, identity.config, skippedContainers(view.annotations)))
  if (isWebhookError(result)) return denied(result, warnings)
  warnings.unshift(...staleWarnings(sa))
  warnings.push(...result.warnings)
  if (!result.changed) {
    return {
      outcome: 'skipped',
      reason: result.injected === 0 ? 'all containers skipped' : 'already injected',
      warnings,
    }
  }
  const patch = jsonpatch.compare(view.pod, result.pod)
  return { outcome: 'mutated', pod: result.pod, patch, email: identity.config.email, warnings }
}

// A ServiceAccount name is a DNS-1123 subdomain. Checked before it goes into an API path, where "." or ".." would
// address another object.
const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

/**
 * The whole decision for a Pod: its own opt-out (before any lookup, so an opted-out Pod never waits for, or is
 * denied by, the API server), then its ServiceAccount through `source`, then {@link decidePod}. A lookup that
 * cannot complete denies (fail closed: a Pod must not start without its identity by accident).
 */
export const reviewPod = async (
  view: PodView,
  namespace: string,
  source: ServiceAccountSource,
): Promise<PodDecision> => {
  // No lookup for something that is not a Pod; the deeper shape is proven where it is used.
  if (!isObject(own(view.pod, 'spec'))) return denied(new WebhookError('BAD_POD', 'Pod spec must be an object'))
  if (podOptsOut(view.labels, view.annotations)) return { outcome: 'skipped', reason: 'Pod opted out', warnings: [] }
  const saName = view.serviceAccount
  if (saName.length > 253 || !dnsSubdomain.test(saName)) {
    const why = `Pod spec.serviceAccountName ${quote(saName)} is not a valid ServiceAccount name`
    return denied(new WebhookError('BAD_POD', `${why} (a DNS subdomain such as "my-app")`))
  }
  let sa: ServiceAccount | undefined
  try {
    sa = await source.get(namespace, saName)
  } catch (e) {
    if (isWebhookError(e, 'SERVICEACCOUNT_LOOKUP_FAILED')) return denied(e)
    const why = isWebhookError(e) ? e.message : 'unexpected lookup error'
    return denied(
      new WebhookError(
        'SERVICEACCOUNT_LOOKUP_FAILED',
        `ServiceAccount ${namespace}/${saName} could not be looked up: ${why}`,
      ),
    )
  }
  return decidePod(view, namespace, sa)
}
