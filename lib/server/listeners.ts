/**
 * The three listeners of `serve`: HTTPS admission, plain-HTTP probes and plain-HTTP metrics, with deliberate
 * timeouts and a graceful drain. Everything they serve is passed in.
 */
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { SecureVersion } from 'node:tls'
import { plainText, requestPath, send, type AdmissionListener, type Listener } from './responses.js'
import type { TlsPair } from './tls-reloader.js'

/** Server timeouts in ms; see {@link defaultTimeouts} for the reasons. */
export interface ServerTimeouts {
  readonly headersMs: number
  readonly requestMs: number
  /** Time an admission request's body has, after its headers, to arrive in full. */
  readonly bodyMs: number
  readonly keepAliveMs: number
  /** How often Node checks the header and request timeouts. */
  readonly checkIntervalMs: number
  /** Time a client has to complete the TLS handshake. */
  readonly handshakeMs: number
}

/** The production timeouts. */
export const defaultTimeouts: ServerTimeouts = {
  // The API server sends its headers at once; a client that trickles them (slow-loris) is cut off after 10 s.
  headersMs: 10_000,
  // The API server gives up on a webhook after at most 30 s (timeoutSeconds ≤ 30); holding a request longer is waste.
  requestMs: 30_000,
  // The API server sends a review in one burst right after its headers, so a body takes only transfer time: 10 s
  // carries a 4 MiB body (the default limit) at 4 Mbit/s and is twice our manifests' timeoutSeconds (5 s), after
  // which the API server has given up; a client still sending then holds bytes others need.
  bodyMs: 10_000,
  // Longer than Go's default idle timeout (90 s), so the API server closes idle connections first and never
  // reuses one we have just closed (a race that fails a POST, and with failurePolicy Fail, a Pod creation).
  keepAliveMs: 120_000,
  // Node checks the two timeouts above on this interval (default 30 s would let a slow-loris linger).
  checkIntervalMs: 1_000,
  // Node's default is 120 s: an idle or stalled TLS client would hold its socket that long.
  handshakeMs: 10_000,
}

// The API server opens a handful of keep-alive connections per replica; far more means something else is calling,
// and each connection costs memory. Beyond this, new connections are dropped (the API server retries elsewhere).
const maxConnections = 1024

// TLS 1.2 (only when asked for) is limited to forward-secret AEAD suites; TLS 1.3 suites are all of that kind.
const tls12Ciphers = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')

/** TLS options for a pair; used at start and on every certificate reload. */
export const secureOptions = (pair: TlsPair, minVersion: SecureVersion): https.ServerOptions => ({
  cert: pair.cert,
  key: pair.key,
  minVersion,
  ciphers: tls12Ciphers,
  honorCipherOrder: true,
})

/** What {@link startServers} needs. */
export interface ServersOptions {
  readonly bindAddress: string
  readonly admission: {
    readonly port: number
    readonly tls: TlsPair
    readonly minVersion: SecureVersion
    readonly handler: AdmissionListener
  }
  /** Plain-HTTP routes by port: probes and metrics (they may share a port). */
  readonly plain: ReadonlyArray<{ readonly port: number; readonly routes: ReadonlyMap<string, Listener> }>
  readonly timeouts?: ServerTimeouts
}

/** Running listeners. */
export interface RunningServers {
  /** Bound admission port (useful with port 0). */
  readonly admissionPort: number
  /** Bound plain ports, in the order given. */
  readonly plainPorts: readonly number[]
  /** Installs a new certificate for new connections. */
  setCertificate(pair: TlsPair): void
  /**
   * Stops accepting connections, lets in-flight requests finish, closes idle keep-alive connections, and
   * resolves true; after `timeoutMs` it cuts the remaining connections and resolves false.
   */
  drainAdmission(timeoutMs: number): Promise<boolean>
  /** Closes the plain listeners (after the drain, so probes answer 503 meanwhile). */
  closePlain(): Promise<void>
}

const listen = (server: http.Server, port: number, host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })

const applyTimeouts = (server: http.Server, t: ServerTimeouts): void => {
  server.headersTimeout = t.headersMs
  server.requestTimeout = t.requestMs
  server.keepAliveTimeout = t.keepAliveMs
}

const routeHandler =
  (routes: ReadonlyMap<string, Listener>): Listener =>
  (req, res) => {
    const route = routes.get(requestPath(req))
    if (route) return route(req, res)
    send(res, 404, 'not found\n', plainText)
  }

const closeServer = (server: http.Server): Promise<void> => new Promise(resolve => server.close(() => resolve()))

/** Binds all listeners; rejects (closing what was opened) when a port cannot be bound. */
export const startServers = async (options: ServersOptions): Promise<RunningServers> => {
  const t = options.timeouts ?? defaultTimeouts
  const { admission } = options
  const { bodyMs } = t
  const secure = https.createServer(
    {
      ...secureOptions(admission.tls, admission.minVersion),
      connectionsCheckingInterval: t.checkIntervalMs,
      handshakeTimeout: t.handshakeMs,
    },
    (req, res) => admission.handler(req, res, bodyMs),
  )
  applyTimeouts(secure, t)
  secure.maxConnections = maxConnections
  // A failed or timed-out handshake must not leave its socket open.
  secure.on('tlsClientError', (_err, socket) => socket.destroy())
  const plain = options.plain.map(p => {
    const server = http.createServer({ connectionsCheckingInterval: t.checkIntervalMs }, routeHandler(p.routes))
    applyTimeouts(server, t)
    return { server, port: p.port }
  })
  const opened: http.Server[] = []
  try {
    const admissionPort = await listen(secure, admission.port, options.bindAddress)
    opened.push(secure)
    const plainPorts: number[] = []
    for (const p of plain) {
      plainPorts.push(await listen(p.server, p.port, options.bindAddress))
      opened.push(p.server)
    }
    return {
      admissionPort,
      plainPorts,
      setCertificate: pair => secure.setSecureContext(secureOptions(pair, admission.minVersion)),
      drainAdmission: timeoutMs =>
        new Promise(resolve => {
          const timer = setTimeout(() => {
            clearInterval(idle)
            secure.closeAllConnections()
            resolve(false)
          }, timeoutMs)
          // Connections that finish their last request while we drain become idle: close them as they do.
          const idle = setInterval(() => secure.closeIdleConnections(), 100)
          secure.close(() => {
            clearTimeout(timer)
            clearInterval(idle)
            resolve(true)
          })
          secure.closeIdleConnections()
        }),
      closePlain: async () => {
        for (const p of plain) p.server.closeAllConnections()
        await Promise.all(plain.map(p => closeServer(p.server)))
      },
    }
  } catch (e) {
    await Promise.all(opened.map(closeServer))
    throw e
  }
}
