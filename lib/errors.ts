/**
 * The closed set of failures this project reports. Every error carries one code, and the code alone decides the
 * HTTP status (admission server) and the exit code (CLI), so callers never guess from message text.
 */
import { isObject, own } from './json.js'

export type ErrorCode =
  /** The body is not JSON, or not an AdmissionReview with request.uid. */
  | 'BAD_REVIEW'
  /** The request body exceeds --max-request-bytes. */
  | 'BODY_TOO_LARGE'
  /** The request body did not arrive in full within the body deadline after its headers. */
  | 'BODY_TIMEOUT'
  /** The request content type is not application/json. */
  | 'UNSUPPORTED_MEDIA_TYPE'
  /** The request bytes received and not yet answered would pass their bound; the caller should retry. */
  | 'OVERLOADED'
  /** The Pod inside a review does not have the shape Kubernetes guarantees. */
  | 'BAD_POD'
  /** A workload-identity annotation or label has a value that breaks its rule. */
  | 'INVALID_ANNOTATION'
  /** The Pod already holds something the injection would clash with. */
  | 'CONFLICT'
  /** The Pod's ServiceAccount does not exist. */
  | 'SERVICEACCOUNT_NOT_FOUND'
  /** The ServiceAccount could not be looked up (API server unreachable, timeout, forbidden). */
  | 'SERVICEACCOUNT_LOOKUP_FAILED'
  /** Command line usage or unusable CLI input. */
  | 'USAGE'
  /** A file given on the command line or by configuration cannot be read or parsed. */
  | 'BAD_INPUT_FILE'
  /** TLS certificate or key missing, unreadable, not a pair, refused by the TLS loader, or (reload) not valid now. */
  | 'TLS'
  /** A Kubernetes API request failed. */
  | 'KUBE_API'
  /** The workload identity client could not get an access token. */
  | 'TOKEN_EXCHANGE'
  /** Configuration (options or environment) of the workload identity client is incomplete or wrong. */
  | 'CONFIG'

const httpStatus: Readonly<Record<ErrorCode, number>> = {
  BAD_REVIEW: 400,
  BODY_TOO_LARGE: 413,
  BODY_TIMEOUT: 408,
  UNSUPPORTED_MEDIA_TYPE: 415,
  OVERLOADED: 503,
  BAD_POD: 400,
  INVALID_ANNOTATION: 403,
  CONFLICT: 403,
  SERVICEACCOUNT_NOT_FOUND: 403,
  SERVICEACCOUNT_LOOKUP_FAILED: 403,
  USAGE: 400,
  BAD_INPUT_FILE: 400,
  TLS: 500,
  KUBE_API: 502,
  TOKEN_EXCHANGE: 502,
  CONFIG: 400,
}

/** One error class for the whole project; `code` is what callers branch on. */
export class WebhookError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'WebhookError'
  }

  /** The HTTP status an admission response or server reply uses for this error. */
  get status(): number {
    return httpStatus[this.code]
  }
}

/** True when `e` is a WebhookError, optionally with the given code. */
export const isWebhookError = (e: unknown, code?: ErrorCode): e is WebhookError =>
  e instanceof WebhookError && (code === undefined || e.code === code)

/** The `code` an unknown error carries (Node's system and OpenSSL errors have one) as text, `"undefined"` if none. */
export const errorCode = (e: unknown): string => String(isObject(e) ? own(e, 'code') : undefined)

/** The message of an unknown error: an Error's own text (ours, or Node's, which quote no document), else its string. */
export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e))
