/**
 * A STACKIT-like workload identity federation for tests, and what it needs around it:
 * - {@link exchange} judges one token request form as STACKIT does for a federation: `grant_type`,
 *   `client_assertion_type`, `client_id` (the federation's e-mail), the assertion's signature (RS256 or ES256)
 *   against the issuer's JWKS found through its discovery document, then `iss`, `aud`, `exp`/`nbf`/`iat` with a
 *   clock skew, and `sub` when the federation pins one. fake-stackit.ts answers its token endpoint through it.
 * - {@link makeSigningKey} and {@link signJwt} make real signed JWTs with a key made in the test, and
 *   {@link startFakeIssuer} serves such keys as an OIDC issuer on loopback (discovery document and JWKS), the
 *   way a kube-apiserver does at `/.well-known/openid-configuration` and `/openid/v1/jwks`.
 * Only node:crypto verifies; no JOSE library.
 */
import { createHmac, createPublicKey, generateKeyPairSync, randomUUID, sign, verify } from 'node:crypto'
import type { JsonWebKey, KeyObject } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { errorMessage } from '../../lib/errors.js'
import { isObject, isString, own, type JsonObject } from '../../lib/json.js'
import { sendRequest } from '../../lib/workload-identity/http-request.js'

/** A federation as a user configures it on a STACKIT service account. */
export interface Federation {
  /**
   * The cluster's ServiceAccount issuer URL; its discovery document is
   * `${issuer}/.well-known/openid-configuration`.
   */
  readonly issuer: string
  /** The STACKIT service account e-mail: the form's client_id must equal it. */
  readonly email: string
  /** The mandatory assertion on `aud`: the token's aud (string or array) must contain it. */
  readonly audience: string
  /** The optional assertion on `sub`, e.g. `system:serviceaccount:ns:name`. */
  readonly subject?: string
}

/**
 * How the endpoint verifies. The issuer's key set is cached for the life of this object (one object per
 * endpoint) and fetched again once when a token names a `kid` the cached set does not hold.
 */
export interface FederationOptions {
  readonly federation: Federation
  /** CA bundle that verifies the issuer's HTTPS (discovery and JWKS are fetched over node:https with it). */
  readonly issuerCa?: Buffer
  /** Allowed clock skew for exp/nbf/iat, seconds (default 60). */
  readonly clockSkewSeconds?: number
  /** Clock, ms since epoch (default Date.now). */
  readonly epochMs?: () => number
}

/** The error codes of the OAuth answers (RFC 6749 §5.2). */
export type OAuthError = 'invalid_client' | 'invalid_grant' | 'invalid_request' | 'unsupported_grant_type'

/** What the endpoint saw of one assertion, accepted or not (claims decoded even when refused). */
export interface SeenAssertion {
  readonly accepted: boolean
  /** OAuth error when refused: 'invalid_client' | 'invalid_grant' | 'invalid_request' | 'unsupported_grant_type'. */
  readonly error?: string
  readonly description?: string
  readonly claims?: { iss?: unknown; sub?: unknown; aud?: unknown; exp?: unknown; nbf?: unknown; iat?: unknown }
  readonly alg?: string
  readonly kid?: string
}

/** The `client_assertion_type` STACKIT expects for a Kubernetes-issued token. */
export const workloadJwtAssertionType = 'urn:schwarz:params:oauth:client-assertion-type:workload-jwt'

/** Lifetime of the access tokens the endpoint issues, seconds. */
export const accessTokenSeconds = 600

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')

/** An unsigned JWT with the given claims (the fakes and the client never verify the access token's signature). */
export const fakeJwt = (claims: Record<string, unknown>): string =>
  `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url(claims)}.c2lnbmF0dXJl`

/** The algorithms a federation accepts: what Kubernetes signs with (RSA or EC P-256 signing keys). */
export type SigningAlg = 'RS256' | 'ES256'

/** A key made in a test: the private half signs, `jwk` (public, with `kid`, `alg`, `use`) goes into a JWKS. */
export interface SigningKey {
  readonly alg: SigningAlg
  readonly kid: string
  readonly privateKey: KeyObject
  readonly jwk: JsonWebKey
}

/** A fresh RSA 2048 (RS256) or EC P-256 (ES256) key pair with the given `kid` (default random). */
export const makeSigningKey = (alg: SigningAlg, kid: string = randomUUID()): SigningKey => {
  const { publicKey, privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { alg, kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } }
}

/**
 * A compact JWS of `claims` signed with `key` (header `{alg, typ: 'JWT', kid}`; `header` overrides or adds fields,
 * `kid: undefined` drops it). ES256 signatures are raw r||s, as JWS wants them.
 */
