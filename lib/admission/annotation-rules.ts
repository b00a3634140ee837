/**
 * The annotation rules, one source of truth for Pod admission, ServiceAccount admission and the `validate`
 * command: what each of our keys must hold, the reader that records every broken value, and the reading of a
 * ServiceAccount's own annotations. Pure.
 */
import path from 'node:path'
import { quote } from '../json.js'
import { annotationPrefix, keys, tokenExpirationBounds, defaults } from '../names.js'
import { endpointUrl } from '../url.js'
import type { ServiceAccount } from './serviceaccount.js'

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
export type Rule = (v: string) => string | undefined
export function rule(keeps: (v: string) => boolean, why: string): Rule {
  return v => (keeps(v) ? undefined : why)
}

const { min, max } = tokenExpirationBounds
/** The token expiration, on the ServiceAccount and as the Pod's override. */
export const expirationRule = rule(
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
export const saRef = (sa: ServiceAccount): string => `ServiceAccount ${sa.namespace}/${sa.name}`

/** A key as warnings name it: without the common prefix, so the warning fits a header. */
export const shortKey = (key: string): string => key.slice(annotationPrefix.length)

export const emptyWarning = (owner: string, kind: string, key: string): string =>
  `${owner} ${kind} ${shortKey(key)} is empty: treated as absent`

/** One broken value: where it is, and the sentence that names it (`ServiceAccount a/b annotation k="v" rule`). */
export interface Problem {
  readonly key: string
  readonly value: string
  /** The rule it breaks (`must be …`). */
  readonly why: string
  readonly text: string
}

/** Collects the problems and warnings of one reading. */
export class Judge {
  readonly problems: Problem[] = []
  readonly warnings: string[] = []

  /** Records a broken value. */
  bad(who: string, key: string, value: string, why: string, kind = 'annotation'): void {
    this.problems.push({ key, value, why, text: `${who} ${kind} ${key}=${quote(value)} ${why}` })
  }

  /** An annotation's value when present and keeping its rule; undefined when absent, empty (warned) or broken. */
  valid(map: ReadonlyMap<string, string>, who: string, key: string, keeps: Rule): string | undefined {
    const v = map.get(key)
    if (v === undefined) return undefined
    if (v === '') return void this.warnings.push(emptyWarning(who, 'annotation', key))
    const why = controlCharacter.test(v) ? noControlRule : keeps(v)
    if (why === undefined) return v
    this.bad(who, key, v, why)
    return undefined
  }
}

const skipRule = rule(v => parseBoolean(v) !== undefined, 'must be "true" or "false"')

/** The optional annotations of a ServiceAccount, in the order they are judged, with their rules. */
const optionalRules: readonly (readonly [key: string, rule: Rule])[] = [
  [keys.audience, audienceRule],
  [keys.tokenExpiration, expirationRule],
  [keys.idpTokenExpiration, idpExpirationRule],
  [keys.idpTokenEndpoint, endpointRule],
  [keys.federatedTokenFile, tokenFileProblem],
]

/** What a ServiceAccount's own annotations say: no identity and why, or the valid values by key. */
export type ServiceAccountReading =
  | { readonly kind: 'none'; readonly reason: string }
  | { readonly kind: 'identity'; readonly email: string | undefined; readonly values: ReadonlyMap<string, string> }

/**
 * Reads a ServiceAccount's annotations into `judge`. Without the e-mail annotation (absent or empty) the
 * ServiceAccount is not ours, and an opted-out one gives no identity: then nothing else on it is judged.
 */
export const readServiceAccount = (sa: ServiceAccount, judge: Judge): ServiceAccountReading => {
  const a = sa.annotations
  const owner = saRef(sa)
  const email = a.get(keys.email)
  if (email === undefined) return { kind: 'none', reason: 'ServiceAccount has no service-account-email annotation' }
  if (email === '') {
    judge.warnings.push(emptyWarning(owner, 'annotation', keys.email))
    return { kind: 'none', reason: 'ServiceAccount has an empty service-account-email annotation' }
  }
  const skip = judge.valid(a, owner, keys.skip, skipRule)
  if (skip !== undefined && parseBoolean(skip) === true) return { kind: 'none', reason: 'ServiceAccount opted out' }
  const values = new Map<string, string>()
  const validEmail = judge.valid(a, owner, keys.email, emailRule)
  for (const [key, keeps] of optionalRules) {
    const v = judge.valid(a, owner, key, keeps)
    if (v !== undefined) values.set(key, v)
  }
  return { kind: 'identity', email: validEmail, values }
}

/** Our keys on a ServiceAccount, and on a Pod (labels and annotations). */
export const serviceAccountKeys: readonly string[] = [keys.email, keys.skip, ...optionalRules.map(([key]) => key)]
export const podKeys: readonly string[] = [keys.skip, keys.tokenExpiration, keys.skipContainers]

/** Edit distance of two short strings (insert, delete, substitute). */
const distance = (a: string, b: string): number => {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      next[j] = Math.min((row[j] as number) + 1, (next[j - 1] as number) + 1, (row[j - 1] as number) + cost)
    }
    row = next
  }
  return row[b.length] as number
}

/**
 * A warning for every key under our prefix in `map` that is not one of `known`, naming the closest known key when
 * it is a likely typo (at most 3 edits, and fewer than a third of the key). Long keys are cut to keep warnings short.
 */
export const unknownKeyWarnings = (
  owner: string,
  kind: string,
  map: ReadonlyMap<string, string>,
  known: readonly string[],
): string[] => {
  const out: string[] = []
  for (const key of map.keys()) {
    if (known.includes(key)) continue
    const name = shortKey(key)
    const near = known
      .map(k => [shortKey(k), distance(name.slice(0, 64), shortKey(k))] as const)
      .sort((x, y) => x[1] - y[1])[0]
    const hint = near && near[1] <= 3 && near[1] * 3 < near[0].length ? `; did you mean ${near[0]}?` : ''
    out.push(`${owner} ${kind} ${quote(name, 40)} is an unknown key${hint}`)
  }
  return out
}
