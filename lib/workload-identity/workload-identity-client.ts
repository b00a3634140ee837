/**
 * A STACKIT workload identity client for Node apps: exchanges the projected Kubernetes ServiceAccount token
 * (written by the kubelet where the webhook mounted it) for a STACKIT access token, the way the STACKIT Go SDK's
 * workload identity flow does: a form POST of `grant_type=client_credentials`,
 * `client_assertion_type=urn:schwarz:params:oauth:client-assertion-type:workload-jwt`,
 * `client_assertion=<token file>` and `client_id=<service account e-mail>`; only HTTP 200 is success.
 */
import { readFile } from 'node:fs/promises'
import type { Agent } from 'node:http'
import { errorCode, errorMessage } from '../errors.js'
import { userAgent } from '../version.js'
import type { Env } from '../env.js'
import { isObject, isString, own, parseJson } from '../json.js'
import { jwtExpiry, unverifiedClaims } from './jwt-claims.js'
import { WorkloadIdentityError } from './workload-identity-error.js'
import { bodyExcerpt } from '../http-excerpt.js'
import { sendRequest, type OutboundResponse } from './http-request.js'
import {
  resolveWorkloadIdentityConfig,
  type WorkloadIdentityConfig,
  type WorkloadIdentityOptions,
} from './workload-identity-config.js'

/** Options of {@link WorkloadIdentityClient}: the three inputs plus the edges (environment, clock, agent). */
export interface WorkloadIdentityClientOptions extends WorkloadIdentityOptions {
  /** Where `STACKIT_*` variables are read when an option is not given; default `process.env`. */
  readonly env?: Env
  /** Clock in milliseconds since the epoch; default `Date.now`. */
  readonly epochMs?: () => number
  /** Deadline for one token exchange (connect to last byte); default 30 000 ms. */
  readonly timeoutMs?: number
  /** HTTP(S) agent for the token endpoint, e.g. one that trusts a private CA; default Node's global agent. */
  readonly agent?: Agent
}

/** The `client_assertion_type` the STACKIT token endpoint expects for a Kubernetes-issued token. */
export const workloadJwtAssertionType = 'urn:schwarz:params:oauth:client-assertion-type:workload-jwt'

/** A cached access token is replaced this long before it expires, so it never expires in flight. */
export const refreshMarginMs = 60_000

const defaultTimeoutMs = 30_000
// Token responses are a few kilobytes; a larger body is an error, not something to buffer.
const maxTokenResponseBytes = 64 * 1024
// Projected ServiceAccount tokens are around one kilobyte; a huge file is the wrong file.
const maxAssertionBytes = 64 * 1024

interface Cached {
  readonly accessToken: string
  readonly refreshAt: number
}

/**
 * Gets STACKIT access tokens for the workload identity the webhook injected. Create one per process and call
 * {@link WorkloadIdentityClient.getAccessToken} before every STACKIT API request: it answers from its cache
 * until a minute before expiry, shares one exchange among concurrent callers, and re-reads the token file
 * for every exchange (the kubelet rotates it). A failed exchange is not cached; the next call tries again.
 * Throws a CONFIG error from the constructor when the configuration is incomplete.
 */
export class WorkloadIdentityClient {
  /** The resolved configuration (no secrets: the e-mail, the token file path and the endpoint). */
  readonly config: WorkloadIdentityConfig
  readonly #epochMs: () => number
  readonly #timeoutMs: number
  readonly #agent: Agent | undefined
  #cached: Cached | undefined
  #inFlight: Promise<string> | undefined

  constructor(options: WorkloadIdentityClientOptions = {}) {
    this.config = resolveWorkloadIdentityConfig(options, options.env ?? process.env)
    this.#epochMs = options.epochMs ?? Date.now
    this.#timeoutMs = options.timeoutMs ?? defaultTimeoutMs
    this.#agent = options.agent
  }

  /** A valid STACKIT access token (send it as `Authorization: Bearer <token>`); rejects with a TOKEN_EXCHANGE error. */
  getAccessToken(): Promise<string> {
    const cached = this.#cached
    if (cached !== undefined && this.#epochMs() < cached.refreshAt) return Promise.resolve(cached.accessToken)
    this.#inFlight ??= this.#exchange().finally(() => {
      this.#inFlight = undefined
    })
    return this.#inFlight
  }

  /** Reads the assertion now (never cached: the kubelet replaces the file well before the token expires). */
  async #readAssertion(): Promise<string> {
    const { federatedTokenFile: file, federatedTokenFileSource: source } = this.config
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (e) {
      // fs rejects with an ErrnoException; its code (ENOENT, EACCES, EISDIR) says what is wrong, without content.
      const code = errorCode(e)
      const why = `cannot read the federated token file ${file} from ${source} (${code})`
      throw new WorkloadIdentityError('TOKEN_EXCHANGE', `${why}; is the webhook's token volume mounted?`)
    }
    // Kubelet writes the bare token; a hand-written file often ends in a newline, which no JWT contains.
    const assertion = text.trim()
    if (assertion.length > maxAssertionBytes || unverifiedClaims(assertion) === undefined) {
      const why = `the federated token file ${file} from ${source} does not hold a JWT`
      throw new WorkloadIdentityError('TOKEN_EXCHANGE', why)
    }
    return assertion
  }

  async #exchange(): Promise<string> {
    const assertion = await this.#readAssertion()
    const { tokenEndpoint, serviceAccountEmail } = this.config
    const where = `token endpoint ${tokenEndpoint.origin}${tokenEndpoint.pathname}`
    const startedAt = this.#epochMs()
    let res: OutboundResponse
    try {
      res = await sendRequest({
        url: tokenEndpoint,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': userAgent },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_assertion_type: workloadJwtAssertionType,
          client_assertion: assertion,
          client_id: serviceAccountEmail,
        }).toString(),
        timeoutMs: this.#timeoutMs,
        maxResponseBytes: maxTokenResponseBytes,
        agent: this.#agent,
      })
    } catch (e) {
      throw new WorkloadIdentityError('TOKEN_EXCHANGE', `${where} failed: ${errorMessage(e)}`, { cause: e })
    }
    if (res.status !== 200) {
      const excerpt = bodyExcerpt(res.body) || '(empty body)'
      throw new WorkloadIdentityError('TOKEN_EXCHANGE', `${where} answered HTTP ${res.status}: ${excerpt}`)
    }
    const tooLarge = `${where} sent a response larger than ${maxTokenResponseBytes} bytes`
    if (res.truncated) throw new WorkloadIdentityError('TOKEN_EXCHANGE', tooLarge)
    const noToken = (): WorkloadIdentityError =>
      new WorkloadIdentityError('TOKEN_EXCHANGE', `${where} answered HTTP 200 without a JSON access_token`)
    const parsed = parseJson(res.body, noToken)
    const accessToken = isObject(parsed) ? own(parsed, 'access_token') : undefined
    if (!isObject(parsed) || !isString(accessToken) || accessToken === '') throw noToken()
    const expiresAt = jwtExpiry(accessToken) ?? expiresInAt(own(parsed, 'expires_in'), startedAt)
    // Without a known expiry the token is used once and not cached.
    this.#cached = expiresAt === undefined ? undefined : { accessToken, refreshAt: expiresAt - refreshMarginMs }
    return accessToken
  }
}

/** `expires_in` (seconds, counted from when the request was sent) as an instant; undefined when unusable. */
const expiresInAt = (expiresIn: unknown, startedAt: number): number | undefined =>
  typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0
    ? startedAt + expiresIn * 1000
    : undefined
