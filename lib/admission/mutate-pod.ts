/**
 * Applies an identity configuration to a Pod. Pure: returns a new Pod that shares every object it did not
 * change with the input (so the diff walks only the changed paths), plus warnings. Works on the raw JSON, so
 * fields this code does not know (native sidecars' restartPolicy, new API fields) survive untouched.
 */
import path from 'node:path'
import { WebhookError } from '../errors.js'
import { isObject, isString, own, quote, type JsonObject } from '../json.js'
import { volumeName } from '../names.js'
import type { IdentityConfig } from './identity-config.js'

/** The mutated Pod (the input itself when nothing changed) and what the user should be told. */
export interface MutationResult {
  readonly pod: JsonObject
  readonly changed: boolean
  /** Containers (including init containers) that carry the identity after the mutation. */
  readonly injected: number
  readonly warnings: readonly string[]
}

/** Kubernetes shows warnings as HTTP headers and wants each under 120 characters. */
export const maxWarningLength = 119

/** Cuts a warning to {@link maxWarningLength} characters. */
export const boundWarning = (w: string): string =>
  w.length > maxWarningLength ? `${w.slice(0, maxWarningLength - 1)}…` : w

// A denial names this many conflicts and counts the rest: a Pod with thousands of containers would otherwise get a
// message of megabytes, which the API server hands on to the client and its audit log.
const maxConflictsNamed = 10

const conflictMessage = (conflicts: readonly string[]): string => {
  if (conflicts.length <= maxConflictsNamed) return conflicts.join('; ')
  const rest = conflicts.length - maxConflictsNamed
  return [...conflicts.slice(0, maxConflictsNamed), `and ${rest} more conflict${rest === 1 ? '' : 's'}`].join('; ')
}

const badPod = (where: string, rule: string): never => {
  throw new WebhookError('BAD_POD', `Pod ${where} ${rule}`)
}

const noItems: readonly JsonObject[] = []

/** Proves every item is an object with a string name; otherwise throws BAD_POD naming the item. */
function assertNamedList(v: unknown[], where: string): asserts v is JsonObject[] {
  v.forEach((item, i) => {
    if (!isObject(item)) badPod(`${where}[${i}]`, 'must be an object')
    else if (!isString(own(item, 'name'))) badPod(`${where}[${i}].name`, 'must be a string')
  })
}

/** An optional list field: absent/null → [], a list of named objects → itself (not copied), else BAD_POD. */
const objectList = (holder: JsonObject, field: string, where: string): readonly JsonObject[] => {
  const v = own(holder, field)
  if (v === undefined || v === null) return noItems
  if (!Array.isArray(v)) return badPod(`${where}.${field}`, 'must be a list')
  assertNamedList(v, `${where}.${field}`)
  return v
}

const nameOf = (o: JsonObject): string => own(o, 'name') as string // proven by objectList

/**
 * A mount path as the kubelet and the kernel resolve it: `/a//b/./` and `/a/b` are the same directory, and so is
 * `a/b`, which the API server accepts and the kubelet puts "/" in front of. An absolute path without `//`, `/.` or a
 * trailing `/` (nearly every real one) is already in that form and is returned as it is.
 */
const normalMountPath = (p: string): string =>
  p.startsWith('/') && !p.includes('//') && !p.includes('/.') && !p.endsWith('/')
    ? p
    : path.posix.normalize(`/${p}`).replace(/\/+$/, '') || '/'

/** The serviceAccountToken projection this configuration wants. */
const desiredSource = (c: IdentityConfig): JsonObject => ({
  serviceAccountToken: { audience: c.audience, expirationSeconds: c.expirationSeconds, path: c.tokenPath },
})

/**
 * For a projected volume made only of serviceAccountToken sources: the projection and its token sources.
 * Undefined for any other kind of volume.
 */
