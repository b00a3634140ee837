/**
 * The ServiceAccountSource for `serve`, backed by the Kubernetes API.
 * - `watch` mode: a paginated LIST, then a WATCH from the list's resourceVersion (bookmarks on, short server-side
 *   timeout, renewed), relisting on 410 Gone and reconnecting with capped, jittered exponential backoff otherwise.
 *   A miss (a ServiceAccount created a moment before its Pod) falls through to a live GET. While the watch is
 *   broken (between a failure and the next accepted watch), the copy may be stale, so every lookup is a live GET:
 *   an annotation added during the outage must not be missed. Over HTTP/1.1 a dead path gives no sign, so a watch
 *   counts as broken when the server does not end it shortly after its timeoutSeconds (`stalled`), and as failed
 *   when it ends well before that (`short`), with or without events: the copy is never trusted for more than
 *   {@link watchTiming}'s longest watch plus its slack after the path died. After a stall, lookups stay live until
 *   a watch delivers an event or ends at its timeout: a watch that is merely accepted may be just as silent.
 * - `off` mode: a live GET per lookup.
 * Live GETs are bounded by the lookup timeout and shared by concurrent lookups of the same name. A failed GET
 * rejects with SERVICEACCOUNT_LOOKUP_FAILED so the admission denies (fail closed), except that in `watch` mode a
 * ServiceAccount the copy holds is answered from it, marked with its age, while the copy was last known current
 * within `maxStalenessMs`: an API partition must not stop all Pod creation.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { WebhookError, errorMessage } from '../errors.js'
import { silentLogger } from '../log.js'
import type { Logger } from '../log.js'
import { Registry } from '../metrics.js'
import type { Counter } from '../metrics.js'
import { isGone, type ServiceAccountRequests } from './serviceaccount-api.js'
import type { ServiceAccount, ServiceAccountSource } from '../admission/serviceaccount.js'
import { ServiceAccountStore } from './serviceaccount-store.js'

/** `--serviceaccount-cache`: keep a watched copy, or ask the API server on every lookup. */
export type CacheMode = 'watch' | 'off'

/** Options of {@link ServiceAccountCache}; everything but `api` has a default. */
export interface ServiceAccountCacheOptions {
  /** The API requests: a ServiceAccountApi over the process's KubeClient (tests may hand in their own). */
  readonly api: ServiceAccountRequests
  /** Default `watch`. */
  readonly mode?: CacheMode
  readonly logger?: Logger
  /** Receives this cache's metrics (a private registry when omitted). */
  readonly registry?: Registry
  /** `--lookup-timeout` in ms for a live GET (default 2000). */
  readonly lookupTimeoutMs?: number
  /**
   * `--max-cache-staleness` in ms: when a live GET fails, a held copy last known current at most this long ago
   * answers instead (default 300,000; 0: never, the lookup fails).
   */
  readonly maxStalenessMs?: number
  /** How long a 404 is remembered in watch mode (default 5000 ms). */
  readonly notFoundTtlMs?: number
  /** Most 404s remembered at once, so lookups of random names cannot grow memory (default 10,000). */
  readonly maxNotFound?: number
  /** Milliseconds clock (404 memory, watch durations, the copy's age); injected for tests. */
  readonly epochMs?: () => number
  /** Source of jitter in [0, 1); injected for tests. */
  readonly random?: () => number
  /** LIST page size (default 500, as kubectl and client-go use). */
  readonly pageSize?: number
  /** Server-side watch duration in whole seconds, drawn from [min, max] for each watch (default 25–30). */
  readonly watchTimeoutSeconds?: { readonly min: number; readonly max: number }
  /** How long past its timeoutSeconds a watch may run before it counts as stalled (default 4000 ms). */
  readonly watchDeadlineSlackMs?: number
  /** First reconnect delay and the cap of the exponential backoff (defaults 500 ms and 30 s). */
  readonly backoffMs?: { readonly initial: number; readonly max: number }
}

/**
 * Default watch timing. A watch lasts 25–30 s (jittered so replicas do not renew in step); the server ends it, and
 * one it has not ended 4 s later is taken for a dead path. So a path that dies is noticed within 34 s (the bound is
 * 35 s), while a healthy idle watch, which the server always ends at its timeout, is never declared broken. Cost:
 * one WATCH per 25–30 s, about 131 (120–144) WATCH requests an hour per replica.
 */
export const watchTiming = { timeoutSeconds: { min: 25, max: 30 }, deadlineSlackMs: 4000 } as const

