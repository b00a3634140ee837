/**
 * The ServiceAccount as this webhook needs it: namespace, name and only the annotations under our prefix,
 * plus the source interface every way of finding ServiceAccounts implements (static files, API GET, watch cache).
 */
import { WebhookError } from '../errors.js'
import { isObject, isString, own, parseJson, type JsonObject } from '../json.js'
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

const kindOf = (o: JsonObject): unknown => own(o, 'kind')

/**
 * Reads ServiceAccounts from a parsed JSON document: one ServiceAccount, or a List / ServiceAccountList of them
 * (`kubectl get sa -A -o json`). `origin` names the document in error messages.
 */
export const serviceAccountsFromDocument = (doc: unknown, origin: string): ServiceAccount[] => {
  const fail = (why: string): never => {
    throw new WebhookError('BAD_INPUT_FILE', `${origin}: ${why}; expected a ServiceAccount or a List of them (kubectl get sa -o json)`)
  }
  if (!isObject(doc)) return fail('not a JSON object')
  const kind = kindOf(doc)
  const items = kind === 'ServiceAccount' ? [doc] : kind === 'List' || kind === 'ServiceAccountList' ? own(doc, 'items') : fail(`kind is ${JSON.stringify(kind ?? null)}`)
  if (!Array.isArray(items)) return fail('items is not an array')
  return items.map((item, i) => {
    if (!isObject(item) || kindOf(item) !== undefined && kindOf(item) !== 'ServiceAccount') return fail(`item ${i} is not a ServiceAccount`)
    // kubectl's output always carries the namespace; hand-written files often leave it out.
    const meta = own(item, 'metadata')
    const withNamespace = isObject(meta) && own(meta, 'namespace') === undefined ? { ...item, metadata: { ...meta, namespace: 'default' } } : item
    return toServiceAccount(withNamespace) ?? fail(`item ${i} has no metadata.name`)
  })
}

/** A fixed set of ServiceAccounts (the `mutate` CLI and `serve --service-account`): always ready, never fails. */
export class StaticServiceAccountSource implements ServiceAccountSource {
  readonly #byKey = new Map<string, ServiceAccount>()
  constructor(accounts: Iterable<ServiceAccount>) {
    for (const sa of accounts) this.#byKey.set(`${sa.namespace}/${sa.name}`, sa)
  }
  get(namespace: string, name: string): Promise<ServiceAccount | undefined> {
    return Promise.resolve(this.#byKey.get(`${namespace}/${name}`))
  }
  ready(): boolean {
    return true
  }
}

/**
 * Reads ServiceAccounts from JSON files (`--service-account` of `mutate` and of `serve`'s offline mode) through
 * `readFile`. Errors name the file and, for a read failure, its error code; never the file's contents.
 */
export const loadServiceAccountFiles = async (files: readonly string[], readFile: (path: string) => Promise<string>): Promise<ServiceAccount[]> => {
  const out: ServiceAccount[] = []
  for (const file of files) {
    const origin = `--service-account file ${file}`
    let text: string
    try {
      text = await readFile(file)
    } catch (e) {
      const code = isObject(e) ? own(e, 'code') : undefined
      throw new WebhookError('BAD_INPUT_FILE', `cannot read ${origin}${isString(code) ? ` (${code})` : ''}`, { cause: e })
    }
    out.push(...serviceAccountsFromDocument(parseJson(text, () => new WebhookError('BAD_INPUT_FILE', `${origin} is not valid JSON`)), origin))
  }
  return out
}
