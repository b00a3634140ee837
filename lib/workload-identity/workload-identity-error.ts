/**
 * The one error class of the workload identity client, apart from the webhook's: an app that gets a token has no
 * HTTP status or exit code to derive, only two ways to fail. Messages never hold the token or the assertion.
 */

/** Why the client failed; branch on it, never on the message. */
export type WorkloadIdentityErrorCode =
  /** Options or environment are incomplete or wrong (thrown by the constructor and the config resolver). */
  | 'CONFIG'
  /** No access token: the token file is unreadable or not a JWT, or the token endpoint failed or refused. */
  | 'TOKEN_EXCHANGE'

/** What the workload identity client throws and rejects with. */
export class WorkloadIdentityError extends Error {
  readonly code: WorkloadIdentityErrorCode
  constructor(code: WorkloadIdentityErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'WorkloadIdentityError'
  }
}

/** True when `e` is a WorkloadIdentityError, optionally with the given code. */
export const isWorkloadIdentityError = (e: unknown, code?: WorkloadIdentityErrorCode): e is WorkloadIdentityError =>
  e instanceof WorkloadIdentityError && (code === undefined || e.code === code)
