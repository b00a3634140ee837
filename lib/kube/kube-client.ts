/**
 * A minimal Kubernetes API client on node:https: JSON GET with Accept negotiation and a streaming watch.
 * Every request carries a timeout, a User-Agent and (when configured) a bearer token that is re-read from its file;
 * a 401 makes it re-read the token and try once more. Errors name method, path and status, never the token.
 */
import http from 'node:http'
import https from 'node:https'
import type { IncomingMessage } from 'node:http'
import { WebhookError } from '../errors.js'
import { bodyExcerpt } from '../http-excerpt.js'
import { isObject, isString, own } from '../json.js'
import { FileTokenSource } from './kube-token.js'
import type { KubeConnection } from './connection.js'
import { LineSplitter } from './line-splitter.js'
import { Registry } from '../metrics.js'
import type { Histogram } from '../metrics.js'
import { userAgent } from '../version.js'

/** A failed API request; `apiStatus` is the HTTP status when the server answered (undefined: no answer). */
export class KubeApiError extends WebhookError {
  readonly apiStatus: number | undefined
  constructor(message: string, apiStatus?: number, options?: { cause?: unknown }) {
    super('KUBE_API', message, options)
    this.apiStatus = apiStatus
  }
}

/** The HTTP status of a failed API request, or undefined (no answer, or not an API error). */
export const apiStatusOf = (e: unknown): number | undefined => (e instanceof KubeApiError ? e.apiStatus : undefined)

/** Options of {@link KubeClient}. */
export interface KubeClientOptions {
  readonly connection: KubeConnection
  /** Default per-request timeout in ms (default 10 s, the API server's own default). */
  readonly timeoutMs?: number
  /** Milliseconds clock for token ageing. */
  readonly epochMs?: () => number
  /** Largest response body accepted by {@link KubeClient.getJson} (default 64 MiB). */
  readonly maxResponseBytes?: number
  /** Largest single watch event accepted (default 4 MiB). */
  readonly maxEventBytes?: number
  /** Receives the API request latency histogram. */
  readonly registry?: Registry
}

/** Per-request options shared by GET and WATCH. */
export interface RequestOptions {
  /** The Accept header (content negotiation, e.g. metadata-only representations). */
  readonly accept: string
  /** Overrides the client's default timeout (for a watch: the time until the response headers). */
  readonly timeoutMs?: number
  /** Aborting ends the request; a GET then rejects, a watch resolves. */
  readonly signal?: AbortSignal
}

/** Options of {@link KubeClient.watch}. */
export interface WatchOptions extends RequestOptions {
  /** Called once per watch event (parsed JSON, still untrusted). */
  readonly onEvent: (event: unknown) => void
  /** Called once when the server has accepted the watch (HTTP 200), before any event. */
  readonly onOpen?: () => void
  /**
   * Client-side deadline on the stream from its acceptance (ms, default 24 h): a stream the server has not ended
   * by then is cut and reported as `deadline` (over HTTP/1.1 a dead path shows no other sign).
   */
  readonly deadlineMs?: number
}

/**
 * How a watch ended without an error: `closed` by the server (its timeoutSeconds, or any clean end), cut at the
 * client-side `deadline`, or `aborted` by the caller's signal.
 */
export type WatchEnd = 'closed' | 'deadline' | 'aborted'

const statusReason = (body: string): string => {
  try {
    const parsed: unknown = JSON.parse(body)
    const message = isObject(parsed) ? own(parsed, 'message') : undefined
    return isString(message) ? `: ${bodyExcerpt(message)}` : ''
  } catch {
    return ''
  }
}

/**
 * Aborts `inner` when `outer` aborts and returns the unlink. Not AbortSignal.any(): combined with a long-lived
 * signal (the cache's stop signal) it leaks one signal per request on Node 20 to 24 (nodejs/node#55351).
 */
const follow = (outer: AbortSignal | undefined, inner: AbortController): (() => void) => {
  if (!outer) return () => {}
  const onAbort = (): void => inner.abort()
  if (outer.aborted) inner.abort()
  else outer.addEventListener('abort', onAbort, { once: true })
  return () => outer.removeEventListener('abort', onAbort)
}

