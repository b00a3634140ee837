/**
 * Reading JWT claims without verifying signatures. The client only needs two facts and verifies nothing itself:
 * whether the federated token file holds something JWT-shaped (so a wrong file fails before it is sent) and when
 * the access token expires (so it can be cached). The token endpoint and STACKIT's APIs do the verifying.
 */
import { isObject, own, type JsonObject } from '../json.js'

// Compact JWS: three base64url parts; the signature part may be empty (unsecured JWT).
const compactJws = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/** The claims object of a compact JWT, not verified; undefined when `token` is not shaped like one. */
export const unverifiedClaims = (token: string): JsonObject | undefined => {
  if (!compactJws.test(token)) return undefined
  // The pattern above guarantees three parts, so both indexes exist.
  const [header, payload] = token.split('.')
  try {
    const h: unknown = JSON.parse(Buffer.from(header as string, 'base64url').toString('utf8'))
    const p: unknown = JSON.parse(Buffer.from(payload as string, 'base64url').toString('utf8'))
    return isObject(h) && isObject(p) ? p : undefined
  } catch {
    return undefined
  }
}

/** The `exp` claim as milliseconds since the epoch; undefined when absent, not a number, or not a JWT. */
export const jwtExpiry = (token: string): number | undefined => {
  const claims = unverifiedClaims(token)
  const exp = claims === undefined ? undefined : own(claims, 'exp')
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined
}
