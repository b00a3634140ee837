/**
 * The three ServiceAccount requests the cache makes (GET one, paginated LIST, WATCH), with metadata-only content
 * negotiation: the server sends PartialObjectMetadata, so the secrets lists never cross the wire. When a server
 * refuses that representation (406/415) or ignores it (answers the full kind), plain JSON is used from then on.
 */
import { bodyExcerpt } from '../http-excerpt.js'
import { isObject, isString, own, quote } from '../json.js'
import { KubeApiError, apiStatusOf } from './kube-client.js'
import type { KubeClient, WatchEnd } from './kube-client.js'
import type { Logger } from '../log.js'
import { toServiceAccount } from '../admission/serviceaccount.js'
import type { ServiceAccount } from '../admission/serviceaccount.js'

/** Cluster-wide ServiceAccount collection. */
export const serviceAccountsPath = '/api/v1/serviceaccounts'

/** Accept headers: metadata-only (meta.k8s.io/v1) for lists and for single objects or watch events, else JSON. */
export const accepts = {
  list: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1',
  object: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1',
  json: 'application/json',
} as const

const listKinds = new Set(['PartialObjectMetadataList', 'ServiceAccountList'])
const objectKinds = new Set(['PartialObjectMetadata', 'ServiceAccount'])

/** The watch event types that carry a ServiceAccount. */
export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED'
const isChangeType = (t: unknown): t is ChangeType => t === 'ADDED' || t === 'MODIFIED' || t === 'DELETED'

/** True when the error is 410 Gone (expired resourceVersion or continue token): the caller must list again. */
export const isGone = (e: unknown): boolean => apiStatusOf(e) === 410

/** What a watch reports, one call per event. */
export interface WatchHandlers {
  /** ADDED, MODIFIED or DELETED of one ServiceAccount. */
  readonly onChange: (type: ChangeType, sa: ServiceAccount) => void
  /** The newest resourceVersion seen (every event, bookmarks included). */
  readonly onResourceVersion: (rv: string) => void
  /** The server accepted the watch: from now on, changes stream in. */
  readonly onOpen: () => void
}

/** Options of {@link ServiceAccountApi.watch}. */
export interface WatchRequest {
  readonly resourceVersion: string
  /** Server-side duration of this watch; the caller renews it. */
  readonly timeoutSeconds: number
  /** Client-side deadline from the watch's acceptance (ms): beyond it the stream is cut and `deadline` reported. */
  readonly deadlineMs: number
  readonly signal: AbortSignal
}

/** The ServiceAccount requests the cache makes; {@link ServiceAccountApi} over a KubeClient, or a test's own. */
export interface ServiceAccountRequests {
  /** False once the server has shown it does not serve metadata-only responses. */
  readonly metadataOnly: boolean
  /** One ServiceAccount, or undefined on 404. */
  get(namespace: string, name: string, timeoutMs: number, signal: AbortSignal): Promise<ServiceAccount | undefined>
  /** Every ServiceAccount, page by page, through `onItem`; resolves with the list's resourceVersion. */
  list(pageSize: number, signal: AbortSignal, onItem: (sa: ServiceAccount) => void): Promise<string>
  /** One watch until it ends; resolves with how it ended. */
  watch(request: WatchRequest, handlers: WatchHandlers): Promise<WatchEnd>
}

/** Typed ServiceAccount requests over a {@link KubeClient}. */
export class ServiceAccountApi implements ServiceAccountRequests {
  readonly #client: KubeClient
  readonly #logger: Logger
  #metadataOnly = true

  constructor(client: KubeClient, logger: Logger) {
    this.#client = client
    this.#logger = logger
  }

  /** False once the server has shown it does not serve metadata-only responses. */
  get metadataOnly(): boolean {
    return this.#metadataOnly
  }

