/**
 * The admission endpoints as a plain `node:http` request listener: routing, method, content type and size checks,
 * JSON parsing, then {@link admit} (Pods) or {@link admitServiceAccount} (ServiceAccounts). The response is
 * serialised before any header is written, so a failure at any step can still become a clean error status. One log
 * line per request; never the body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { WebhookError, isWebhookError, type ErrorCode } from '../errors.js'
import {
  admit,
  admitServiceAccount,
  parseReview,
  type Resource,
  type ReviewSummary,
} from '../admission/admission-review.js'
import { parseJson } from '../json.js'
import { readStream } from '../read-stream.js'
import { plainText, requestPath, send, type AdmissionListener } from './responses.js'
import type { Logger } from '../log.js'
import type { ServiceAccountSource } from '../admission/serviceaccount.js'
import type { WebhookMetrics } from './webhook-metrics.js'

/** The paths the API server may call and what each reviews; `/mutate--v1-pod` is the reference chart's path. */
const endpoints: ReadonlyMap<string, Resource> = new Map<string, Resource>([
  ['/mutate', 'pods'],
  ['/mutate--v1-pod', 'pods'],
  ['/validate-serviceaccount', 'serviceaccounts'],
])
export const admissionPaths: readonly string[] = [...endpoints.keys()]

/** Default bound on the request bytes received and not yet answered. */
const defaultBytesInFlight = 16 * 1024 * 1024

/** What the handler needs from the rest of the process. */
export interface AdmissionHandlerOptions {
  readonly source: ServiceAccountSource
  readonly logger: Logger
  readonly metrics: WebhookMetrics
  /** Larger bodies get 413 without being buffered. */
  readonly maxRequestBytes: number
  /** Bytes received and not yet answered may add up to this (never less than maxRequestBytes); beyond, 503. */
  readonly maxBytesInFlight?: number
  /** Monotonic milliseconds, for durations. */
  readonly monotonicMs?: () => number
}

// When the budget is full, a body still arriving this long after its headers gives its bytes back (408) so that a
// newcomer fits: the API server sends a review in one burst, so such a body is a stalled or trickling client's, and
// without this a few of them that sent nearly --max-request-bytes each would refuse every review until their deadline.
const stalledBodyMs = 1000

/** A body being read: when it started, the bytes it holds, and how to end its read to make room. */
interface Reading {
  readonly started: number
  bytes: number
  stop: ((reason: unknown) => void) | undefined
}

// Answers after which the rest of the body is not read and the connection closes.
const stopReading: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['BODY_TOO_LARGE', 'BODY_TIMEOUT', 'OVERLOADED'])

const isJsonContentType = (header: string | undefined): boolean =>
  header !== undefined && header.split(';')[0]?.trim().toLowerCase() === 'application/json'

