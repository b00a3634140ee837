/**
 * A small REST client for the end-to-end tier: create, get, delete and server-side apply Kubernetes objects over
 * node:https, with the run's CA pinned and a bearer token. Tests read back exactly what the API server stored, and
 * a failed request surfaces the API server's own Status message (that is where admission denials appear).
 */
import https from 'node:https'
import type { IncomingHttpHeaders } from 'node:http'
import { isObject, isString, own } from '../../lib/json.js'
import type { JsonObject } from '../../lib/json.js'

/** What the API server answered: HTTP status, parsed JSON body (or the raw text) and the headers. */
export interface KubeResponse {
  readonly status: number
  readonly body: unknown
  readonly headers: IncomingHttpHeaders
  /** The `Warning` headers' texts (admission webhook warnings arrive here). */
  readonly warnings: readonly string[]
}

/** A request the API server refused; `message` is its Status message, `reason` its Status reason. */
export class KubeRestError extends Error {
  readonly status: number
  readonly reason: string | undefined
  constructor(method: string, path: string, response: KubeResponse) {
    const body = isObject(response.body) ? response.body : {}
    const message = own(body, 'message')
    super(`${method} ${path} → ${response.status}: ${isString(message) ? message : String(response.body)}`)
    this.name = 'KubeRestError'
    this.status = response.status
    const reason = own(body, 'reason')
    this.reason = isString(reason) ? reason : undefined
  }
}

/** Where each kind the tests use lives in the REST tree; objects of other kinds are refused by {@link objectPath}. */
const kinds: Readonly<Record<string, { readonly plural: string; readonly namespaced: boolean }>> = {
  Namespace: { plural: 'namespaces', namespaced: false },
  ServiceAccount: { plural: 'serviceaccounts', namespaced: true },
  Pod: { plural: 'pods', namespaced: true },
  Secret: { plural: 'secrets', namespaced: true },
  ConfigMap: { plural: 'configmaps', namespaced: true },
  Service: { plural: 'services', namespaced: true },
  Deployment: { plural: 'deployments', namespaced: true },
  Job: { plural: 'jobs', namespaced: true },
  PodDisruptionBudget: { plural: 'poddisruptionbudgets', namespaced: true },
  ClusterRole: { plural: 'clusterroles', namespaced: false },
  ClusterRoleBinding: { plural: 'clusterrolebindings', namespaced: false },
  Role: { plural: 'roles', namespaced: true },
  RoleBinding: { plural: 'rolebindings', namespaced: true },
  MutatingWebhookConfiguration: { plural: 'mutatingwebhookconfigurations', namespaced: false },
  ValidatingWebhookConfiguration: { plural: 'validatingwebhookconfigurations', namespaced: false },
}

/** The collection path of an API group version: `/api/v1` for the core group, `/apis/<group>/<version>` else. */
const groupVersionPath = (apiVersion: string): string =>
  apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`

/**
 * The REST path of an object's collection (`name` omitted) or of the object itself. A namespaced object without
 * `metadata.namespace` falls back to `defaultNamespace`, as kubectl does with `-n`.
 */
export const objectPath = (
  object: JsonObject,
  options: { readonly withName: boolean; readonly defaultNamespace?: string },
): string => {
  const apiVersion = own(object, 'apiVersion')
  const kind = own(object, 'kind')
  if (!isString(apiVersion) || !isString(kind)) throw new Error('object without apiVersion or kind')
  const entry = Object.hasOwn(kinds, kind) ? kinds[kind] : undefined
  if (entry === undefined) throw new Error(`kind ${kind} is not in the e2e REST table; add it to test/e2e/kube-rest.ts`)
  const metadata = own(object, 'metadata')
  const meta = isObject(metadata) ? metadata : {}
  const ns = own(meta, 'namespace')
  const name = own(meta, 'name')
  let path = groupVersionPath(apiVersion)
  if (entry.namespaced) {
    const namespace = isString(ns) && ns !== '' ? ns : options.defaultNamespace
    if (namespace === undefined) throw new Error(`${kind} needs a namespace`)
    path += `/namespaces/${encodeURIComponent(namespace)}`
  }
  path += `/${entry.plural}`
  if (options.withName) {
    if (!isString(name) || name === '') throw new Error(`${kind} needs metadata.name here`)
    path += `/${encodeURIComponent(name)}`
  }
  return path
}

/** Connection settings of {@link KubeRest}. */
export interface KubeRestOptions {
  /** `https://127.0.0.1:PORT` of the API server. */
  readonly server: URL
  /** PEM of the CA that signed the API server's certificate; the only CA trusted. */
  readonly ca: Buffer
  /** Bearer token of the identity the requests act as; empty: none is sent (the API server's anonymous user). */
  readonly token: string
  /** Per-request timeout in ms (default 30 s: the API server waits up to the webhook's timeout itself). */
  readonly timeoutMs?: number
}

/** Create/get/delete/apply over the API server's REST interface as one identity. */
export class KubeRest {
  readonly #options: KubeRestOptions
  // No keep-alive: a test's last request must not hold a socket that delays the process's exit.
  readonly #agent: https.Agent

