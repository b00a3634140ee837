/**
 * Turns a ServiceAccount's annotations (and the Pod's own keys) into the identity configuration to inject.
 * Pure: a function of its arguments, no I/O, no clock. Every broken annotation is reported, together, in one
 * INVALID_ANNOTATION denial whose message names the annotation, its value and the rule. An empty value counts as
 * an absent one, with a warning. Nothing is denied for a Pod that gets no identity.
 */
import path from 'node:path'
import { WebhookError } from '../errors.js'
import { quote } from '../json.js'
import { defaults, envNames, keys } from '../names.js'
import {
  emptyWarning,
  expirationRule,
  Judge,
  parseBoolean,
  podKeys,
  readServiceAccount,
  saRef,
  serviceAccountKeys,
  shortKey,
  unknownKeyWarnings,
} from './annotation-rules.js'
import { emptyAnnotations, type ServiceAccount } from './serviceaccount.js'

/** One environment variable to inject. */
export interface EnvVar {
  readonly name: string
  readonly value: string
}

/** What the mutation injects for one Pod. */
export interface IdentityConfig {
  readonly email: string
  readonly audience: string
  readonly expirationSeconds: number
  /** Directory the token volume is mounted at. */
  readonly mountPath: string
  /** File name of the token inside {@link mountPath}. */
  readonly tokenPath: string
  /** Variables in injection order; STACKIT_SERVICE_ACCOUNT_EMAIL first. */
  readonly env: readonly EnvVar[]
}

/**
 * The outcome of reading the annotations: inject this configuration, leave the Pod alone and why, or deny it with
 * INVALID_ANNOTATION naming every broken value. The warnings (empty values, an ignored skip value) are not yet cut
 * to a header's length; the review does that.
 */
export type IdentityDecision =
  | { readonly kind: 'inject'; readonly config: IdentityConfig; readonly warnings: readonly string[] }
  | { readonly kind: 'skip'; readonly reason: string; readonly warnings: readonly string[] }
  | { readonly kind: 'invalid'; readonly error: WebhookError; readonly warnings: readonly string[] }

/**
 * Reads the workload identity of a Pod from its ServiceAccount's annotations and the Pod's own keys: the skip
 * label or annotation, the token expiration override and (for its warning only) skip-containers. A Pod skip value
 * other than true/false is judged only when the ServiceAccount would give the Pod an identity: then the Pod is
 * denied, otherwise it is left alone with a warning.
 */
export const resolveIdentity = (
  sa: ServiceAccount,
  podAnnotations: ReadonlyMap<string, string>,
  podLabels: ReadonlyMap<string, string> = emptyAnnotations,
): IdentityDecision => {
  const judge = new Judge()
  const { warnings } = judge
  warnings.push(
    ...unknownKeyWarnings('Pod', 'label', podLabels, podKeys),
    ...unknownKeyWarnings('Pod', 'annotation', podAnnotations, podKeys),
    ...unknownKeyWarnings(saRef(sa), 'annotation', sa.annotations, serviceAccountKeys),
  )
  const malformedPodSkip: (readonly [kind: string, value: string])[] = []
  for (const [kind, map] of [
    ['label', podLabels],
    ['annotation', podAnnotations],
  ] as const) {
    const v = map.get(keys.skip)
    if (v === undefined) continue
    const b = parseBoolean(v)
    if (v === '') warnings.push(emptyWarning('Pod', kind, keys.skip))
    else if (b === true) return { kind: 'skip', reason: 'Pod opted out', warnings: [] }
    else if (b === undefined) malformedPodSkip.push([kind, v])
  }
  const reading = readServiceAccount(sa, judge)
  if (reading.kind === 'none') {
    for (const [kind, v] of malformedPodSkip) {
      const shown = `${shortKey(keys.skip)}=${quote(v)}`
      warnings.push(`Pod ${kind} ${shown} ignored: not "true" or "false", and no identity applies`)
    }
    return { kind: 'skip', reason: reading.reason, warnings }
  }
  const { email, values } = reading
  const saExpiration = values.get(keys.tokenExpiration) ?? defaults.tokenExpirationSeconds
  const expiration = Number(judge.valid(podAnnotations, 'Pod', keys.tokenExpiration, expirationRule) ?? saExpiration)
  if (podAnnotations.get(keys.skipContainers) === '') {
    warnings.push(emptyWarning('Pod', 'annotation', keys.skipContainers))
  }
  // An identity applies, so a skip value that is neither true nor false may mean "leave me alone": do not guess.
  for (const [kind, v] of malformedPodSkip) judge.bad('Pod', keys.skip, v, 'must be "true" or "false"', kind)

  const { problems } = judge
  if (problems.length > 0 || email === undefined) {
    const fix = `Fix the annotation${problems.length > 1 ? 's' : ''} and create the Pod again.`
    const message = `${problems.map(p => p.text).join('; ')}. ${fix}`
    return { kind: 'invalid', error: new WebhookError('INVALID_ANNOTATION', message), warnings }
  }
  const idpExpiration = values.get(keys.idpTokenExpiration)
  const endpoint = values.get(keys.idpTokenEndpoint)
  const tokenFile = values.get(keys.federatedTokenFile)
  const env: EnvVar[] = [{ name: envNames.email, value: email }]
  if (idpExpiration !== undefined) env.push({ name: envNames.idpTokenExpiration, value: String(Number(idpExpiration)) })
  if (endpoint !== undefined) env.push({ name: envNames.idpTokenEndpoint, value: endpoint })
  if (tokenFile !== undefined) env.push({ name: envNames.federatedTokenFile, value: tokenFile })
  const mountPath = tokenFile === undefined ? defaults.mountPath : path.posix.dirname(tokenFile)
  const tokenPath = tokenFile === undefined ? defaults.tokenPath : path.posix.basename(tokenFile)
  const audience = values.get(keys.audience) ?? defaults.audience
  return {
    kind: 'inject',
    config: { email, audience, expirationSeconds: expiration, mountPath, tokenPath, env },
    warnings,
  }
}

/**
 * Whether the Pod itself opts out, by label or annotation `skip-pod-identity-webhook: "true"` (case ignored).
 * Any other value does not: it is judged by {@link resolveIdentity} once the ServiceAccount is known.
 */
export const podOptsOut = (labels: ReadonlyMap<string, string>, annotations: ReadonlyMap<string, string>): boolean =>
  parseBoolean(labels.get(keys.skip) ?? '') === true || parseBoolean(annotations.get(keys.skip) ?? '') === true

/** Container names listed in the Pod annotation `skip-containers` ("a, b"), trimmed, empties dropped. */
export const skippedContainers = (annotations: ReadonlyMap<string, string>): ReadonlySet<string> =>
  new Set(
    (annotations.get(keys.skipContainers) ?? '')
      .split(',')
      .map(s => s.trim())
      .filter(s => s !== ''),
  )
