/**
 * The offline ServiceAccount source: ServiceAccounts read from JSON documents (`kubectl get sa -o json`), for the
 * `mutate` command and `serve --service-account`. No API server is involved.
 */
import { WebhookError } from '../errors.js'
import { isObject, isString, own, parseJson, quote, type JsonObject } from '../json.js'
import { toServiceAccount, type ServiceAccount, type ServiceAccountSource } from './serviceaccount.js'

const kindOf = (o: JsonObject): unknown => own(o, 'kind')

/**
 * Reads ServiceAccounts from a parsed JSON document: one ServiceAccount, or a List / ServiceAccountList of them
 * (`kubectl get sa -A -o json`). `origin` names the document in error messages.
 */
export const serviceAccountsFromDocument = (doc: unknown, origin: string): ServiceAccount[] => {
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
  return items.map((item, i) => {
    if (!isObject(item) || (kindOf(item) !== undefined && kindOf(item) !== 'ServiceAccount'))
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
export const loadServiceAccountFiles = async (
  files: readonly string[],
  readFile: (path: string) => Promise<string>,
): Promise<ServiceAccount[]> => {
  const out: ServiceAccount[] = []
  for (const file of files) {
    const origin = `--service-account file ${file}`
    let text: string
    try {
      text = await readFile(file)
    } catch (e) {
      const code = isObject(e) ? own(e, 'code') : undefined
      throw new WebhookError('BAD_INPUT_FILE', `cannot read ${origin}${isString(code) ? ` (${code})` : ''}`, {
        cause: e,
      })
    }
    out.push(
      ...serviceAccountsFromDocument(
        parseJson(text, () => new WebhookError('BAD_INPUT_FILE', `${origin} is not valid JSON`)),
        origin,
      ),
    )
  }
  return out
}
