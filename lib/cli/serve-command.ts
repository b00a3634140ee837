/**
 * `stackit-pod-identity-webhook serve`: wires configuration, TLS, the ServiceAccount source, the admission
 * handler, probes and metrics into running listeners, and drains them on SIGTERM/SIGINT.
 */
import { readFile } from 'node:fs/promises'
import { WebhookError, errorCode, isWebhookError } from '../errors.js'
import { createAdmissionHandler } from '../server/admission-handler.js'
import { startServers, type RunningServers } from '../server/listeners.js'
import { plainText, send } from '../server/responses.js'
import { createLogger, type Logger } from '../log.js'
import { Registry } from '../metrics.js'
import { createTlsReloader } from '../server/tls-reloader.js'
import { registerWebhookMetrics } from '../server/webhook-metrics.js'
import { StaticServiceAccountSource, loadServiceAccountFiles } from '../admission/offline-source.js'
import type { ServiceAccountSource } from '../admission/serviceaccount.js'
import { KubeClient } from '../kube/kube-client.js'
import { resolveKubeConnection } from '../kube/connection.js'
import { ServiceAccountCache } from '../kube/serviceaccount-cache.js'
import { parseServeArgs, serveHelp, type ServeConfig } from './serve-config.js'
import { version } from '../version.js'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** The process edges `serve` uses; the binary passes the real ones. */
export interface ServeIO {
  readonly env: Readonly<Record<string, string | undefined>>
  stdout(text: string): void
  stderr(text: string): void
  /** Registers a handler for SIGTERM and SIGINT. */
  onSignal(handler: (signal: string) => void): void
}

/** A ServiceAccount source with a lifecycle (the API cache) or without (static files). */
interface ManagedSource {
  readonly source: ServiceAccountSource
  start(): void
  stop(): Promise<void>
}

const staticSource = async (files: readonly string[]): Promise<ManagedSource> => ({
  source: new StaticServiceAccountSource(await loadServiceAccountFiles(files, file => readFile(file, 'utf8'))),
  start() {},
  stop: () => Promise.resolve(),
})

const apiSource = async (config: ServeConfig, env: ServeIO['env'], logger: Logger, registry: Registry): Promise<ManagedSource> => {
  const connection = await resolveKubeConnection({
    env,
    ...(config.apiServer !== undefined ? { apiServer: config.apiServer } : {}),
    ...(config.apiTokenFile !== undefined ? { tokenFile: config.apiTokenFile } : {}),
    ...(config.apiCaFile !== undefined ? { caFile: config.apiCaFile } : {}),
  })
  const client = new KubeClient({ connection, registry })
  const cache = new ServiceAccountCache({
    client,
    mode: config.serviceAccountCache,
    log: logger,
    registry,
    lookupTimeoutMs: config.lookupTimeoutMs,
    maxStalenessMs: config.maxCacheStalenessMs,
  })
  return {
    source: cache,
    start: () => void cache.start(),
    stop: async () => {
      await cache.stop()
      client.close()
    },
  }
}

/** A running webhook: its bound ports and a way to stop it. */
export interface Webhook {
  readonly ports: { readonly admission: number; readonly health: number; readonly metrics: number }
  /** Drains and stops everything; resolves true when the drain finished within the timeout. */
  shutdown(): Promise<boolean>
}