/** Writes a short plain-text error. Never echoes anything from the request. */
const sendError = (res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void =>
  send(res, status, `${message}\n`, plainText, headers)

/**
 * Creates the request listener for the admission port. The server passes each request's body deadline (see
 * `ServerTimeouts.bodyMs`); the listener enforces it while it reads, so a late body gets 408 and its bytes go at once.
 */
export const createAdmissionHandler = (options: AdmissionHandlerOptions): AdmissionListener => {
  const { logger, metrics, source, maxRequestBytes } = options
  const now = options.monotonicMs ?? (() => performance.now())
  // Parsing a body costs several times its size in memory; bounding the bytes held until their answer bounds that,
  // however many connections send large bodies. Bytes count as they arrive, not as declared, so a client that
  // declares a large body and stalls holds only what it sent. Reviews are a few KiB, so thousands fit at once.
  const bytesBudget = Math.max(options.maxBytesInFlight ?? defaultBytesInFlight, maxRequestBytes)
  let bytesInFlight = 0
  // Bodies still arriving, oldest first (a Set keeps insertion order).
  const reading = new Set<Reading>()

  /** Cuts bodies older than stalledBodyMs, oldest first, until `needed` more bytes fit; never `self`. */
  const makeRoom = (needed: number, self: Reading): void => {
    for (const r of reading) {
      if (bytesInFlight + needed <= bytesBudget || now() - r.started < stalledBodyMs) break
      if (r === self) continue
      reading.delete(r)
      bytesInFlight -= r.bytes
      r.bytes = 0
      const why = `request body still arriving ${stalledBodyMs} ms after its headers while the in-flight byte budget`
      r.stop?.(new WebhookError('BODY_TIMEOUT', `${why} is full; send the body at once`))
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse, bodyMs: number, started: number): Promise<void> => {
    let summary: ReviewSummary | undefined
    // No AbortController here: creating one per request cost about 3 % of a review's CPU.
    const read: Reading = { started, bytes: 0, stop: undefined }
    // Called by readStream for each chunk before it is kept; the chunk that still does not fit ends the read.
    const count = (bytes: number): void => {
      if (bytesInFlight + bytes > bytesBudget) makeRoom(bytes, read)
      if (bytesInFlight + bytes > bytesBudget) {
        throw new WebhookError('OVERLOADED', 'too many request bytes in flight; retry shortly')
      }
      bytesInFlight += bytes
      read.bytes += bytes
    }
    const resource = endpoints.get(requestPath(req))
    if (resource === undefined) {
      return sendError(res, 404, `not found; the admission endpoints are POST ${admissionPaths.join(', ')}`)
    }
    try {
      if (req.method !== 'POST') return sendError(res, 405, 'method not allowed; use POST', { Allow: 'POST' })
      if (!isJsonContentType(req.headers['content-type'])) {
        throw new WebhookError('UNSUPPORTED_MEDIA_TYPE', 'content type must be application/json')
      }
      // Absent (chunked) gives NaN, which is never over the limit: then the streaming count decides.
      const declared = Number(req.headers['content-length'])
      if (declared > maxRequestBytes)
        throw new WebhookError('BODY_TOO_LARGE', `request body is larger than ${maxRequestBytes} bytes`)
      reading.add(read)
      const bounds = { count, timeoutMs: bodyMs, onStart: (stop: Reading['stop']) => (read.stop = stop) }
      const text = await readStream(req, maxRequestBytes, 'request body', 'BAD_REVIEW', bounds).finally(() =>
        reading.delete(read),
      )
      const review = parseReview(
        parseJson(text, () => new WebhookError('BAD_REVIEW', 'request body is not valid JSON')),
      )
      const result = resource === 'pods' ? await admit(review, source) : admitServiceAccount(review)
      summary = result.summary
      send(res, 200, result.response, 'application/json')
    } catch (e) {
      const error = isWebhookError(e) ? e : undefined
      if (error !== undefined && stopReading.has(error.code)) {
        // Stop reading: the rest of the body is never buffered, and the connection closes after the answer.
        req.pause()
        res.shouldKeepAlive = false
      }
      if (!res.headersSent) sendError(res, error?.status ?? 500, error?.message ?? 'internal error')
      logger[error ? 'warn' : 'error']('review rejected', {
        resource,
        status: error?.status ?? 500,
        code: error?.code ?? 'INTERNAL',
        // Only our own messages are logged; an unexpected error's text could quote request data.
        ...(error ? { reason: error.message } : { reason: 'unexpected error' }),
      })
      metrics.reviews.inc({ resource, outcome: 'error' })
    } finally {
      // Answered, refused, timed out, cut or aborted: the request's bytes are no longer held.
      bytesInFlight -= read.bytes
      const seconds = (now() - started) / 1000
      if (summary) {
        metrics.reviews.inc({ resource: summary.resource, outcome: summary.outcome })
        metrics.duration.observe(seconds)
        logger.info('review', { ...summary, durationMs: Math.round(seconds * 1e6) / 1e3 })
      }
    }
  }

  return (req, res, bodyMs) => {
    const started = now()
    metrics.inFlight.add(1)
    void handle(req, res, bodyMs, started).finally(() => metrics.inFlight.add(-1))
  }
}