/** Talks to one API server. Create one per process; {@link KubeClient.close} releases its sockets. */
export class KubeClient {
  /** Server URL without a trailing slash; a path prefix (an API proxy) is kept. */
  readonly #base: string
  readonly #agent: http.Agent
  readonly #request: typeof http.request
  readonly #tokens: FileTokenSource | undefined
  readonly #timeoutMs: number
  readonly #maxResponseBytes: number
  readonly #maxEventBytes: number
  readonly #latency: Histogram

  constructor(options: KubeClientOptions) {
    const { connection } = options
    this.#base = connection.server.href.replace(/\/$/, '')
    const secure = connection.server.protocol === 'https:'
    // Keep-alive: lookups on the admission path must not pay a TLS handshake each time.
    this.#agent = secure
      ? new https.Agent({ keepAlive: true, ...(connection.ca ? { ca: connection.ca } : {}) })
      : new http.Agent({ keepAlive: true })
    this.#request = secure ? https.request : http.request
    this.#tokens =
      connection.tokenFile === undefined
        ? undefined
        : new FileTokenSource(connection.tokenFile, options.epochMs ? { epochMs: options.epochMs } : {})
    this.#timeoutMs = options.timeoutMs ?? 10_000
    this.#maxResponseBytes = options.maxResponseBytes ?? 64 * 1024 * 1024
    this.#maxEventBytes = options.maxEventBytes ?? 4 * 1024 * 1024
    this.#latency = (options.registry ?? new Registry()).histogram(
      'kube_api_request_duration_seconds',
      'Kubernetes API request latency until the response headers, by verb and HTTP code.',
    )
  }

  /** GETs `path` and parses the JSON body. Rejects with {@link KubeApiError} for any status but 2xx. */
  getJson(path: string, options: RequestOptions & { verb?: 'GET' | 'LIST' }): Promise<unknown> {
    const abort = new AbortController()
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      abort.abort()
    }, timeoutMs)
    const unlink = follow(options.signal, abort)
    return this.#getJsonOnce(path, options.accept, options.verb ?? 'GET', abort.signal)
      .catch((e: unknown) => {
        throw timedOut
          ? new KubeApiError(`GET ${path}: no complete answer within ${timeoutMs} ms`, undefined, { cause: e })
          : e
      })
      .finally(() => {
        clearTimeout(timer)
        unlink()
      })
  }

  async #getJsonOnce(path: string, accept: string, verb: string, signal: AbortSignal): Promise<unknown> {
    const res = await this.#open(path, accept, verb, signal, false)
    const body = await this.#readBody(res, path)
    if (res.statusCode !== 200)
      throw new KubeApiError(`GET ${path}: HTTP ${res.statusCode}${statusReason(body)}`, res.statusCode)
    try {
      return JSON.parse(body)
    } catch (e) {
      throw new KubeApiError(`GET ${path}: the response is not JSON`, res.statusCode, { cause: e })
    }
  }

  /**
   * Streams a watch: one JSON event per line, parsed with a bounded line buffer. Resolves with how it ended when the
   * server ends the stream, at `deadlineMs`, or on abort; rejects on a non-200 answer, an oversized or malformed
   * event, or a connection lost mid-stream.
   */
  async watch(path: string, options: WatchOptions): Promise<WatchEnd> {
    const abort = new AbortController()
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs
    // One timer at a time: for the answer (an error body included, so a stalled one cannot hang the watch), then the
    // stream's deadline. Every way out clears it and lets go of the caller's signal.
    let timer = setTimeout(() => abort.abort(), timeoutMs)
    const unlink = follow(options.signal, abort)
    try {
      let res: IncomingMessage
      try {
        res = await this.#open(path, options.accept, 'WATCH', abort.signal, false)
      } catch (e) {
        if (options.signal?.aborted) return 'aborted'
        const late = `WATCH ${path}: no answer within ${timeoutMs} ms`
        throw abort.signal.aborted ? new KubeApiError(late, undefined, { cause: e }) : e
      }
      if (res.statusCode !== 200) {
        const body = await this.#readBody(res, path).catch(() => '')
        throw new KubeApiError(`WATCH ${path}: HTTP ${res.statusCode}${statusReason(body)}`, res.statusCode)
      }
      clearTimeout(timer)
      options.onOpen?.()
      timer = setTimeout(() => abort.abort(), options.deadlineMs ?? 24 * 3600_000)
      return await this.#readEvents(res, path, options, abort.signal)
    } finally {
      clearTimeout(timer)
      unlink()
    }
  }

  /** Feeds a watch stream's events to `onEvent` until it closes; `signal` is the watch's own (caller or deadline). */
  #readEvents(res: IncomingMessage, path: string, options: WatchOptions, signal: AbortSignal): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve, reject) => {
      const fail = (e: unknown): void => {
        res.destroy()
        reject(e)
      }
      const broken = (why: string, cause?: unknown): KubeApiError =>
        new KubeApiError(`WATCH ${path}: ${why}`, 200, { cause })
      const lines = new LineSplitter(this.#maxEventBytes, line => options.onEvent(JSON.parse(line)))
      res.on('data', (chunk: Buffer) => {
        try {
          lines.push(chunk)
        } catch (e) {
          // A handler's own API error (an ERROR event, e.g. 410 Gone) reaches the caller unchanged.
          const why =
            e instanceof SyntaxError
              ? 'an event is not JSON'
              : e instanceof RangeError
                ? e.message
                : 'event handler failed'
          fail(e instanceof KubeApiError ? e : broken(why, e))
        }
      })
      let ended = false
      res.on('end', () => (ended = true))
      // The 'close' handler below decides; this listener only keeps an 'error' event from crashing the process.
      res.on('error', () => {})
      res.on('close', () => {
        // Once the headers are in, only the caller or the deadline timer can have aborted.
        if (signal.aborted) resolve(options.signal?.aborted ? 'aborted' : 'deadline')
        else if (!ended) fail(broken('the connection was lost'))
        else if (lines.pendingBytes > 0) fail(broken('the stream ended inside an event'))
        else resolve('closed')
      })
    })
  }

  /** Closes idle keep-alive sockets; in-flight requests are ended by their callers' signals. */
  close(): void {
    this.#agent.destroy()
  }

  /** Sends one GET and resolves with the response head; on a 401 re-reads the token and tries once more. */
  async #open(
    path: string,
    accept: string,
    verb: string,
    signal: AbortSignal,
    retried: boolean,
  ): Promise<IncomingMessage> {
    const headers: Record<string, string> = { Accept: accept, 'User-Agent': userAgent }
    if (this.#tokens) headers['Authorization'] = `Bearer ${await this.#tokens.token()}`
    const started = process.hrtime.bigint()
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = this.#request(
        new URL(this.#base + path),
        { method: 'GET', headers, agent: this.#agent, signal },
        resolve,
      )
      req.on('error', e => {
        this.#latency.observe(Number(process.hrtime.bigint() - started) / 1e9, { verb, code: 'error' })
        reject(new KubeApiError(`${verb === 'WATCH' ? 'WATCH' : 'GET'} ${path}: ${e.message}`, undefined, { cause: e }))
      })
      req.end()
    })
    this.#latency.observe(Number(process.hrtime.bigint() - started) / 1e9, { verb, code: String(res.statusCode) })
    if (res.statusCode === 401 && this.#tokens && !retried) {
      // Bound tokens rotate: the kubelet may have written a new one since we read it.
      res.resume()
      this.#tokens.invalidate()
      return this.#open(path, accept, verb, signal, true)
    }
    return res
  }

  /** Reads a whole body, refusing more than the configured maximum (a hostile server cannot exhaust memory). */
  #readBody(res: IncomingMessage, path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > this.#maxResponseBytes) {
          res.destroy()
          reject(new KubeApiError(`GET ${path}: the response exceeds ${this.#maxResponseBytes} bytes`, res.statusCode))
        } else parts.push(chunk)
      })
      res.on('end', () => resolve(Buffer.concat(parts, size).toString('utf8')))
      res.on('error', e =>
        reject(new KubeApiError(`GET ${path}: the connection was lost`, res.statusCode, { cause: e })),
      )
    })
  }
}