const tokenProjection = (v: JsonObject): { projected: JsonObject; tokens: JsonObject[] } | undefined => {
  const projected = own(v, 'projected')
  if (!isObject(projected) || Object.keys(v).some(k => k !== 'name' && k !== 'projected')) return undefined
  const sources = own(projected, 'sources')
  if (!Array.isArray(sources)) return undefined
  const tokens: JsonObject[] = []
  for (const s of sources) {
    const token = isObject(s) && Object.keys(s).length === 1 ? own(s, 'serviceAccountToken') : undefined
    if (!isObject(token)) return undefined
    tokens.push(token)
  }
  return { projected, tokens }
}

/** True when a token source asks for the wanted audience, lifetime and path. */
const isDesiredToken = (token: JsonObject, c: IdentityConfig): boolean =>
  own(token, 'audience') === c.audience &&
  own(token, 'expirationSeconds') === c.expirationSeconds &&
  own(token, 'path') === c.tokenPath

/** Returns the new volumes list, or undefined when it is already right. Throws CONFLICT for a foreign volume. */
const mutateVolumes = (volumes: readonly JsonObject[], c: IdentityConfig): JsonObject[] | undefined => {
  const i = volumes.findIndex(v => nameOf(v) === volumeName)
  if (i < 0) return [...volumes, { name: volumeName, projected: { sources: [desiredSource(c)] } }]
  const existing = volumes[i] as JsonObject
  const current = tokenProjection(existing)
  if (!current) {
    throw new WebhookError(
      'CONFLICT',
      `Pod already has a volume named ${volumeName} that is not a projected serviceAccountToken volume; the name is ` +
        `reserved for the workload identity token, rename that volume`,
    )
  }
  const [token, ...more] = current.tokens
  if (!token || more.length > 0) {
    throw new WebhookError(
      'CONFLICT',
      `Pod already has a volume named ${volumeName} projecting ${current.tokens.length} tokens; the name is reserved ` +
        `for one workload identity token, rename that volume`,
    )
  }
  if (isDesiredToken(token, c)) return undefined
  // Brought up to date in place: API server defaults (projected.defaultMode) and any other field are kept, so the
  // patch only replaces or adds values, never removes any.
  const updated = { ...token, audience: c.audience, expirationSeconds: c.expirationSeconds, path: c.tokenPath }
  const out = [...volumes]
  out[i] = { ...existing, projected: { ...current.projected, sources: [{ serviceAccountToken: updated }] } }
  return out
}

const moveAdvice = 'choose another directory with the federated-token-file annotation or move that mount'

const isDesiredMount = (m: JsonObject, c: IdentityConfig): boolean =>
  own(m, 'mountPath') === c.mountPath && own(m, 'readOnly') === true

/** True when normal path `p` lies below normal directory `dir` (not `/`): `/a/b/c` is inside `/a/b`, `/a/bc` is not. */
const isInside = (p: string, dir: string): boolean =>
  p.length > dir.length && p.charCodeAt(dir.length) === 0x2f && p.startsWith(dir)

/**
 * Brings one container to the configuration. Returns the same object when nothing changes.
 * Conflicts are pushed to `conflicts`; warnings to `warnings`.
 *
 * The one mount the webhook writes is its volume at the token directory, and only when nothing else is at or
 * inside that directory and the volume is mounted at most once (every mount of it belongs there). So no container
 * it changes ends up with two mounts at one path, which the API server rejects ("mountPath must be unique").
 */
