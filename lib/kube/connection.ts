/**
 * Where the Kubernetes API server is and how to authenticate to it: explicit flags first, else the in-cluster
 * environment (the Service env vars and the mounted ServiceAccount token and CA). Environment and directory are
 * parameters, so tests hand in a plain object and a temporary folder.
 */
import type { Env } from '../env.js'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { WebhookError, errorCode } from '../errors.js'
import { quote } from '../json.js'
import { endpointUrl, urlHost } from '../url.js'

/** Where Kubernetes mounts a Pod's ServiceAccount token, CA bundle and namespace. */
const inClusterDirectory = '/var/run/secrets/kubernetes.io/serviceaccount'

/** A resolved connection: the server URL, the token file (if any) and the pinned CA bundle (if any). */
export interface KubeConnection {
  readonly server: URL
  /** Re-read periodically (bound tokens rotate); never held in configuration. */
  readonly tokenFile?: string
  /** PEM bundle; when set it replaces the system roots, so only this CA can vouch for the API server. */
  readonly ca?: Buffer
}

/** Inputs of {@link resolveKubeConnection}; the flags are all optional. */
export interface KubeConnectionOptions {
  /** `--api-server`: an `https://` URL, or `http://` when said explicitly (e.g. `kubectl proxy`). */
  readonly apiServer?: string
  /** `--api-token-file`. */
  readonly tokenFile?: string
  /** `--api-ca-file`. */
  readonly caFile?: string
  /** The process environment (only the two Kubernetes Service variables are read). */
  readonly env: Env
  /** Defaults to {@link inClusterDirectory}; tests pass a temporary folder. */
  readonly inClusterDir?: string
}

/** Reads a connection file at start-up, so a missing one fails there rather than on the first lookup. */
const readInput = async (file: string, what: string): Promise<Buffer> => {
  try {
    return await readFile(file)
  } catch (e) {
    throw new WebhookError('BAD_INPUT_FILE', `cannot read the ${what} file ${file}: ${errorCode(e)}`, { cause: e })
  }
}

// The one difference from the other endpoints: http:// is accepted when written so, for a local kubectl proxy; a
// token is then refused (below), so no credential travels in clear text.
const parseServer = (raw: string): URL => {
  const url = endpointUrl(raw, true)
  if (url instanceof URL) return url
  // The value is not shown when it holds credentials.
  const why = {
    'not a URL': `${quote(raw)} is not a URL; write it as https://HOST:PORT`,
    credentials: 'must not contain a user name or password; pass a token with --api-token-file',
    scheme: `${quote(raw)} must start with https:// (or http:// for a local kubectl proxy)`,
  }[url]
  throw new WebhookError('USAGE', `--api-server ${why}`)
}

/**
 * Resolves the API connection. With `apiServer`, only the given flags apply (no token, system CA roots unless
 * `caFile`); without it, the in-cluster Service env vars, token and CA are used, each overridable by its flag.
 */
export const resolveKubeConnection = async (options: KubeConnectionOptions): Promise<KubeConnection> => {
  const dir = options.inClusterDir ?? inClusterDirectory
  let server: URL
  let tokenFile = options.tokenFile
  let caFile = options.caFile
  if (options.apiServer !== undefined) {
    server = parseServer(options.apiServer)
  } else {
    const host = options.env['KUBERNETES_SERVICE_HOST']
    const port = options.env['KUBERNETES_SERVICE_PORT']
    if (!host || !port) {
      throw new WebhookError(
        'USAGE',
        'not running in a cluster (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset): pass --api-server URL, or ' +
          '--service-account FILE for offline mode',
      )
    }
    server = parseServer(`https://${urlHost(host)}:${port}`)
    tokenFile ??= join(dir, 'token')
    caFile ??= join(dir, 'ca.crt')
  }
  // A bearer token must never cross the network in clear text; plain HTTP is only for an unauthenticated proxy.
  if (server.protocol === 'http:' && tokenFile !== undefined) {
    throw new WebhookError(
      'USAGE',
      `--api-server ${server.origin} is plain HTTP: a bearer token is only sent over https://`,
    )
  }
  const connection: { server: URL; tokenFile?: string; ca?: Buffer } = { server }
  if (tokenFile !== undefined) {
    // Only checked here: the token rotates, so the token source reads the file again when it needs it.
    await readInput(tokenFile, 'API token')
    connection.tokenFile = tokenFile
  }
  if (caFile !== undefined) connection.ca = await readInput(caFile, 'API server CA')
  return connection
}
