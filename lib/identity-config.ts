/**
 * Turns a ServiceAccount's annotations (and the few Pod-level overrides) into the identity configuration to
 * inject. Pure: a function of its arguments, no I/O, no clock. Every broken annotation is reported, together,
 * in one INVALID_ANNOTATION error whose message names the annotation, its value and the rule.
 */
import path from 'node:path'
import { WebhookError } from './errors.js'
import { defaults, envNames, keys, tokenExpirationBounds } from './annotations.js'
import type { ServiceAccount } from './serviceaccount.js'

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

/** The outcome of reading the annotations: inject this configuration, or leave the Pod alone and why. */
export type IdentityDecision =
  | { readonly kind: 'inject'; readonly config: IdentityConfig }
  | { readonly kind: 'skip'; readonly reason: string }

const maxShownValue = 80

/** A value as shown in a denial: JSON-quoted (so spaces and control characters are visible), bounded. */
export const showValue = (v: string): string =>
  JSON.stringify(v.length > maxShownValue ? `${v.slice(0, maxShownValue)}…` : v)

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

/** Rule text and parser for the token expiration, shared by the ServiceAccount and the Pod override. */
const expirationRule = `must be a whole number of seconds from ${tokenExpirationBounds.min} to ${tokenExpirationBounds.max} (Kubernetes' limits for a projected token)`
const parseExpiration = (v: string): number | undefined =>
  parseIntegerIn(v, tokenExpirationBounds.min, tokenExpirationBounds.max)

const isHttpsUrl = (v: string): boolean => {
  if (v.trim() !== v || v === '') return false
  try {
    const u = new URL(v)
    return u.protocol === 'https:' && u.hostname !== '' && u.username === '' && u.password === ''
  } catch {
    return false
  }
}

/** Why a federated-token-file value is unusable, or undefined when it is fine. */
export const tokenFileProblem = (v: string): string | undefined => {
  if (!path.posix.isAbsolute(v)) return 'must be an absolute path such as /var/run/secrets/stackit.cloud/serviceaccount/token'
  if (v.split('/').includes('..')) return 'must not contain ".." elements'
  if (/[\0\s:]/.test(v)) return 'must not contain whitespace, ":" or NUL characters'
  if (path.posix.normalize(v) !== v || v.endsWith('/')) return 'must be normalised (no "//", "/./" or trailing "/") and end in a file name'
  if (path.posix.dirname(v) === '/') return 'must be inside a directory, not directly in "/" (the directory becomes the mount path)'
  return undefined
}

/** Kubernetes-style object reference for messages. */
const saRef = (sa: ServiceAccount): string => `ServiceAccount ${sa.namespace}/${sa.name}`

/**
 * Reads the workload identity of a Pod from its ServiceAccount's annotations and the Pod's own annotations
 * (only the token expiration override). Throws INVALID_ANNOTATION naming every broken annotation.
 */
