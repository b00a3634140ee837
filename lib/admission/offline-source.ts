/**
 * The offline ServiceAccount source: ServiceAccounts read from JSON documents (`kubectl get sa -o json`), for the
 * `mutate` and `validate` commands and `serve --service-account`. No API server is involved.
 */
import { WebhookError } from '../errors.js'
import { isObject, isString, own, parseJson, quote, type JsonObject } from '../json.js'
import { toServiceAccount, type ServiceAccount, type ServiceAccountSource } from './serviceaccount.js'

const kindOf = (o: JsonObject): unknown => own(o, 'kind')

/** The kinds a document may have. */
const documentKinds: readonly unknown[] = ['ServiceAccount', 'List', 'ServiceAccountList']

/** Told why an object of another kind was skipped; without it, such an object makes the document unusable. */
export type OnOtherKind = (message: string) => void

/**
 * Reads ServiceAccounts from a parsed JSON document: one ServiceAccount, or a List / ServiceAccountList of them
 * (`kubectl get sa -A -o json`). `origin` names the document in error messages. An item of another kind is refused,
 * or skipped and named to `onOtherKind` when that is given.
 */
export const serviceAccountsFromDocument = (
  doc: unknown,
  origin: string,
  onOtherKind?: OnOtherKind,
): ServiceAccount[] => {
  const fail = (why: string): never => {
    throw new WebhookError(
      'BAD_INPUT_FILE',
      `${origin}: ${why}; expected a ServiceAccount or a List of them (kubectl get sa -o json)`,
    )
  }
  if (!isObject(doc)) return fail('not a JSON object')
  const kind = kindOf(doc)
  const items =
    kind === 'ServiceAccount'
      ? [doc]
      : kind === 'List' || kind === 'ServiceAccountList'
        ? own(doc, 'items')
        : fail(`kind is ${quote(kind)}`)
  if (!Array.isArray(items)) return fail('items is not an array')
  return items.flatMap((item, i) => {
    const itemKind = isObject(item) ? kindOf(item) : undefined
    if (isString(itemKind) && itemKind !== 'ServiceAccount' && onOtherKind !== undefined) {
      onOtherKind(`${origin}: item ${i} (kind ${quote(itemKind)}) is not a ServiceAccount: skipped`)
      return []
    }
    if (!isObject(item) || (itemKind !== undefined && itemKind !== 'ServiceAccount'))
      return fail(`item ${i} is not a ServiceAccount`)
    // kubectl's output always carries the namespace; hand-written files often leave it out.
    const meta = own(item, 'metadata')
    const withNamespace =
      isObject(meta) && own(meta, 'namespace') === undefined
        ? { ...item, metadata: { ...meta, namespace: 'default' } }
        : item
    return toServiceAccount(withNamespace) ?? fail(`item ${i} has no metadata.name`)
  })
}

// JSON's whitespace, the only text allowed between documents.
const jsonSpace = /[ \t\n\r]/

/**
 * The JSON documents in `text`: one, or several objects or arrays one after another, as `kubectl create -o json`,
 * `yq` and `jq` print several objects. Throws `onError()` when the text is not that.
 */
const parseJsonDocuments = (text: string, onError: () => Error): unknown[] => {
  try {
    return [JSON.parse(text) as unknown]
  } catch {
    // Not one document: split the text at the ends of its top-level values, each then parsed on its own.
  }
  const docs: unknown[] = []
  let depth = 0
  let start = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i)
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
    } else if (depth === 0 && !(c === '{' || c === '[')) {
      if (!jsonSpace.test(c)) throw onError()
    } else if (c === '"') {
      inString = true
    } else if (c === '{' || c === '[') {
      if (depth++ === 0) start = i
    } else if ((c === '}' || c === ']') && --depth === 0) {
      docs.push(parseJson(text.slice(start, i + 1), onError))
    }
  }
  if (depth !== 0 || docs.length === 0) throw onError()
  return docs
}

/**
 * Reads ServiceAccounts from the text of JSON documents (the `validate` command): one document as
 * {@link serviceAccountsFromDocument} reads it, or several one after another, each a ServiceAccount or a List, where
 * an object of another kind is refused or, with `onOtherKind`, skipped and named to it.
 */
export const serviceAccountsFromText = (text: string, origin: string, onOtherKind?: OnOtherKind): ServiceAccount[] => {
  const docs = parseJsonDocuments(text, () => new WebhookError('BAD_INPUT_FILE', `${origin} is not valid JSON`))
  if (docs.length === 1) return serviceAccountsFromDocument(docs[0], origin, onOtherKind)
  return docs.flatMap((doc, i) => {
    const where = `${origin}: document ${i + 1}`
    const kind = isObject(doc) ? kindOf(doc) : undefined
    if (isString(kind) && !documentKinds.includes(kind) && onOtherKind !== undefined) {
      onOtherKind(`${where} (kind ${quote(kind)}) is not a ServiceAccount: skipped`)
      return []
    }
    return serviceAccountsFromDocument(doc, where, onOtherKind)
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

/** A file's text through `readFile`; a failure names `origin` and the error's code, never the file's contents. */
export const readInputFile = async (
  file: string,
  origin: string,
  readFile: (path: string) => Promise<string>,
): Promise<string> => {
  try {
    return await readFile(file)
  } catch (e) {
    const code = isObject(e) ? own(e, 'code') : undefined
    throw new WebhookError('BAD_INPUT_FILE', `cannot read ${origin}${isString(code) ? ` (${code})` : ''}`, {
      cause: e,
    })
  }
}

/**
 * Reads ServiceAccounts from JSON files (`--service-account` of `mutate` and of `serve`'s offline mode) through
 * `readFile`. Errors name the file and, for a read failure, its error code; never the file's contents.
 */
export const loadServiceAccountFiles = async (
  files: readonly string[],
  readFile: (path: string) => Promise<string>,
): Promise<ServiceAccount[]> => {
  const out: ServiceAccount[] = []
  for (const file of files) {
    const origin = `--service-account file ${file}`
    const text = await readInputFile(file, origin, readFile)
    out.push(
      ...serviceAccountsFromDocument(
        parseJson(text, () => new WebhookError('BAD_INPUT_FILE', `${origin} is not valid JSON`)),
        origin,
      ),
    )
  }
  return out
}