  /** One ServiceAccount, or undefined on 404. Rejects with KubeApiError otherwise. */
  async get(
    namespace: string,
    name: string,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<ServiceAccount | undefined> {
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}`
    let body: unknown
    try {
      body = await this.#negotiate(accepts.object, accept => this.#client.getJson(path, { accept, timeoutMs, signal }))
    } catch (e) {
      if (apiStatusOf(e) === 404) return undefined
      throw e
    }
    const sa = this.#checkKind(body, objectKinds, `GET ${path}`) ? toServiceAccount(body) : undefined
    if (!sa) throw new KubeApiError(`GET ${path}: the answer is not a ServiceAccount`, 200)
    return sa
  }

  /**
   * Lists every ServiceAccount page by page (`limit`/`continue`), calling `onItem` for each, and resolves with the
   * list's resourceVersion (the point a watch continues from).
   */
  async list(pageSize: number, signal: AbortSignal, onItem: (sa: ServiceAccount) => void): Promise<string> {
    let next = ''
    let rv: string
    do {
      const query = new URLSearchParams({ limit: String(pageSize) })
      if (next) query.set('continue', next)
      const path = `${serviceAccountsPath}?${query}`
      const body = await this.#negotiate(accepts.list, accept =>
        this.#client.getJson(path, { accept, signal, verb: 'LIST' }),
      )
      const meta = isObject(body) ? own(body, 'metadata') : undefined
      const items = isObject(body) ? own(body, 'items') : undefined
      const version = isObject(meta) ? own(meta, 'resourceVersion') : undefined
      if (
        !this.#checkKind(body, listKinds, `LIST ${path}`) ||
        !isObject(meta) ||
        !isString(version) ||
        !Array.isArray(items)
      ) {
        throw new KubeApiError(`LIST ${path}: the answer is not a ServiceAccount list`, 200)
      }
      rv = version
      for (const item of items) {
        const sa = toServiceAccount(item)
        if (sa) onItem(sa)
      }
      const cont = own(meta, 'continue')
      next = isString(cont) ? cont : ''
    } while (next)
    return rv
  }

  /**
   * Watches from a resourceVersion until the stream ends, and says how it ended (see {@link WatchEnd}); an ERROR
   * event rejects with its code.
   */
  watch(request: WatchRequest, handlers: WatchHandlers): Promise<WatchEnd> {
    const query = new URLSearchParams({
      watch: 'true',
      resourceVersion: request.resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(request.timeoutSeconds),
    })
    const path = `${serviceAccountsPath}?${query}`
    return this.#negotiate(accepts.object, accept =>
      this.#client.watch(path, {
        accept,
        signal: request.signal,
        deadlineMs: request.deadlineMs,
        onOpen: handlers.onOpen,
        onEvent: event => this.#onEvent(path, event, handlers),
      }),
    )
  }

  #onEvent(path: string, event: unknown, handlers: WatchHandlers): void {
    const type = isObject(event) ? own(event, 'type') : undefined
    const object = isObject(event) ? own(event, 'object') : undefined
    if (type === 'ERROR') {
      const code = isObject(object) ? own(object, 'code') : undefined
      const message = isObject(object) ? own(object, 'message') : undefined
      throw new KubeApiError(
        `WATCH ${path}: ERROR event ${String(code)}: ${isString(message) ? bodyExcerpt(message) : ''}`,
        typeof code === 'number' ? code : undefined,
      )
    }
    const meta = isObject(object) ? own(object, 'metadata') : undefined
    const rv = isObject(meta) ? own(meta, 'resourceVersion') : undefined
    if (type === 'BOOKMARK' && isString(rv)) return handlers.onResourceVersion(rv)
    const sa =
      isChangeType(type) && this.#checkKind(object, objectKinds, `WATCH ${path}`) ? toServiceAccount(object) : undefined
    if (!isChangeType(type) || !sa || !isString(rv))
      throw new KubeApiError(`WATCH ${path}: unexpected event ${quote(type)}`, 200)
    handlers.onChange(type, sa)
    handlers.onResourceVersion(rv)
  }

  /** True for an accepted kind; a full-object kind while we asked for metadata means the server ignored `as=`. */
  #checkKind(body: unknown, kinds: ReadonlySet<string>, what: string): boolean {
    const kind = isObject(body) ? own(body, 'kind') : undefined
    if (!isString(kind) || !kinds.has(kind)) return false
    if (this.#metadataOnly && !kind.startsWith('PartialObjectMetadata')) {
      this.#metadataOnly = false
      this.#logger.info('the API server ignored the metadata-only Accept header; using plain JSON', { request: what })
    }
    return true
  }

  /** Runs `send` with the metadata-only type, falling back to plain JSON for good after a 406 or 415. */
  async #negotiate<T>(metadataType: string, send: (accept: string) => Promise<T>): Promise<T> {
    if (!this.#metadataOnly) return send(accepts.json)
    try {
      return await send(metadataType)
    } catch (e) {
      const status = apiStatusOf(e)
      if (status !== 406 && status !== 415) throw e
      this.#metadataOnly = false
      this.#logger.info('the API server does not serve metadata-only responses; using plain JSON', { status })
      return send(accepts.json)
    }
  }
}
