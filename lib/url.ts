/**
 * The one rule set for URLs this project sends requests to: the API server (`--api-server`), the idp token endpoint
 * annotation, and the public client's endpoints. Each caller words its own message around the problem named here.
 */

/** Why a value is not a usable endpoint URL. */
export type UrlProblem =
  /** It does not parse as an absolute URL. */
  | 'not a URL'
  /** It holds a user name or password: they would be sent along and could end up in messages and logs. */
  | 'credentials'
  /** Its scheme is not https: (or, where plain HTTP is allowed, http:). */
  | 'scheme'

/**
 * The URL of an endpoint, or the problem with it. `allowHttp` only where the operator or program chose plain HTTP
 * by writing it so (kubectl proxy, a test endpoint); a credential otherwise travels over TLS only.
 */
export const endpointUrl = (value: string, allowHttp: boolean): URL | UrlProblem => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'not a URL'
  }
  if (url.username !== '' || url.password !== '') return 'credentials'
  return url.protocol === 'https:' || (allowHttp && url.protocol === 'http:') ? url : 'scheme'
}

/** The host part of a URL: IPv6 literals need brackets, or the port would be read as part of the address. */
export const urlHost = (host: string): string => (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host)