/** How a watch ended without an error; `reason` is its label on `serviceaccount_watch_restarts_total`. */
type WatchOutcome = { readonly reason: 'timeout' } | { readonly reason: 'short' | 'stalled'; readonly detail: string }

/** A {@link ServiceAccountSource} backed by the API server (see the module comment for the two modes). */
export class ServiceAccountCache implements ServiceAccountSource {
  readonly #mode: CacheMode
  readonly #api: ServiceAccountRequests
  readonly #logger: Logger
  readonly #epochMs: () => number
  readonly #random: () => number
  readonly #lookupTimeoutMs: number
  readonly #maxStalenessMs: number
  readonly #notFoundTtlMs: number
  readonly #maxNotFound: number
  readonly #pageSize: number
  readonly #watchTimeoutSeconds: { readonly min: number; readonly max: number }
  readonly #watchDeadlineSlackMs: number
  readonly #backoff: { readonly initial: number; readonly max: number }
  readonly #abort = new AbortController()
  readonly #inflight = new Map<string, Promise<ServiceAccount | undefined>>()
  /** namespace/name → when the API last answered 404 for it. */
  readonly #notFound = new Map<string, number>()
  readonly #lookups: Counter
  readonly #watchRestarts: Counter
  readonly #relists: Counter
  #store = new ServiceAccountStore()
  #resourceVersion = ''
  #synced = false
  /** True while the copy is known to follow the server: after a LIST, or once a watch is accepted. */
  #current = false
  /**
   * Set by a stalled watch: until a watch delivers an event or ends at its timeout, being accepted does not make the
   * copy current (a server or proxy may accept every watch and then say nothing).
   */
  #unproven = false
  /**
   * When the copy was last shown to be up to date: a LIST completed, a watch event arrived, or the server ended a
   * watch at its timeout. Merely accepting a watch proves nothing (a proxy may accept and close at once forever).
   */
  #confirmedAt = 0
  #running: Promise<void> | undefined
  #onSynced!: () => void
  readonly #syncedOnce = new Promise<void>(resolve => (this.#onSynced = resolve))

