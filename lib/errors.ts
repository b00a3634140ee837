/**
 * The closed set of failures the webhook reports, on one class. The workload identity client has its own
 * (lib/workload-identity/workload-identity-error.ts): an app's token has no admission answer or exit code.
 *
 * The code decides the HTTP status, and only where an error reaches an answer: the admission handler sends it as
 * the status of a request it rejects (BAD_REVIEW, BODY_TOO_LARGE, BODY_TIMEOUT, UNSUPPORTED_MEDIA_TYPE, OVERLOADED;
 * anything not a WebhookError is a 500), and a denial carries it as `response.status.code` inside an HTTP 200
 * review. USAGE, BAD_INPUT_FILE, TLS and KUBE_API reach no answer (the CLI and start-up); their status is unused.
 * The exit code is not the code's: each command maps where an error surfaced to its named exit codes (`mutate`: a
 * denial 1, a thrown error 2; `validate`: a broken annotation 1, a thrown error 2; `serve`: unusable flags 2, a
 * failed start or a cut drain 1).
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

// A denial's code is a 4xx, as the API server expects, and says what is wrong: 400 when the request is malformed (a
// review without a namespace, BAD_POD: an object Kubernetes would never send); 403 when a well-formed Pod is refused:
// its ServiceAccount's annotations break a rule, the Pod holds what the injection would clash with, or its
// ServiceAccount is missing or cannot be looked up, so its identity cannot be decided. A failed lookup is such a
// denial, not a 5xx answer, on purpose: the webhook fails closed itself instead of leaving it to failurePolicy.
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
}

/** The webhook's error class; `code` is what callers branch on. */
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

const webhookErrorOrThrow = (e: unknown): WebhookError => {
  if (isWebhookError(e)) return e
  throw e
}

/** Runs `f`: a WebhookError it throws is returned instead; anything else (a bug) is thrown on. */
export const returnWebhookError = <T>(f: () => T): T | WebhookError => {
  try {
    return f()
  } catch (e) {
    return webhookErrorOrThrow(e)
  }
}

/** Like {@link returnWebhookError}, for a promise: a WebhookError rejection resolves to the error. */
export const resolveWebhookError = <T>(p: Promise<T>): Promise<T | WebhookError> => p.catch(webhookErrorOrThrow)
