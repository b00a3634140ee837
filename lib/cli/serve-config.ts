/**
 * `serve` flags → a validated configuration. Pure: every bad flag is a USAGE error naming the flag, the value and
 * what is expected.
 */
import path from 'node:path'
import { WebhookError } from '../errors.js'
import { quote } from '../json.js'
import { parseFlags, type Flags } from './cli-args.js'
import { isLogLevel, type LogLevel } from '../log.js'
import type { KubeConnectionOptions } from '../kube/connection.js'
import type { WebhookConfig } from '../server/webhook.js'

/** Everything `serve` runs with: the webhook's configuration and the log level. */
export interface ServeConfig extends WebhookConfig {
  readonly logLevel: LogLevel
}

/** The flags `serve` accepts, with their defaults (also checked against the manifests' container args). */
export const serveFlags = {
  port: { type: 'string', default: '9443' },
  'bind-address': { type: 'string', default: '0.0.0.0' },
  'cert-dir': { type: 'string', default: '/etc/webhook/certs' },
  'tls-cert-file': { type: 'string' },
  'tls-key-file': { type: 'string' },
  'tls-min-version': { type: 'string', default: '1.3' },
  'health-port': { type: 'string', default: '8081' },
  'metrics-port': { type: 'string', default: '8080' },
  'max-request-bytes': { type: 'string', default: '4194304' },
  'service-account': { type: 'string', multiple: true },
  'log-level': { type: 'string', default: 'info' },
  'shutdown-timeout': { type: 'string', default: '10s' },
  'api-server': { type: 'string' },
  'api-token-file': { type: 'string' },
  'api-ca-file': { type: 'string' },
  'serviceaccount-cache': { type: 'string', default: 'watch' },
  'lookup-timeout': { type: 'string', default: '2s' },
  'max-cache-staleness': { type: 'string', default: '5m' },
  help: { type: 'boolean', default: false },
} as const satisfies Flags

export const serveHelp = `Usage: stackit-pod-identity-webhook serve [flags]

Serves the admission webhook over HTTPS (POST /mutate, and /mutate--v1-pod for compatibility; POST
/validate-serviceaccount), probes over plain HTTP (/healthz, /readyz) and Prometheus metrics (/metrics).

Flags:
  --port N                    HTTPS admission port (default 9443)
  --bind-address ADDR         address of all three listeners (default 0.0.0.0)
  --cert-dir DIR              directory holding tls.crt and tls.key (default /etc/webhook/certs)
  --tls-cert-file FILE        certificate file (default <cert-dir>/tls.crt); reloaded when it changes
  --tls-key-file FILE         key file (default <cert-dir>/tls.key)
  --tls-min-version V         1.2 or 1.3 (default 1.3)
  --health-port N             plain-HTTP /healthz and /readyz (default 8081)
  --metrics-port N            plain-HTTP /metrics (default 8080)
  --max-request-bytes N       larger admission requests get 413 (default 4194304)
  --service-account FILE      offline mode: serve from the ServiceAccounts in these JSON files only (a
                              ServiceAccount or a List; repeatable); no API server is contacted
  --log-level L               debug, info, warn or error (default info)
  --shutdown-timeout D        drain limit after SIGTERM, e.g. 10s, 500ms, 1m (default 10s)

Kubernetes API (when not offline):
  --api-server URL            API server URL (default: in-cluster from KUBERNETES_SERVICE_HOST/PORT);
                              http:// only when written so, e.g. http://127.0.0.1:8001 from kubectl proxy
  --api-token-file FILE       bearer token file, re-read as it rotates (default: in-cluster token)
  --api-ca-file FILE          CA bundle for the API server (default: in-cluster ca.crt)
  --serviceaccount-cache M    watch (list + watch, default) or off (a GET per review)
  --lookup-timeout D          bound on a live ServiceAccount GET (default 2s); a lookup that cannot
                              complete denies the Pod (fail closed), but see --max-cache-staleness
  --max-cache-staleness D     watch mode: when that GET fails, answer from the cache's copy of the
                              ServiceAccount (with a warning on the review) if the copy was last known
                              current at most D ago (default 5m; 0 never does, the Pod is denied)

  --help                      show this help

Signals: SIGTERM or SIGINT turns /readyz to 503, lets in-flight reviews finish and exits 0 within
--shutdown-timeout; a second signal exits at once.
`