export const resolveIdentity = (sa: ServiceAccount, podAnnotations: ReadonlyMap<string, string>): IdentityDecision => {
  const a = sa.annotations
  const problems: string[] = []
  const bad = (owner: string, key: string, value: string, rule: string): undefined => {
    problems.push(`${owner} annotation ${key}=${showValue(value)} ${rule}`)
    return undefined
  }
  const owner = saRef(sa)

  // Without the e-mail annotation the ServiceAccount is not ours: nothing else on it is read or judged.
  const email = a.get(keys.email)
  if (email === undefined) return { kind: 'skip', reason: 'ServiceAccount has no service-account-email annotation' }
  const skip = a.get(keys.skip)
  if (skip !== undefined) {
    const b = parseBoolean(skip)
    if (b === undefined) bad(owner, keys.skip, skip, 'must be "true" or "false"')
    else if (b) return { kind: 'skip', reason: 'ServiceAccount opted out' }
  }
  if (!isPlainEmail(email)) bad(owner, keys.email, email, 'must be a plain e-mail address (no display name, no spaces)')

  const audienceValue = a.get(keys.audience)
  const audience = audienceValue === undefined ? defaults.audience
    : audienceValue.trim() !== '' && audienceValue.trim() === audienceValue ? audienceValue
      : bad(owner, keys.audience, audienceValue, `must be non-empty without surrounding spaces (remove it for the default ${defaults.audience})`)

  const saExpirationValue = a.get(keys.tokenExpiration)
  const saExpiration = saExpirationValue === undefined ? defaults.tokenExpirationSeconds
    : parseExpiration(saExpirationValue) ?? bad(owner, keys.tokenExpiration, saExpirationValue, expirationRule)
  const podExpirationValue = podAnnotations.get(keys.tokenExpiration)
  const expiration = podExpirationValue === undefined ? saExpiration
    : parseExpiration(podExpirationValue) ?? bad('Pod', keys.tokenExpiration, podExpirationValue, expirationRule)

  const env: EnvVar[] = []
  const idpExpirationValue = a.get(keys.idpTokenExpiration)
  if (idpExpirationValue !== undefined) {
    const n = parseIntegerIn(idpExpirationValue, 1, Number.MAX_SAFE_INTEGER)
    if (n === undefined) bad(owner, keys.idpTokenExpiration, idpExpirationValue, 'must be a positive whole number of seconds')
    else env.push({ name: envNames.idpTokenExpiration, value: String(n) })
  }
  const endpoint = a.get(keys.idpTokenEndpoint)
  if (endpoint !== undefined) {
    if (!isHttpsUrl(endpoint)) bad(owner, keys.idpTokenEndpoint, endpoint, 'must be an absolute https:// URL without credentials')
    else env.push({ name: envNames.idpTokenEndpoint, value: endpoint })
  }
  let mountPath: string = defaults.mountPath
  let tokenPath: string = defaults.tokenPath
  const tokenFile = a.get(keys.federatedTokenFile)
  if (tokenFile !== undefined) {
    const problem = tokenFileProblem(tokenFile)
    if (problem !== undefined) bad(owner, keys.federatedTokenFile, tokenFile, problem)
    else {
      mountPath = path.posix.dirname(tokenFile)
      tokenPath = path.posix.basename(tokenFile)
      env.push({ name: envNames.federatedTokenFile, value: tokenFile })
    }
  }

  if (problems.length > 0 || audience === undefined || expiration === undefined) {
    throw new WebhookError('INVALID_ANNOTATION', `${problems.join('; ')}. Fix the annotation${problems.length > 1 ? 's' : ''} and create the Pod again.`)
  }
  return {
    kind: 'inject',
    config: {
      email,
      audience,
      expirationSeconds: expiration,
      mountPath,
      tokenPath,
      env: [{ name: envNames.email, value: email }, ...env],
    },
  }
}

/**
 * Whether the Pod itself opts out, by label or annotation `skip-pod-identity-webhook`. `"false"` does not skip;
 * any value other than true/false is an INVALID_ANNOTATION error.
 */
export const podOptsOut = (labels: ReadonlyMap<string, string>, annotations: ReadonlyMap<string, string>): boolean => {
  const problems: string[] = []
  let skip = false
  for (const [kind, map] of [['label', labels], ['annotation', annotations]] as const) {
    const v = map.get(keys.skip)
    if (v === undefined) continue
    const b = parseBoolean(v)
    if (b === undefined) problems.push(`Pod ${kind} ${keys.skip}=${showValue(v)} must be "true" or "false"`)
    else skip ||= b
  }
  if (problems.length > 0) throw new WebhookError('INVALID_ANNOTATION', `${problems.join('; ')}.`)
  return skip
}

/** Container names listed in the Pod annotation `skip-containers` ("a, b"), trimmed, empties dropped. */
export const skippedContainers = (annotations: ReadonlyMap<string, string>): ReadonlySet<string> =>
  new Set((annotations.get(keys.skipContainers) ?? '').split(',').map(s => s.trim()).filter(s => s !== ''))
