/**
 * The in-memory ServiceAccount table behind the watch cache, laid out for 100,000 entries in little memory:
 * namespace → name → entry, where an unannotated ServiceAccount (the vast majority) is one shared sentinel and an
 * annotated one is a flat string array. The {@link ServiceAccount} shape is rebuilt on read.
 */
import type { ServiceAccount } from './serviceaccount.js'

/** Shared by every ServiceAccount without our annotations: such an entry costs only its name and a map slot. */
const unannotated: readonly string[] = Object.freeze([])
const noAnnotations: ReadonlyMap<string, string> = new Map()

/** `[resourceVersion, key1, value1, key2, value2, …]`, or {@link unannotated}. */
type Entry = readonly string[]

const toEntry = (sa: ServiceAccount): Entry => {
  // Nothing reads the annotations or version of an unannotated ServiceAccount, so neither is stored.
  if (sa.annotations.size === 0) return unannotated
  // Sized up front: growing by push() would reserve about 17 slots (150 bytes) for a typical 3-element entry.
  const entry = new Array<string>(1 + 2 * sa.annotations.size)
  entry[0] = sa.resourceVersion ?? ''
  let i = 1
  for (const [k, v] of sa.annotations) {
    entry[i++] = k
    entry[i++] = v
  }
  return entry
}

/** A compact namespace/name → ServiceAccount map. */
export class ServiceAccountStore {
  readonly #byNamespace = new Map<string, Map<string, Entry>>()
  #size = 0

  /** Number of ServiceAccounts held. */
  get size(): number {
    return this.#size
  }

  /** Adds or replaces a ServiceAccount. */
  set(sa: ServiceAccount): void {
    let names = this.#byNamespace.get(sa.namespace)
    if (!names) this.#byNamespace.set(sa.namespace, (names = new Map()))
    if (!names.has(sa.name)) this.#size++
    names.set(sa.name, toEntry(sa))
  }

  /** Removes a ServiceAccount (no-op when absent). */
  delete(namespace: string, name: string): void {
    const names = this.#byNamespace.get(namespace)
    if (!names?.delete(name)) return
    this.#size--
    if (names.size === 0) this.#byNamespace.delete(namespace)
  }

  /** The ServiceAccount, rebuilt into the shape the mutation reads; undefined when absent. */
  get(namespace: string, name: string): ServiceAccount | undefined {
    const entry = this.#byNamespace.get(namespace)?.get(name)
    if (entry === undefined) return undefined
    if (entry === unannotated) return { namespace, name, annotations: noAnnotations }
    const annotations = new Map<string, string>()
    for (let i = 1; i < entry.length; i += 2) annotations.set(entry[i]!, entry[i + 1]!)
    const rv = entry[0]!
    return rv === '' ? { namespace, name, annotations } : { namespace, name, annotations, resourceVersion: rv }
  }
}
