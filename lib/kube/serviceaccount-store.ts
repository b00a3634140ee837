/**
 * The in-memory ServiceAccount table behind the watch cache, laid out for 100,000 entries in little memory:
 * namespace → name → entry. An unannotated ServiceAccount (the vast majority) is one shared sentinel; one that
 * carries only the e-mail annotation (the common annotated case) is that e-mail string alone; any other is a flat
 * key/value string array. The {@link ServiceAccount} shape is rebuilt on read.
 */
import { keys } from '../names.js'
import { emptyAnnotations, type ServiceAccount } from '../admission/serviceaccount.js'

/** Shared by every ServiceAccount without our annotations: such an entry costs only its name and a map slot. */
const unannotated: readonly string[] = Object.freeze([])

/** The e-mail alone, `[key1, value1, key2, value2, …]`, or {@link unannotated}. */
type Entry = string | readonly string[]

const toEntry = (sa: ServiceAccount): Entry => {
  const { annotations } = sa
  if (annotations.size === 0) return unannotated
  const email = annotations.get(keys.email)
  if (annotations.size === 1 && email !== undefined) return email
  // Sized up front: growing by push() would reserve about 17 slots (150 bytes) for a typical entry.
  const entry = new Array<string>(2 * annotations.size)
  let i = 0
  for (const [k, v] of annotations) {
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
    if (entry === unannotated) return { namespace, name, annotations: emptyAnnotations }
    if (typeof entry === 'string') return { namespace, name, annotations: new Map([[keys.email, entry]]) }
    const annotations = new Map<string, string>()
    for (let i = 0; i < entry.length; i += 2) annotations.set(entry[i] as string, entry[i + 1] as string)
    return { namespace, name, annotations }
  }
}