  constructor(options: KubeRestOptions) {
    this.#options = options
    this.#agent = new https.Agent({ ca: options.ca, keepAlive: false })
  }

  /** The same server and CA, acting as another identity. */
  as(token: string): KubeRest {
    return new KubeRest({ ...this.#options, token })
  }

  /**
   * One request; never throws on an HTTP status (see the typed helpers for that). `accept` is sent as it is (the
   * issuer's key set, for one, is served only as `application/jwk-set+json`: `application/json` gets a 406).
   */
  request(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
    accept = 'application/json',
  ): Promise<KubeResponse> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    const headers: Record<string, string> = { accept }
    if (this.#options.token !== '') headers['authorization'] = `Bearer ${this.#options.token}`
    if (payload !== undefined) {
      headers['content-type'] = contentType
      headers['content-length'] = String(payload.length)
    }
    return new Promise((resolve, reject) => {
      const req = https.request(
        new URL(path, this.#options.server),
        {
          method,
          headers,
          agent: this.#agent,
          timeout: this.#options.timeoutMs ?? 30_000,
        },
        res => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('error', reject)
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            let parsed: unknown = text
            try {
              parsed = JSON.parse(text)
            } catch {
              // Some endpoints (/readyz, /healthz) answer plain text: keep it as is.
            }
            resolve({
              status: res.statusCode ?? 0,
              body: parsed,
              headers: res.headers,
              warnings: warningTexts(res.headersDistinct['warning'] ?? []),
            })
          })
        },
      )
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)))
      req.on('error', reject)
      req.end(payload)
    })
  }

  /** Like {@link request}, but a non-2xx status throws a {@link KubeRestError}; returns the JSON object. */
  async #expectObject(method: string, path: string, body?: unknown, contentType?: string): Promise<JsonObject> {
    const response = await this.request(method, path, body, contentType)
    if (response.status < 200 || response.status > 299) throw new KubeRestError(method, path, response)
    if (!isObject(response.body)) throw new Error(`${method} ${path}: the API server answered no JSON object`)
    return response.body
  }

  /** POSTs the object into its collection and returns what the API server stored. */
  create(object: JsonObject, defaultNamespace?: string): Promise<JsonObject> {
    const path = objectPath(
      object,
      defaultNamespace === undefined ? { withName: false } : { withName: false, defaultNamespace },
    )
    return this.#expectObject('POST', path, object)
  }

  /** GETs one object by path, e.g. `/api/v1/namespaces/ns/pods/name`. */
  get(path: string): Promise<JsonObject> {
    return this.#expectObject('GET', path)
  }

  /** POSTs to a path (subresources such as `…/serviceaccounts/NAME/token`). */
  post(path: string, body: unknown): Promise<JsonObject> {
    return this.#expectObject('POST', path, body)
  }

  /** DELETEs one object by path; a missing object is not an error (cleanup stays idempotent). */
  async delete(path: string): Promise<void> {
    const response = await this.request('DELETE', path)
    if (response.status === 404) return
    if (response.status < 200 || response.status > 299) throw new KubeRestError('DELETE', path, response)
  }

  /**
   * Server-side applies each object in order (as `kubectl apply --server-side --force-conflicts` would), so a
   * manifest list can be applied twice and later objects may refer to earlier ones. Returns what was stored and
   * every warning the API server sent.
   */
  async apply(
    objects: readonly unknown[],
    defaultNamespace?: string,
  ): Promise<{ objects: JsonObject[]; warnings: string[] }> {
    const stored: JsonObject[] = []
    const warnings: string[] = []
    for (const object of objects) {
      if (!isObject(object)) throw new Error('apply: every manifest must be an object')
      const path = objectPath(
        object,
        defaultNamespace === undefined ? { withName: true } : { withName: true, defaultNamespace },
      )
      // JSON is YAML, so the apply-patch content type takes the object as it is.
      const method = 'PATCH'
      const target = `${path}?fieldManager=stackit-e2e&force=true`
      const response = await this.request(method, target, object, 'application/apply-patch+yaml')
      if (response.status < 200 || response.status > 299) throw new KubeRestError(method, target, response)
      if (!isObject(response.body)) throw new Error(`${method} ${target}: the API server answered no JSON object`)
      stored.push(response.body)
      // Warnings (Pod Security for a workload's template, deprecated fields) name the object they came from.
      warnings.push(...response.warnings.map(w => `${path}: ${w}`))
    }
    return { objects: stored, warnings }
  }
}

/**
 * The texts of RFC 7234-style `Warning` headers (`299 - "text"`), which the API server uses for admission
 * warnings. The quoted texts are matched one by one, in case a proxy joined several into one header line.
 */
export const warningTexts = (values: readonly string[]): string[] => {
  const texts: string[] = []
  for (const value of values) {
    for (const match of value.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)) {
      const text = match[1]
      // Node reads header bytes as latin1; the API server sends the webhook's UTF-8 text as it is.
      if (text !== undefined) texts.push(Buffer.from(text.replace(/\\(.)/g, '$1'), 'latin1').toString('utf8'))
    }
  }
  return texts
}