  constructor(options: ServiceAccountCacheOptions) {
    this.#mode = options.mode ?? 'watch'
    this.#logger = options.logger ?? silentLogger
    this.#api = options.api
    this.#epochMs = options.epochMs ?? Date.now
    this.#random = options.random ?? Math.random
    this.#lookupTimeoutMs = options.lookupTimeoutMs ?? 2000
    this.#maxStalenessMs = options.maxStalenessMs ?? 300_000
    this.#notFoundTtlMs = options.notFoundTtlMs ?? 5000
    this.#maxNotFound = options.maxNotFound ?? 10_000
    this.#pageSize = options.pageSize ?? 500
    this.#watchTimeoutSeconds = options.watchTimeoutSeconds ?? watchTiming.timeoutSeconds
    this.#watchDeadlineSlackMs = options.watchDeadlineSlackMs ?? watchTiming.deadlineSlackMs
    this.#backoff = options.backoffMs ?? { initial: 500, max: 30_000 }
    const registry = options.registry ?? new Registry()
    registry.gauge('serviceaccount_cache_size', 'ServiceAccounts held by the watch cache.', () => this.#store.size)
    this.#lookups = registry.counter(
      'serviceaccount_lookups_total',
      'ServiceAccount lookups by source (cache, api, stale: held copy, GET failed), result (found, not_found, error).',
    )
    this.#watchRestarts = registry.counter(
      'serviceaccount_watch_restarts_total',
      'ServiceAccount watches ended and restarted, by reason (timeout, short, stalled, error, gone).',
    )
    this.#relists = registry.counter('serviceaccount_relists_total', 'Full ServiceAccount LISTs after the initial one.')
  }

  /** Number of ServiceAccounts held (0 in `off` mode). */
  get size(): number {
    return this.#store.size
  }

  /** True once lookups can be answered: at once in `off` mode, after the initial sync in `watch` mode. */
  ready(): boolean {
    return !this.#abort.signal.aborted && (this.#mode === 'off' || this.#synced)
  }

  /**
   * Starts syncing and resolves after the initial LIST (at once in `off` mode). It never rejects: API failures are
   * logged and retried in the background with backoff while ready() stays false, so a readiness probe (not a
   * crash loop) reports the outage. It also resolves when stop() comes first; check ready() after awaiting it.
   */
  start(): Promise<void> {
    if (this.#mode === 'off') return Promise.resolve()
    this.#running ??= this.#run()
    return this.#syncedOnce
  }

  /** Aborts the watch, any request and backoff timer, and resolves when the sync loop has ended. */
  async stop(): Promise<void> {
    this.#abort.abort()
    await this.#running
    this.#onSynced()
  }

  /** Looks up a ServiceAccount (see {@link ServiceAccountSource.get}). */
  async get(namespace: string, name: string): Promise<ServiceAccount | undefined> {
    if (this.#mode === 'watch' && this.#current) {
      const cached = this.#store.get(namespace, name)
      if (cached) {
        this.#lookups.inc({ source: 'cache', result: 'found' })
        return cached
      }
      const seen = this.#notFound.get(`${namespace}/${name}`)
      if (seen !== undefined && this.#epochMs() < seen + this.#notFoundTtlMs) {
        this.#lookups.inc({ source: 'cache', result: 'not_found' })
        return undefined
      }
    }
    try {
      const sa = await this.#fetch(namespace, name)
      this.#lookups.inc({ source: 'api', result: sa ? 'found' : 'not_found' })
      return sa
    } catch (e) {
      // Synchronous after the GET gave up, so a stale answer waits no longer than --lookup-timeout either.
      const stale = this.#staleCopy(namespace, name)
      if (!stale) {
        this.#lookups.inc({ source: 'api', result: 'error' })
        throw e
      }
      this.#lookups.inc({ source: 'stale', result: 'found' })
      const reason = errorMessage(e) // #fetch rejects with WebhookErrors only
      const fields = { namespace, serviceAccount: name, staleMs: stale.staleMs, reason }
      this.#logger.warn('ServiceAccount answered from the cached copy: the API server could not be asked', fields)
      return stale
    }
  }

  /**
   * The held copy of a ServiceAccount, with its age, when the copy was last known current within the staleness
   * bound; undefined otherwise, and for one the API answered 404 since then (that answer is newer than the copy).
   */
  #staleCopy(namespace: string, name: string): ServiceAccount | undefined {
    if (this.#maxStalenessMs === 0) return undefined
    const staleMs = this.#current ? 0 : this.#epochMs() - this.#confirmedAt
    if (staleMs > this.#maxStalenessMs) return undefined
    const seen = this.#notFound.get(`${namespace}/${name}`)
    if (seen !== undefined && seen >= this.#confirmedAt) return undefined
    const sa = this.#store.get(namespace, name)
    return sa && { ...sa, staleMs }
  }

  /** One live GET per name at a time; concurrent lookups share it. */
  #fetch(namespace: string, name: string): Promise<ServiceAccount | undefined> {
    const key = `${namespace}/${name}`
    const shared = this.#inflight.get(key)
    if (shared) return shared
    const request = this.#api.get(namespace, name, this.#lookupTimeoutMs, this.#abort.signal).then(
      sa => {
        if (!sa && this.#mode === 'watch') this.#rememberNotFound(key)
        return sa
      },
      (e: unknown) => {
        // Everything ServiceAccountApi rejects with is an Error (KubeApiError or a Node network error).
        const reason = errorMessage(e)
        throw new WebhookError(
          'SERVICEACCOUNT_LOOKUP_FAILED',
          `cannot look up ServiceAccount ${key} (${reason}); the Pod is denied rather than started without its ` +
            `identity, retry when the API server is reachable`,
          { cause: e },
        )
      },
    )
    const done = request.finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, done)
    return done
  }

  #rememberNotFound(key: string): void {
    // Only briefly: the ServiceAccount may be created right after, and the watch may not have delivered it yet.
    this.#notFound.delete(key)
    if (this.#notFound.size >= this.#maxNotFound) this.#notFound.delete(this.#notFound.keys().next().value as string)
    this.#notFound.set(key, this.#epochMs())
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal
    let needList = true
    let failures = 0
    // Whether a watch delivered anything since the last LIST began: a 410 without it means the server keeps
    // refusing, and relisting at once would hammer it with full LISTs.
    let progressed = false
    while (!signal.aborted) {
      let what: string
      let reason: string
      try {
        if (needList) {
          progressed = false
          await this.#list(signal)
          needList = false
        }
        const outcome = await this.#watch(signal, () => (progressed = true))
        if (outcome === undefined) break
        this.#watchRestarts.inc({ reason: outcome.reason })
        if (outcome.reason === 'timeout') {
          failures = 0
          this.#logger.debug('ServiceAccount watch ended; renewing', { resourceVersion: this.#resourceVersion })
          continue
        }
        this.#current = false
        what =
          outcome.reason === 'short'
            ? 'ServiceAccount watch ended before its timeout; reconnecting after a pause'
            : 'ServiceAccount watch stalled: the server did not end it in time, the connection may be dead; ' +
              'reconnecting'
        reason = outcome.detail
      } catch (e) {
        if (signal.aborted) break
        this.#current = false
        reason = errorMessage(e)
        if (isGone(e)) {
          // The resourceVersion (or a continue token) fell out of the server's history: only a fresh LIST can
          // restore a consistent copy.
          if (!needList) this.#watchRestarts.inc({ reason: 'gone' })
          needList = true
          if (progressed) {
            failures = 0
            this.#logger.info('ServiceAccount resourceVersion expired (410 Gone); listing again', { reason })
            continue
          }
        } else if (!needList) this.#watchRestarts.inc({ reason: 'error' })
        what = isGone(e)
          ? 'ServiceAccount resourceVersion expired (410 Gone) with no progress since the last list; ' +
            'listing again after a pause'
          : needList
            ? 'ServiceAccount list failed; retrying'
            : 'ServiceAccount watch failed; reconnecting'
      }
      failures++
      const delay = this.#delay(failures)
      this.#logger.warn(what, { reason, retryInMs: Math.round(delay) })
      await sleep(delay, undefined, { signal }).catch(() => {})
    }
  }

  /**
   * One watch from the current resourceVersion. Resolves with how it ended (undefined when stopped): `timeout` when
   * the server ended it normally; `short` when it ended sooner than its timeoutSeconds (1 s of slack for clock
   * granularity), with or without events (client-go's "very short watch" needs no event, which leaves a server that
   * sends one and closes a renewal loop); `stalled` when the server had not ended it by the deadline. Rejects on any
   * other failure.
   */
  async #watch(signal: AbortSignal, onProgress: () => void): Promise<WatchOutcome | undefined> {
    const { min, max } = this.#watchTimeoutSeconds
    const timeoutSeconds = min + Math.floor(this.#random() * (max - min + 1))
    const deadlineMs = timeoutSeconds * 1000 + this.#watchDeadlineSlackMs
    const started = this.#epochMs()
    let events = 0
    const request = { resourceVersion: this.#resourceVersion, timeoutSeconds, deadlineMs, signal }
    const end = await this.#api.watch(request, {
      onChange: (type, sa) => (type === 'DELETED' ? this.#store.delete(sa.namespace, sa.name) : this.#store.set(sa)),
      onResourceVersion: rv => {
        this.#resourceVersion = rv
        this.#confirmedAt = this.#epochMs()
        this.#current = true
        this.#unproven = false
        events++
        onProgress()
      },
      onOpen: () => {
        if (!this.#unproven) this.#current = true
      },
    })
    if (end === 'aborted') return undefined
    const watch = `a ${timeoutSeconds} s watch`
    if (end === 'deadline') {
      this.#unproven = true
      return { reason: 'stalled', detail: `stream not ended within ${deadlineMs} ms of ${watch}` }
    }
    const ms = this.#epochMs() - started
    // Whatever it delivered: a server that answers each watch with one event (or bookmark) and closes would otherwise
    // get thousands of WATCHes a second, as one that closes without any event did.
    if (ms < (timeoutSeconds - 1) * 1000) {
      return { reason: 'short', detail: `ended after ${ms} ms of ${watch} (events: ${events})` }
    }
    this.#confirmedAt = this.#epochMs()
    this.#unproven = false
    return { reason: 'timeout' }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const started = this.#epochMs()
    const fresh = new ServiceAccountStore()
    if (this.#synced) this.#relists.inc()
    this.#resourceVersion = await this.#api.list(this.#pageSize, signal, sa => fresh.set(sa))
    // Swap only after a complete list, so lookups keep being answered from the old copy meanwhile.
    this.#store = fresh
    this.#logger.info('ServiceAccount list complete', {
      serviceAccounts: fresh.size,
      resourceVersion: this.#resourceVersion,
      metadataOnly: this.#api.metadataOnly,
      ms: this.#epochMs() - started,
    })
    this.#synced = true
    this.#current = true
    this.#confirmedAt = this.#epochMs()
    this.#onSynced()
  }

  /** Capped exponential backoff with jitter in [½, 1] of the step, so many webhooks do not reconnect in step. */
  #delay(failures: number): number {
    const step = Math.min(this.#backoff.max, this.#backoff.initial * 2 ** (failures - 1))
    return step / 2 + (this.#random() * step) / 2
  }
}