const mutateContainer = (
  container: JsonObject,
  where: string,
  c: IdentityConfig,
  conflicts: string[],
  warnings: string[],
): JsonObject => {
  const name = nameOf(container)
  const mounts = objectList(container, 'volumeMounts', where)
  const env = objectList(container, 'env', where)
  const target = c.mountPath
  const found = conflicts.length
  let ours = -1
  let oursCount = 0
  // One pass, since nearly every container has a few mounts, none of them ours, all with normal paths.
  for (const [i, m] of mounts.entries()) {
    const mountPath = own(m, 'mountPath')
    if (!isString(mountPath)) return badPod(`${where}.volumeMounts[${i}].mountPath`, 'must be a string')
    if (nameOf(m) === volumeName) {
      if (oursCount++ === 0) ours = i
      continue
    }
    const p = normalMountPath(mountPath)
    if (p === target) {
      const volume = quote(nameOf(m))
      conflicts.push(`container ${quote(name)} already mounts volume ${volume} at ${target}; ${moveAdvice}`)
    } else if (isInside(p, target)) {
      // A mount below ours covers the token (a subPath file at .../token) or part of the projection.
      const volume = quote(nameOf(m))
      conflicts.push(
        `container ${quote(name)} mounts volume ${volume} at ${quote(mountPath)}, ` +
          `inside the token directory ${target}, on top of the token; ${moveAdvice}`,
      )
    }
  }
  if (oursCount > 1) {
    conflicts.push(
      `container ${quote(name)} mounts volume ${volumeName} ${oursCount} times; ` +
        `remove all but one: the webhook mounts it once, read-only at ${target}`,
    )
  }
  const existing = mounts[ours]
  if (existing && (own(existing, 'subPath') !== undefined || own(existing, 'subPathExpr') !== undefined)) {
    conflicts.push(
      `container ${quote(name)} mounts ${volumeName} with a subPath; remove the subPath, the webhook mounts the ` +
        `whole volume`,
    )
  }
  if (conflicts.length > found) return container

  let newMounts: JsonObject[] | undefined
  if (!existing) newMounts = [...mounts, { name: volumeName, mountPath: target, readOnly: true }]
  else if (!isDesiredMount(existing, c)) {
    // Moved or made read-only in place (other fields such as mountPropagation stay), so nothing is removed.
    newMounts = [...mounts]
    newMounts[ours] = { ...existing, mountPath: target, readOnly: true }
  }

  const added: JsonObject[] = []
  for (const want of c.env) {
    const have = env.find(e => nameOf(e) === want.name)
    if (!have) added.push({ name: want.name, value: want.value })
    else if (own(have, 'value') !== want.value || own(have, 'valueFrom') !== undefined) {
      warnings.push(boundWarning(`container ${name}: ${want.name} already set, keeping the container's value`))
    }
  }
  if (!newMounts && added.length === 0) return container
  const out: JsonObject = { ...container }
  if (newMounts) out['volumeMounts'] = newMounts
  if (added.length > 0) out['env'] = [...env, ...added]
  return out
}

/**
 * Injects the identity into every container and init container whose name is not in `skip`.
 * Throws CONFLICT (the conflicts in one message, the first 10 named) or BAD_POD.
 */
export const mutatePod = (pod: JsonObject, config: IdentityConfig, skip: ReadonlySet<string>): MutationResult => {
  const spec = own(pod, 'spec')
  if (!isObject(spec)) return badPod('spec', 'must be an object')
  const warnings: string[] = []
  const conflicts: string[] = []
  const seen = new Set<string>()
  let injected = 0
  let changed = false
  const newSpec: JsonObject = { ...spec }

  for (const field of ['initContainers', 'containers'] as const) {
    const list = objectList(spec, field, 'spec')
    let newList: JsonObject[] | undefined
    list.forEach((container, i) => {
      seen.add(nameOf(container))
      if (skip.has(nameOf(container))) return
      injected++
      const next = mutateContainer(container, `spec.${field}[${i}]`, config, conflicts, warnings)
      if (next !== container) (newList ??= [...list])[i] = next
    })
    if (newList) {
      newSpec[field] = newList
      changed = true
    }
  }
  for (const name of skip) {
    if (!seen.has(name))
      warnings.push(boundWarning(`skip-containers names ${quote(name)}, which is not a container of this Pod`))
  }
  if (conflicts.length > 0) throw new WebhookError('CONFLICT', conflictMessage(conflicts))
  if (injected === 0) return { pod, changed: false, injected, warnings }

  const volumes = mutateVolumes(objectList(spec, 'volumes', 'spec'), config)
  if (volumes) {
    newSpec['volumes'] = volumes
    changed = true
  }
  return changed
    ? { pod: { ...pod, spec: newSpec }, changed, injected, warnings }
    : { pod, changed, injected, warnings }
}
