/**
 * The ServiceAccount as this webhook needs it: namespace, name and only the annotations under our prefix,
 * plus the source interface every way of finding ServiceAccounts implements (offline files, API GET, watch cache).
 */
import { isObject, isString, own } from '../json.js'
import { annotationPrefix } from '../names.js'

/** A ServiceAccount reduced to what the mutation reads. */
export interface ServiceAccount {
  readonly namespace: string
  readonly name: string
  /** Only annotations whose key starts with the workload-identity prefix. */
  readonly annotations: ReadonlyMap<string, string>
  /**
   * Set only when the answer came from a cached copy that may be behind, because the API server could not be
   * asked: milliseconds since the copy was last known current. The review warns with it.
   */
  readonly staleMs?: number
}

/** Finds ServiceAccounts for the admission path. */
export interface ServiceAccountSource {
  /**
   * The ServiceAccount, or `undefined` when it does not exist. Rejects with a WebhookError coded
   * `SERVICEACCOUNT_LOOKUP_FAILED` when existence cannot be decided (fail closed: the caller denies).
   */
  get(namespace: string, name: string): Promise<ServiceAccount | undefined>
  /** True once the source can answer lookups (a cache: after its initial sync). */
  ready(): boolean
}

/** The one empty annotation map, shared by everything without our annotations. */
export const emptyAnnotations: ReadonlyMap<string, string> = new Map()

/**
 * Keeps only our-prefix string entries of a labels or annotations object; shares {@link emptyAnnotations} for the
 * (common) case without any.
 */
export const prefixedAnnotations = (annotations: unknown): ReadonlyMap<string, string> => {
  if (!isObject(annotations)) return emptyAnnotations
  let out: Map<string, string> | undefined
  for (const [k, v] of Object.entries(annotations)) {
    if (typeof v === 'string' && k.startsWith(annotationPrefix)) (out ??= new Map()).set(k, v)
  }
  return out ?? emptyAnnotations
}

/**
 * Reduces a ServiceAccount object (or its PartialObjectMetadata) to a {@link ServiceAccount}; undefined if unusable.
 * Its resourceVersion is not kept: the mutation never reads it, and the cache tracks the list's version itself.
 */
export const toServiceAccount = (obj: unknown): ServiceAccount | undefined => {
  if (!isObject(obj)) return undefined
  const meta = own(obj, 'metadata')
  if (!isObject(meta)) return undefined
  const name = own(meta, 'name')
  const namespace = own(meta, 'namespace')
  if (!isString(name) || name === '' || !isString(namespace) || namespace === '') return undefined
  return { namespace, name, annotations: prefixedAnnotations(own(meta, 'annotations')) }
}
