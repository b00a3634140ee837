/**
 * The composition root: wires TLS, the ServiceAccount source (offline files or the API cache), the admission
 * handler, probes and metrics into running listeners, and drains them on shutdown. It defines the configuration it
 * needs; the `serve` command parses flags into it.
 */
import { readFile } from 'node:fs/promises'
import type { SecureVersion } from 'node:tls'
import type { Env } from '../env.js'
import { WebhookError, errorCode } from '../errors.js'
import type { Logger } from '../log.js'
import { Registry } from '../metrics.js'
import { version } from '../version.js'
import { StaticServiceAccountSource, loadServiceAccountFiles } from '../admission/offline-source.js'
import type { ServiceAccountSource } from '../admission/serviceaccount.js'
import { KubeClient } from '../kube/kube-client.js'
import { resolveKubeConnection, type KubeConnectionOptions } from '../kube/connection.js'
import { ServiceAccountApi } from '../kube/serviceaccount-api.js'
import { ServiceAccountCache } from '../kube/serviceaccount-cache.js'
import { createAdmissionHandler } from './admission-handler.js'
import { startServers, type RunningServers } from './listeners.js'
import { plainText, send, type Listener } from './responses.js'
import { createTlsReloader } from './tls-reloader.js'
import { registerWebhookMetrics } from './webhook-metrics.js'

/**
 * Where ServiceAccounts come from: only these files, no API server contacted (`offline`); or the API server, watched
 * into a cache (`watch`) or one GET per review (`off`), reached with the `--api-*` flags and the process environment.
 */
export type ServiceAccountMode =
  | { readonly mode: 'offline'; readonly files: readonly string[] }
  | { readonly mode: 'watch' | 'off'; readonly connection: Omit<KubeConnectionOptions, 'env'> }

type ApiMode = Extract<ServiceAccountMode, { readonly mode: 'watch' | 'off' }>

/** Everything the running webhook needs. */
export interface WebhookConfig {
  readonly port: number
  readonly bindAddress: string
  readonly certFile: string
  readonly keyFile: string
  readonly tlsMinVersion: SecureVersion
  readonly healthPort: number
  readonly metricsPort: number
  readonly maxRequestBytes: number
  readonly shutdownTimeoutMs: number
  readonly serviceAccounts: ServiceAccountMode
  /** Bound on a live ServiceAccount GET (API modes). */
  readonly lookupTimeoutMs: number
  /** How long after the watch cache was last known current its copy may still answer a failed live GET; 0: never. */
  readonly maxCacheStalenessMs: number
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

const apiSource = async (
  config: WebhookConfig,
  api: ApiMode,
  env: Env,
  logger: Logger,
  registry: Registry,
): Promise<ManagedSource> => {
  const connection = await resolveKubeConnection({ ...api.connection, env })
  const client = new KubeClient({ connection, registry })
  const cache = new ServiceAccountCache({
    api: new ServiceAccountApi(client, logger),
    mode: api.mode,
    logger,
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

/** The plain-HTTP listeners: probes on the health port, metrics on the metrics port (one listener if equal). */
const plainListeners = (config: WebhookConfig, registry: Registry, notReady: () => string | undefined) => {
  const health = new Map<string, Listener>([
    ['/healthz', (_req, res) => send(res, 200, 'ok\n', plainText)],
    [
      '/readyz',
      (_req, res) => {
        const why = notReady()
        send(res, why ? 503 : 200, why ? `not ready: ${why}\n` : 'ok\n', plainText)
      },
    ],
  ])
  const metrics = new Map<string, Listener>([
    ['/metrics', (_req, res) => send(res, 200, registry.render(), 'text/plain; version=0.0.4; charset=utf-8')],
  ])
  return config.healthPort === config.metricsPort && config.healthPort !== 0
    ? [{ port: config.healthPort, routes: new Map([...health, ...metrics]) }]
    : [
        { port: config.healthPort, routes: health },
        { port: config.metricsPort, routes: metrics },
      ]
}

/** A running webhook: its bound ports and a way to stop it. */
export interface Webhook {
  readonly ports: { readonly admission: number; readonly health: number; readonly metrics: number }
  /** Drains and stops everything; resolves true when the drain finished within the timeout. */
  shutdown(): Promise<boolean>
}

/** Starts the webhook from a parsed configuration. Rejects with a WebhookError naming what prevents it. */
export const startWebhook = async (config: WebhookConfig, env: Env, logger: Logger): Promise<Webhook> => {
  const registry = new Registry()
  const metrics = registerWebhookMetrics(registry, Math.round(Date.now() / 1000))
  let servers: RunningServers | undefined
  const tls = await createTlsReloader({
    certFile: config.certFile,
    keyFile: config.keyFile,
    logger,
    registry,
    onReload: pair => servers?.setCertificate(pair),
  })
  let managed: ManagedSource
  try {
    const sa = config.serviceAccounts
    managed = sa.mode === 'offline' ? await staticSource(sa.files) : await apiSource(config, sa, env, logger, registry)
  } catch (e) {
    tls.close()
    throw e
  }
  let shuttingDown = false
  const notReady = (): string | undefined =>
    shuttingDown ? 'shutting down' : !managed.source.ready() ? 'ServiceAccount cache not synced' : undefined
  try {
    servers = await startServers({
      bindAddress: config.bindAddress,
      admission: {
        port: config.port,
        tls: tls.current(),
        minVersion: config.tlsMinVersion,
        handler: createAdmissionHandler({
          source: managed.source,
          logger,
          metrics,
          maxRequestBytes: config.maxRequestBytes,
        }),
      },
      plain: plainListeners(config, registry, notReady),
    })
  } catch (e) {
    tls.close()
    await managed.stop()
    const where = `${config.bindAddress} (ports ${config.port}, ${config.healthPort}, ${config.metricsPort})`
    // listen() fails with a system error such as EADDRINUSE
    throw new WebhookError('USAGE', `cannot listen on ${where}: ${errorCode(e)}`, { cause: e })
  }
  managed.start()
  const running = servers
  const ports = {
    admission: running.admissionPort,
    health: running.plainPorts[0] as number,
    metrics: running.plainPorts.at(-1) as number,
  }
  logger.info('listening', {
    admissionPort: ports.admission,
    healthPort: ports.health,
    metricsPort: ports.metrics,
    bindAddress: config.bindAddress,
    mode: config.serviceAccounts.mode,
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