/**
 * Parses `10s`, `500ms`, `1m`, or a bare number of seconds, into milliseconds (at most 24 h). Zero is refused
 * unless `zero` says what it means (it is then named in the error message).
 */
export const parseDuration = (flag: string, v: string, zero?: string): number => {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)?$/.exec(v)
  const unit = m?.[2] ?? 's'
  const n = Number(m?.[1]) * (unit === 'ms' ? 1 : unit === 'm' ? 60_000 : 1000)
  if ((n > 0 || (n === 0 && zero !== undefined)) && n <= 24 * 3_600_000) return n
  const hint = zero === undefined ? '' : `, or 0 to ${zero}`
  const what = `--${flag} ${quote(v)}`
  throw new WebhookError('USAGE', `${what} is not a duration; write e.g. 10s, 500ms or 1m${hint}`)
}

const parsePort = (flag: string, v: string): number => {
  if (!/^[0-9]{1,5}$/.test(v) || Number(v) > 65535)
    throw new WebhookError('USAGE', `--${flag} ${quote(v)} is not a port number (0–65535)`)
  return Number(v)
}

// 64 MiB is far above the API server's own 3 MiB request limit; larger would only invite memory exhaustion.
const maxBodyLimit = 64 * 1024 * 1024

/** The API connection flags and the option of the Kubernetes side each one sets. */
const apiFlags = [
  ['api-server', 'apiServer'],
  ['api-token-file', 'tokenFile'],
  ['api-ca-file', 'caFile'],
] as const satisfies ReadonlyArray<readonly [keyof typeof serveFlags, Exclude<keyof KubeConnectionOptions, 'env'>]>

/** Parses and validates `serve`'s arguments; `help` is true when --help was given. */
export const parseServeArgs = (argv: readonly string[]): { help: boolean; config: ServeConfig } => {
  const { values: v, positionals } = parseFlags(argv, serveFlags, 'serve')
  const usage = (msg: string): never => {
    throw new WebhookError('USAGE', `serve: ${msg} (see serve --help)`)
  }
  if (positionals.length > 0) usage(`unexpected argument ${quote(positionals[0])}`)

  const tls = v['tls-min-version']
  if (tls !== '1.2' && tls !== '1.3') usage(`--tls-min-version ${quote(tls)} must be 1.2 or 1.3`)
  const logLevel = v['log-level']
  if (!isLogLevel(logLevel)) return usage(`--log-level ${quote(logLevel)} must be debug, info, warn or error`)
  const bytesText = v['max-request-bytes']
  const maxRequestBytes = /^[0-9]{1,9}$/.test(bytesText) ? Number(bytesText) : NaN
  if (!(maxRequestBytes >= 1024 && maxRequestBytes <= maxBodyLimit)) {
    usage(`--max-request-bytes ${quote(bytesText)} must be a number of bytes from 1024 to ${maxBodyLimit}`)
  }
  const mode = v['serviceaccount-cache']
  if (mode !== 'watch' && mode !== 'off') return usage(`--serviceaccount-cache ${quote(mode)} must be watch or off`)
  const files = v['service-account'] ?? []
  const connection: Partial<Record<(typeof apiFlags)[number][1], string>> = {}
  for (const [flag, key] of apiFlags) {
    const value = v[flag]
    if (value === undefined) continue
    if (files.length > 0) usage(`--${flag} cannot be combined with --service-account (offline mode uses no API server)`)
    connection[key] = value
  }
  const config: ServeConfig = {
    port: parsePort('port', v.port),
    bindAddress: v['bind-address'],
    certFile: v['tls-cert-file'] ?? path.join(v['cert-dir'], 'tls.crt'),
    keyFile: v['tls-key-file'] ?? path.join(v['cert-dir'], 'tls.key'),
    tlsMinVersion: tls === '1.2' ? 'TLSv1.2' : 'TLSv1.3',
    healthPort: parsePort('health-port', v['health-port']),
    metricsPort: parsePort('metrics-port', v['metrics-port']),
    maxRequestBytes,
    serviceAccounts: files.length > 0 ? { mode: 'offline', files } : { mode, connection },
    logLevel,
    shutdownTimeoutMs: parseDuration('shutdown-timeout', v['shutdown-timeout']),
    lookupTimeoutMs: parseDuration('lookup-timeout', v['lookup-timeout']),
    maxCacheStalenessMs: parseDuration('max-cache-staleness', v['max-cache-staleness'], 'turn the fallback off'),
  }
  return { help: v.help, config }
}