/** Starts the webhook from a parsed configuration. Rejects with a WebhookError naming what prevents it. */
export const startWebhook = async (config: ServeConfig, env: ServeIO['env'], logger: Logger): Promise<Webhook> => {
  const registry = new Registry()
  const metrics = registerWebhookMetrics(registry, Math.round(Date.now() / 1000))
  let servers: RunningServers | undefined
  const tls = await createTlsReloader({ certFile: config.certFile, keyFile: config.keyFile, logger, metrics: registry, onReload: pair => servers?.setCertificate(pair) })
  let managed: ManagedSource
  try {
    managed = config.serviceAccountFiles.length > 0 ? await staticSource(config.serviceAccountFiles) : await apiSource(config, env, logger, registry)
  } catch (e) {
    tls.close()
    throw e
  }
  let shuttingDown = false
  const notReady = (): string | undefined =>
    shuttingDown ? 'shutting down' : !managed.source.ready() ? 'ServiceAccount cache not synced' : undefined
  const routes = {
    health: new Map([
      ['/healthz', (_req: IncomingMessage, res: ServerResponse) => send(res, 200, 'ok\n', plainText)],
      ['/readyz', (_req: IncomingMessage, res: ServerResponse) => {
        const why = notReady()
        send(res, why ? 503 : 200, why ? `not ready: ${why}\n` : 'ok\n', plainText)
      }],
    ]),
    metrics: new Map([['/metrics', (_req: IncomingMessage, res: ServerResponse) => send(res, 200, registry.render(), 'text/plain; version=0.0.4; charset=utf-8')]]),
  }
  const plain = config.healthPort === config.metricsPort && config.healthPort !== 0
    ? [{ port: config.healthPort, routes: new Map([...routes.health, ...routes.metrics]) }]
    : [{ port: config.healthPort, routes: routes.health }, { port: config.metricsPort, routes: routes.metrics }]
  try {
    servers = await startServers({
      bindAddress: config.bindAddress,
      admission: {
        port: config.port,
        tls: tls.current(),
        minVersion: config.tlsMinVersion,
        handler: createAdmissionHandler({ source: managed.source, logger, metrics, maxRequestBytes: config.maxRequestBytes }),
      },
      plain,
    })
  } catch (e) {
    tls.close()
    await managed.stop()
    const code = errorCode(e) // listen() fails with a system error such as EADDRINUSE
    throw new WebhookError('USAGE', `cannot listen on ${config.bindAddress} (ports ${config.port}, ${config.healthPort}, ${config.metricsPort}): ${code}`, { cause: e })
  }
  managed.start()
  const running = servers
  const ports = { admission: running.admissionPort, health: running.plainPorts[0] as number, metrics: running.plainPorts.at(-1) as number }
  logger.info('listening', {
    admissionPort: ports.admission,
    healthPort: ports.health,
    metricsPort: ports.metrics,
    bindAddress: config.bindAddress,
    mode: config.serviceAccountFiles.length > 0 ? 'offline' : config.serviceAccountCache,
    version,
  })
  return {
    ports,
    shutdown: async () => {
      shuttingDown = true
      const clean = await running.drainAdmission(config.shutdownTimeoutMs)
      tls.close()
      await managed.stop()
      await running.closePlain()
      return clean
    },
  }
}

/** Exit codes of `serve`: stopped cleanly; could not start, drain cut or a second signal; unusable flags. */
const serveExitCodes = { stopped: 0, failed: 1, usage: 2 } as const

/** Runs `serve` until a signal; resolves to the exit code. */
export const runServe = async (argv: readonly string[], io: ServeIO): Promise<number> => {
  let config: ServeConfig
  try {
    const parsed = parseServeArgs(argv)
    if (parsed.help) {
      io.stdout(serveHelp)
      return serveExitCodes.stopped
    }
    config = parsed.config
  } catch (e) {
    /* c8 ignore next -- parseServeArgs throws WebhookErrors only */
    if (!isWebhookError(e)) throw e
    io.stderr(`error: ${e.message}\n`)
    return serveExitCodes.usage
  }
  const logger = createLogger({ level: config.logLevel, write: line => io.stderr(line) })
  let webhook: Webhook
  try {
    webhook = await startWebhook(config, io.env, logger)
  } catch (e) {
    /* c8 ignore next -- start-up failures are WebhookErrors; anything else is a bug and must surface */
    if (!isWebhookError(e)) throw e
    logger.error('cannot start', { code: e.code, reason: e.message })
    return serveExitCodes.failed
  }
  return new Promise<number>(resolve => {
    let signals = 0
    io.onSignal(signal => {
      signals++
      if (signals > 1) {
        logger.warn('second signal, exiting at once', { signal })
        resolve(serveExitCodes.failed)
        return
      }
      logger.info('shutting down', { signal, timeoutMs: config.shutdownTimeoutMs })
      void webhook.shutdown().then(clean => {
        if (clean) logger.info('shut down cleanly')
        else logger.warn('shutdown timeout reached, remaining connections were cut', { timeoutMs: config.shutdownTimeoutMs })
        resolve(clean ? serveExitCodes.stopped : serveExitCodes.failed)
      })
    })
  })
}
