/**
 * `serve` flags → a validated configuration. Pure: every bad flag is a USAGE error naming the flag, the value and
 * what is expected.
 */
import path from 'node:path'
import { WebhookError } from '../errors.js'
import { quote } from '../json.js'
import { parseArgs, type FlagSpec } from './cli-args.js'
import { isLogLevel, type LogLevel } from '../log.js'
import type { WebhookConfig } from '../server/webhook.js'

/** Everything `serve` runs with: the webhook's configuration and the log level. */
export interface ServeConfig extends WebhookConfig {
  readonly logLevel: LogLevel
}

/** The flags `serve` accepts (also checked against the manifests' container args). */
export const serveFlags: Readonly<Record<string, FlagSpec>> = {
  port: { kind: 'string' },
  'bind-address': { kind: 'string' },
  'cert-dir': { kind: 'string' },
  'tls-cert-file': { kind: 'string' },
  'tls-key-file': { kind: 'string' },
  'tls-min-version': { kind: 'string' },
  'health-port': { kind: 'string' },
  'metrics-port': { kind: 'string' },
  'max-request-bytes': { kind: 'string' },
  'service-account': { kind: 'list' },
  'log-level': { kind: 'string' },
  'shutdown-timeout': { kind: 'string' },
  'api-server': { kind: 'string' },
  'api-token-file': { kind: 'string' },
  'api-ca-file': { kind: 'string' },
  'serviceaccount-cache': { kind: 'string' },
  'lookup-timeout': { kind: 'string' },
  'max-cache-staleness': { kind: 'string' },
  help: { kind: 'boolean' },
}

export const serveHelp = `Usage: stackit-pod-identity-webhook serve [flags]

Serves the mutating admission webhook over HTTPS (POST /mutate, and /mutate--v1-pod for compatibility),
probes over plain HTTP (/healthz, /readyz) and Prometheus metrics (/metrics).

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
  if (!/^[0-9]{1,5}$/.test(v) || Number(v) > 65535) throw new WebhookError('USAGE', `--${flag} ${quote(v)} is not a port number (0–65535)`)
  return Number(v)
}

// 64 MiB is far above the API server's own 3 MiB request limit; larger would only invite memory exhaustion.
const maxBodyLimit = 64 * 1024 * 1024

/** Parses and validates `serve`'s arguments; `help` is true when --help was given. */
export const parseServeArgs = (argv: readonly string[]): { help: boolean; config: ServeConfig } => {
  const args = parseArgs(argv, serveFlags, 'stackit-pod-identity-webhook serve')
  const s = (name: string, fallback: string): string => args.strings.get(name) ?? fallback
  const usage = (msg: string): never => {
    throw new WebhookError('USAGE', `serve: ${msg} (see serve --help)`)
  }
  if (args.positional.length > 0) usage(`unexpected argument ${quote(args.positional[0])}`)

  const certDir = s('cert-dir', '/etc/webhook/certs')
  const tls = s('tls-min-version', '1.3')
  if (tls !== '1.2' && tls !== '1.3') usage(`--tls-min-version ${quote(tls)} must be 1.2 or 1.3`)
  const logLevel = s('log-level', 'info')
  if (!isLogLevel(logLevel)) return usage(`--log-level ${quote(logLevel)} must be debug, info, warn or error`)
  const bytesText = s('max-request-bytes', '4194304')
  const maxRequestBytes = /^[0-9]{1,9}$/.test(bytesText) ? Number(bytesText) : NaN
  if (!(maxRequestBytes >= 1024 && maxRequestBytes <= maxBodyLimit)) usage(`--max-request-bytes ${quote(bytesText)} must be a number of bytes from 1024 to ${maxBodyLimit}`)
  const cache = s('serviceaccount-cache', 'watch')
  if (cache !== 'watch' && cache !== 'off') return usage(`--serviceaccount-cache ${quote(cache)} must be watch or off`)
  const files = args.lists.get('service-account') ?? []
  for (const flag of ['api-server', 'api-token-file', 'api-ca-file']) {
    if (files.length > 0 && args.strings.has(flag)) usage(`--${flag} cannot be combined with --service-account (offline mode uses no API server)`)
  }
  const optional = (flag: string, key: 'apiServer' | 'apiTokenFile' | 'apiCaFile'): Partial<ServeConfig> => {
    const v = args.strings.get(flag)
    return v === undefined ? {} : { [key]: v }
  }
  const config: ServeConfig = {
    port: parsePort('port', s('port', '9443')),
    bindAddress: s('bind-address', '0.0.0.0'),
    certFile: s('tls-cert-file', path.join(certDir, 'tls.crt')),
    keyFile: s('tls-key-file', path.join(certDir, 'tls.key')),
    tlsMinVersion: tls === '1.2' ? 'TLSv1.2' : 'TLSv1.3',
    healthPort: parsePort('health-port', s('health-port', '8081')),
    metricsPort: parsePort('metrics-port', s('metrics-port', '8080')),
    maxRequestBytes,
    serviceAccountFiles: files,
    logLevel,
    shutdownTimeoutMs: parseDuration('shutdown-timeout', s('shutdown-timeout', '10s')),
    serviceAccountCache: cache,
    lookupTimeoutMs: parseDuration('lookup-timeout', s('lookup-timeout', '2s')),
    maxCacheStalenessMs: parseDuration('max-cache-staleness', s('max-cache-staleness', '5m'), 'turn the fallback off'),
    ...optional('api-server', 'apiServer'),
    ...optional('api-token-file', 'apiTokenFile'),
    ...optional('api-ca-file', 'apiCaFile'),
  }
  return { help: args.booleans.has('help'), config }
}
