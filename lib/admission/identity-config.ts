/**
 * Turns a ServiceAccount's annotations (and the Pod's own keys) into the identity configuration to inject.
 * Pure: a function of its arguments, no I/O, no clock. Every broken annotation is reported, together, in one
 * INVALID_ANNOTATION denial whose message names the annotation, its value and the rule. An empty value counts as
 * an absent one, with a warning. Nothing is denied for a Pod that gets no identity.
 */
import path from 'node:path'
import { WebhookError } from '../errors.js'
import { quote } from '../json.js'
import { endpointUrl } from '../url.js'
import { annotationPrefix, defaults, envNames, keys, tokenExpirationBounds } from '../names.js'
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

// Unicode's control characters (C0, DEL, C1). None may reach an env value or a token field: a TAB or newline in a
// URL even passes the URL parser, which strips them, while the raw value would be injected.
const controlCharacter = /\p{Cc}/u
const noControlRule = 'must not contain control characters (such as a tab or a newline)'

// A plain addr-spec: RFC 5322 dot-atom local part, DNS host name with at least one dot. No display name,
// no quoting, no comments, no whitespace: STACKIT service account e-mails are machine-made.
const atom = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
const label = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
const emailPattern = new RegExp(`^${atom}(?:\\.${atom})*@${label}(?:\\.${label})+$`)

/** True for a plain e-mail address such as `name-1a2b@sa.stackit.cloud`. */
export const isPlainEmail = (v: string): boolean => v.length <= 254 && emailPattern.test(v)

/** Parses a strict boolean label/annotation value; undefined when it is neither. */
export const parseBoolean = (v: string): boolean | undefined => {
  const lower = v.toLowerCase()
  return lower === 'true' ? true : lower === 'false' ? false : undefined
}

/** Parses a whole decimal number within [min, max]; undefined otherwise. */
const parseIntegerIn = (v: string, min: number, max: number): number | undefined => {
  if (!/^[0-9]{1,16}$/.test(v)) return undefined
  const n = Number(v)
  return n >= min && n <= max ? n : undefined
}

/** A rule: the reason a value breaks it, or undefined when the value keeps it. */
type Rule = (v: string) => string | undefined
function rule(keeps: (v: string) => boolean, why: string): Rule {
  return v => (keeps(v) ? undefined : why)
}

const { min, max } = tokenExpirationBounds
/** The token expiration, on the ServiceAccount and as the Pod's override. */
const expirationRule = rule(
  v => parseIntegerIn(v, min, max) !== undefined,
  `must be a whole number of seconds from ${min} to ${max} (Kubernetes' limits for a projected token)`,
)
const emailRule = rule(isPlainEmail, 'must be a plain e-mail address (no display name, no spaces)')
const audienceRule = rule(
  v => v.trim() !== '' && v.trim() === v,
  `must be non-empty without surrounding spaces (remove it for the default ${defaults.audience})`,
)
const idpExpirationRule = rule(
  v => parseIntegerIn(v, 1, Number.MAX_SAFE_INTEGER) !== undefined,
  'must be a positive whole number of seconds',
)
// Where this differs from the other endpoints on purpose: never http, and no surrounding spaces, because the value
// is injected as it is written, and anyone who may edit a ServiceAccount writes it.
const endpointRule = rule(
  v => v.trim() === v && endpointUrl(v, false) instanceof URL,
  'must be an absolute https:// URL without credentials',
)

/**
 * Why a federated-token-file value is unusable, or undefined when it is fine. Its directory becomes a volumeMount
 * mountPath, its file name the projected serviceAccountToken path, so both must pass Kubernetes' validation
 * (pkg/apis/core/validation): a mountPath must be non-empty and unique in its container; a projected token path
 * must be non-empty and relative, have no ".." element, and not start with ".." (the kubelet keeps its own
 * "..data" and "..<timestamp>" entries in a projected volume). The absolute, normalised form asked here is
 * stricter than the mountPath rule and yields a non-empty, relative file name, so only the ".." prefix is left
 * to check; the uniqueness of the mount in each container is the mutation's check.
 */
export const tokenFileProblem = (v: string): string | undefined => {
  if (!path.posix.isAbsolute(v))
    return 'must be an absolute path such as /var/run/secrets/stackit.cloud/serviceaccount/token'
  if (v.split('/').includes('..')) return 'must not contain ".." elements'
  if (/[\0\s:]/.test(v)) return 'must not contain whitespace, ":" or NUL characters'
  if (path.posix.normalize(v) !== v || v.endsWith('/'))
    return 'must be normalised (no "//", "/./" or trailing "/") and end in a file name'
  if (path.posix.dirname(v) === '/')
    return 'must be inside a directory, not directly in "/" (the directory becomes the mount path)'
  if (path.posix.basename(v).startsWith('..')) {
    return 'must not name a file that starts with ".." (Kubernetes reserves such names in a projected volume)'
  }
  return undefined
}