export const signJwt = (
  claims: Record<string, unknown>,
  key: SigningKey,
  header: Record<string, unknown> = {},
): string => {
  const input = `${b64url({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header })}.${b64url(claims)}`
  const signature = sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
  return `${input}.${signature.toString('base64url')}`
}

/** A token in the HS256 attack's shape: an HMAC over header and claims keyed with the public key's PEM. */
export const hmacJwt = (claims: Record<string, unknown>, key: SigningKey): string => {
  const input = `${b64url({ alg: 'HS256', typ: 'JWT', kid: key.kid })}.${b64url(claims)}`
  const secret = createPublicKey({ key: key.jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' })
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

/** A loopback OIDC issuer serving a discovery document and a JWKS, as a kube-apiserver does. */
export interface FakeIssuer {
  /** The issuer URL (`https://127.0.0.1:PORT` with `tls`, else `http://…`), as the discovery document names it. */
  readonly issuer: string
  /** The public keys served at `jwks_uri` (`${issuer}/openid/v1/jwks`); assign to rotate. */
  keys: JsonWebKey[]
  /** The discovery document served (any JSON value); assign to break it (another issuer, no jwks_uri, …). */
  discovery: unknown
  /** Paths requested so far, in order (to count fetches). */
  readonly requests: string[]
  close(): Promise<void>
}

/** Options of {@link startFakeIssuer}. */
export interface FakeIssuerOptions {
  /** Serve HTTPS with this certificate (its SAN must hold 127.0.0.1). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string }
  readonly keys?: readonly JsonWebKey[]
}

/** Starts a fake issuer on 127.0.0.1, port 0: `/.well-known/openid-configuration` and `/openid/v1/jwks`. */
export const startFakeIssuer = async (options: FakeIssuerOptions = {}): Promise<FakeIssuer> => {
  const requests: string[] = []
  let fake: FakeIssuer | undefined
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const path = req.url ?? '/'
    requests.push(path)
    // As kube-apiserver: the key set only as application/jwk-set+json, 406 to an Accept that leaves its type out.
    const served: Record<string, [type: string, body: unknown]> = {
      '/.well-known/openid-configuration': ['application/json', fake?.discovery],
      '/openid/v1/jwks': ['application/jwk-set+json', { keys: fake?.keys }],
    }
    const found = Object.hasOwn(served, path) ? served[path] : undefined
    const accept = req.headers.accept ?? '*/*'
    const acceptable = found !== undefined && (accept.includes('*/*') || accept.includes(found[0]))
    res.writeHead(found === undefined ? 404 : acceptable ? 200 : 406, { 'content-type': found?.[0] ?? 'text/plain' })
    res.end(acceptable ? JSON.stringify(found?.[1]) : '')
  }
  const server = options.tls
    ? https.createServer(
        { cert: await readFile(options.tls.certFile), key: await readFile(options.tls.keyFile) },
        listener,
      )
    : http.createServer(listener)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const issuer = `${options.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`
  fake = {
    issuer,
    keys: [...(options.keys ?? [])],
    discovery: {
      issuer,
      jwks_uri: `${issuer}/openid/v1/jwks`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256', 'ES256'],
    },
    requests,
    close: () => {
      server.closeAllConnections()
      return new Promise(resolve => server.close(() => resolve()))
    },
  }
  return fake
}

/** A refusal on its way to the answer. */
class Refusal extends Error {
  constructor(
    readonly error: OAuthError,
    description: string,
  ) {
    super(description)
  }
}

// A declaration, not an arrow: TypeScript narrows after calls to declared `never` functions only.
function refuse(error: OAuthError, description: string): never {
  throw new Refusal(error, description)
}

// Discovery documents and key sets are a few kilobytes; a slow or huge answer is a broken issuer, not a wait.
const maxDocumentBytes = 64 * 1024
const fetchTimeoutMs = 5_000
// Projected ServiceAccount tokens are about a kilobyte.
const maxAssertionBytes = 64 * 1024
const defaultClockSkewSeconds = 60

/** Fetches one JSON object over node:https (with the issuer CA) or node:http; refuses with what went wrong. */
const fetchJson = async (url: URL, what: string, issuerCa: Buffer | undefined): Promise<JsonObject> => {
  const agent = url.protocol === 'https:' && issuerCa !== undefined ? new https.Agent({ ca: issuerCa }) : undefined
  try {
    const res = await sendRequest({
      url,
      method: 'GET',
      // kube-apiserver answers 406 to the key set asked for as application/json alone.
      headers: { accept: 'application/json, application/jwk-set+json' },
      timeoutMs: fetchTimeoutMs,
      maxResponseBytes: maxDocumentBytes,
      agent,
    }).catch(e => refuse('invalid_grant', `cannot fetch the issuer's ${what} (${errorMessage(e)})`))
    if (res.status !== 200) refuse('invalid_grant', `the issuer's ${what} answered HTTP ${res.status}`)
    if (res.truncated) refuse('invalid_grant', `the issuer's ${what} is larger than ${maxDocumentBytes} bytes`)
    let parsed: unknown
    try {
      parsed = JSON.parse(res.body)
    } catch {
      parsed = undefined
    }
    return isObject(parsed) ? parsed : refuse('invalid_grant', `the issuer's ${what} is not a JSON object`)
  } finally {
    agent?.destroy()
  }
}

/** The issuer's keys, found as a relying party finds them: discovery document first, then its `jwks_uri`. */
const fetchKeys = async ({ federation: { issuer }, issuerCa }: FederationOptions): Promise<JsonObject[]> => {
  const issuerUrl = new URL(issuer)
  const discovery = await fetchJson(
    new URL(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`),
    'discovery document',
    issuerCa,
  )
  // A discovery document naming another issuer is not this issuer's (OpenID Connect Discovery §4.3).
  if (own(discovery, 'issuer') !== issuer)
    refuse('invalid_grant', "the discovery document's issuer is not the federation's")
  const jwksUri = own(discovery, 'jwks_uri')
  const url = isString(jwksUri) && URL.canParse(jwksUri) ? new URL(jwksUri) : undefined
  // Keys over plain HTTP only from an issuer that is plain HTTP itself (loopback tests).
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== issuerUrl.protocol)) {
    refuse('invalid_grant', 'the discovery document has no usable jwks_uri')
  }
  const keys = own(await fetchJson(url, 'JWKS', issuerCa), 'keys')
  return Array.isArray(keys) ? keys.filter(isObject) : refuse('invalid_grant', "the issuer's JWKS has no keys array")
}

const keySets = new WeakMap<FederationOptions, Promise<JsonObject[]>>()

/** The cached key set of this endpoint, or a fresh one; a failed fetch is not cached. */
const loadKeys = (options: FederationOptions, refetch: boolean): Promise<JsonObject[]> => {
  const cached = keySets.get(options)
  if (cached !== undefined && !refetch) return cached
  const fresh = fetchKeys(options)
  keySets.set(options, fresh)
  fresh.catch(() => keySets.get(options) === fresh && keySets.delete(options))
  return fresh
}

const keyTypes: Record<SigningAlg, string> = { RS256: 'RSA', ES256: 'EC' }

/** Whether `jwk` may verify `alg` and does verify `signature` over `input`. */
const verifiesWith = (jwk: JsonObject, alg: SigningAlg, input: Buffer, signature: Buffer): boolean => {
  const use = own(jwk, 'use')
  const keyAlg = own(jwk, 'alg')
  if (own(jwk, 'kty') !== keyTypes[alg] || (use !== undefined && use !== 'sig')) return false
  if (keyAlg !== undefined && keyAlg !== alg) return false
  try {
    const key = createPublicKey({ key: jwk, format: 'jwk' })
    if (alg === 'RS256') return verify('sha256', input, key, signature)
    // ES256 is P-256 only; JWS carries r||s (IEEE P1363), not DER.
    if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return false
    return verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, signature)
  } catch {
    return false // a malformed key verifies nothing
  }
}

interface Parsed {
  readonly header: JsonObject
  readonly claims: JsonObject
  readonly input: Buffer
  readonly signature: Buffer
}

const compactJws = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/** Header, claims and signing input of a compact JWS; undefined when `token` is not one. */
const parseJwt = (token: string): Parsed | undefined => {
  if (token.length > maxAssertionBytes || !compactJws.test(token)) return undefined
  const [h = '', p = '', s = ''] = token.split('.')
  try {
    const header: unknown = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'))
    const claims: unknown = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'))
    if (!isObject(header) || !isObject(claims)) return undefined
    return { header, claims, input: Buffer.from(`${h}.${p}`), signature: Buffer.from(s, 'base64url') }
  } catch {
    return undefined
  }
}

/** The signature check: the algorithm, the key (by `kid`, else every key of the type), the signature. */
const checkSignature = async (jwt: Parsed, options: FederationOptions): Promise<void> => {
  const alg = own(jwt.header, 'alg')
  // An unsigned token proves nothing, and HS256 would take the public key as a shared secret: only RS256 and ES256.
  if (alg === 'none') refuse('invalid_grant', 'alg none is refused: the token must be signed')
  if (alg !== 'RS256' && alg !== 'ES256') refuse('invalid_grant', 'alg is not RS256 or ES256')
  const kid = own(jwt.header, 'kid')
  if (kid !== undefined && !isString(kid)) refuse('invalid_grant', 'kid is not a string')
  const hadKeys = keySets.has(options)
  let keys = await loadKeys(options, false)
  const named = (set: JsonObject[]): JsonObject[] => (kid === undefined ? set : set.filter(k => own(k, 'kid') === kid))
  // An unknown kid may be a key the issuer rotated in since the set was cached: fetch once more.
  if (hadKeys && named(keys).length === 0) keys = await loadKeys(options, true)
  const candidates = named(keys)
  if (candidates.length === 0) {
    refuse(
      'invalid_grant',
      kid === undefined ? "the issuer's JWKS has no keys" : "no key in the issuer's JWKS has the token's kid",
    )
  }
  if (!candidates.some(k => verifiesWith(k, alg, jwt.input, jwt.signature))) {
    refuse('invalid_grant', "the signature does not verify with the issuer's keys")
  }
}

/** The claim checks, in STACKIT's order: iss, aud, exp/nbf/iat, sub. */
const checkClaims = (claims: JsonObject, options: FederationOptions): void => {
  const { issuer, audience, subject } = options.federation
  const now = (options.epochMs ?? Date.now)() / 1000
  const skew = options.clockSkewSeconds ?? defaultClockSkewSeconds
  if (own(claims, 'iss') !== issuer) refuse('invalid_grant', "iss is not the federation's issuer")
  const aud = own(claims, 'aud')
  const audiences: unknown[] = Array.isArray(aud) ? aud : [aud]
  if (!audiences.includes(audience)) refuse('invalid_grant', "aud does not contain the federation's audience")
  const time = (name: string, required: boolean): number | undefined => {
    const v = own(claims, name)
    if (v === undefined && !required) return undefined
    return typeof v === 'number' && Number.isFinite(v)
      ? v
      : refuse('invalid_grant', `${name} is missing or not a number`)
  }
  const exp = time('exp', true)
  if (exp === undefined || now - skew >= exp) refuse('invalid_grant', 'the token has expired (exp)')
  const nbf = time('nbf', false)
  if (nbf !== undefined && now + skew < nbf) refuse('invalid_grant', 'the token is not valid yet (nbf)')
  const iat = time('iat', false)
  if (iat !== undefined && now + skew < iat) refuse('invalid_grant', 'iat is in the future')
  if (subject !== undefined && own(claims, 'sub') !== subject)
    refuse('invalid_grant', "sub is not the federation's subject")
}

/** The form checks that come before the assertion is looked at. */
const checkForm = (form: URLSearchParams, federation: Federation): void => {
  const field = (name: string): string => {
    const v = form.get(name)
    return v === null || v === '' ? refuse('invalid_request', `${name} is missing`) : v
  }
  if (field('grant_type') !== 'client_credentials') {
    refuse('unsupported_grant_type', 'grant_type must be client_credentials')
  }
  if (field('client_assertion_type') !== workloadJwtAssertionType) {
    refuse('invalid_request', `client_assertion_type must be ${workloadJwtAssertionType}`)
  }
  field('client_assertion')
  if (field('client_id') !== federation.email) {
    refuse('invalid_client', "client_id is not the federation's service account")
  }
}

/** What a SeenAssertion records of the token: its time, identity and audience claims, alg and kid. */
const seenOf = (jwt: Parsed | undefined): Pick<SeenAssertion, 'claims' | 'alg' | 'kid'> => {
  if (jwt === undefined) return {}
  const claims = Object.fromEntries(
    ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat']
      .filter(k => own(jwt.claims, k) !== undefined)
      .map(k => [k, own(jwt.claims, k)]),
  )
  const alg = own(jwt.header, 'alg')
  const kid = own(jwt.header, 'kid')
  return { claims, ...(isString(alg) ? { alg } : {}), ...(isString(kid) ? { kid } : {}) }
}

/** Checks one token request form as STACKIT does; resolves to the OAuth answer (status and JSON body). */
export const exchange = async (
  form: URLSearchParams,
  options: FederationOptions,
): Promise<{ status: number; body: unknown; seen: SeenAssertion }> => {
  const jwt = parseJwt(form.get('client_assertion') ?? '')
  try {
    checkForm(form, options.federation)
    if (jwt === undefined) refuse('invalid_request', 'client_assertion is not a JWT')
    await checkSignature(jwt, options)
    checkClaims(jwt.claims, options)
  } catch (e) {
    // Anything but a refusal is a bug of this helper: let the test see it.
    if (!(e instanceof Refusal)) throw e
    const seen = { accepted: false, error: e.error, description: e.message, ...seenOf(jwt) }
    const body = { error: e.error, error_description: e.message }
    return { status: e.error === 'invalid_client' ? 401 : 400, body, seen }
  }
  const now = Math.floor((options.epochMs ?? Date.now)() / 1000)
  const accessToken = fakeJwt({ sub: options.federation.email, exp: now + accessTokenSeconds, jti: randomUUID() })
  return {
    status: 200,
    body: { access_token: accessToken, token_type: 'Bearer', expires_in: accessTokenSeconds },
    seen: { accepted: true, ...seenOf(jwt) },
  }
}