/** Kubernetes-style object reference for messages. */
const saRef = (sa: ServiceAccount): string => `ServiceAccount ${sa.namespace}/${sa.name}`

/** A key as warnings name it: without the common prefix, so the warning fits a header. */
const shortKey = (key: string): string => key.slice(annotationPrefix.length)

const emptyWarning = (owner: string, kind: string, key: string): string =>
  `${owner} ${kind} ${shortKey(key)} is empty: treated as absent`

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
  const a = sa.annotations
  const owner = saRef(sa)
  const problems: string[] = []
  const warnings: string[] = []
  const bad = (who: string, key: string, value: string, why: string, kind = 'annotation'): void =>
    void problems.push(`${who} ${kind} ${key}=${quote(value)} ${why}`)
  /** An annotation's value when present and keeping its rule; undefined when absent, empty (warned) or broken. */
  const valid = (map: ReadonlyMap<string, string>, who: string, key: string, keeps: Rule): string | undefined => {
    const v = map.get(key)
    if (v === undefined) return undefined
    if (v === '') return void warnings.push(emptyWarning(who, 'annotation', key))
    const why = controlCharacter.test(v) ? noControlRule : keeps(v)
    if (why === undefined) return v
    bad(who, key, v, why)
    return undefined
  }

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
  const leftAlone = (reason: string): IdentityDecision => {
    for (const [kind, v] of malformedPodSkip) {
      const shown = `${shortKey(keys.skip)}=${quote(v)}`
      warnings.push(`Pod ${kind} ${shown} ignored: not "true" or "false", and no identity applies`)
    }
    return { kind: 'skip', reason, warnings }
  }

  // Without the e-mail annotation the ServiceAccount is not ours: nothing else on it is read or judged.
  const emailValue = a.get(keys.email)
  if (emailValue === undefined) return leftAlone('ServiceAccount has no service-account-email annotation')
  if (emailValue === '') {
    warnings.push(emptyWarning(owner, 'annotation', keys.email))
    return leftAlone('ServiceAccount has an empty service-account-email annotation')
  }
  const skip = valid(
    a,
    owner,
    keys.skip,
    rule(v => parseBoolean(v) !== undefined, 'must be "true" or "false"'),
  )
  if (skip !== undefined && parseBoolean(skip) === true) return leftAlone('ServiceAccount opted out')
  const email = valid(a, owner, keys.email, emailRule)
  const audience = valid(a, owner, keys.audience, audienceRule) ?? defaults.audience
  const saExpiration = valid(a, owner, keys.tokenExpiration, expirationRule) ?? defaults.tokenExpirationSeconds
  const expiration = Number(valid(podAnnotations, 'Pod', keys.tokenExpiration, expirationRule) ?? saExpiration)
  const env: EnvVar[] = []
  const idpExpiration = valid(a, owner, keys.idpTokenExpiration, idpExpirationRule)
  if (idpExpiration !== undefined) env.push({ name: envNames.idpTokenExpiration, value: String(Number(idpExpiration)) })
  const endpoint = valid(a, owner, keys.idpTokenEndpoint, endpointRule)
  if (endpoint !== undefined) env.push({ name: envNames.idpTokenEndpoint, value: endpoint })
  const tokenFile = valid(a, owner, keys.federatedTokenFile, tokenFileProblem)
  if (tokenFile !== undefined) env.push({ name: envNames.federatedTokenFile, value: tokenFile })
  if (podAnnotations.get(keys.skipContainers) === '') {
    warnings.push(emptyWarning('Pod', 'annotation', keys.skipContainers))
  }
  // An identity applies, so a skip value that is neither true nor false may mean "leave me alone": do not guess.
  for (const [kind, v] of malformedPodSkip) bad('Pod', keys.skip, v, 'must be "true" or "false"', kind)

  if (problems.length > 0 || email === undefined) {
    const fix = `Fix the annotation${problems.length > 1 ? 's' : ''} and create the Pod again.`
    return {
      kind: 'invalid',
      error: new WebhookError('INVALID_ANNOTATION', `${problems.join('; ')}. ${fix}`),
      warnings,
    }
  }
  const mountPath = tokenFile === undefined ? defaults.mountPath : path.posix.dirname(tokenFile)
  const tokenPath = tokenFile === undefined ? defaults.tokenPath : path.posix.basename(tokenFile)
  env.unshift({ name: envNames.email, value: email })
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
