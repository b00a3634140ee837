/**
 * Runs the real webhook (`dist/bin/stackit-pod-identity-webhook.js serve`) as a child process with the flags an
 * operator would pass, reads the ports it bound from its `listening` log line, and waits for `/readyz` (which
 * turns 200 only once the ServiceAccount cache has synced against the API server).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import http from 'node:http'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { isObject, own } from '../../lib/json.js'
import { logTail, startProcess, stopProcess } from './processes.js'
import { makeCa, makeServerCert, type CertFiles } from '../helpers/certs.js'
import { imageNodeFlags } from '../helpers/image-entrypoint.js'
import type { Cluster } from './cluster.js'
import { distBin } from '../helpers/paths.js'

/** The CLI as built by `tsc -p .`. */
export const webhookBin = distBin('stackit-pod-identity-webhook')

/** How to start one webhook process. */
export interface WebhookProcessOptions {
  /** The test API server. */
  readonly apiServer: URL
  /** CA that signed the API server's certificate. */
  readonly apiCaFile: string
  /** Bearer token file of the webhook's ServiceAccount. */
  readonly apiTokenFile: string
  /** Folder with `tls.crt` and `tls.key` (swapped on disk for rotation tests). */
  readonly certDir: string
  /** Admission port; 0 (default) lets the kernel choose, a restart passes the previous port. */
  readonly port?: number
  /** Where stdout and stderr go (JSON lines). */
  readonly logFile: string
  /** Further flags, appended last. */
  readonly extraArgs?: readonly string[]
  /** How long to wait for the `listening` line and then `/readyz` (default 60 s). */
  readonly readyTimeoutMs?: number
}

/** A started webhook. */
export interface WebhookProcess {
  readonly child: ChildProcess
  readonly admissionPort: number
  readonly healthPort: number
  readonly metricsPort: number
  /** The Prometheus text its metrics port serves right now. */
  metrics(): Promise<string>
  /** SIGTERM (the webhook drains in-flight reviews), SIGKILL after 15 s; resolves to the exit code. */
  stop(): Promise<number | null>
}

/** The `listening` line's ports, once the process has logged it. */
const listeningPorts = async (
  logFile: string,
): Promise<{ admission: number; health: number; metrics: number } | undefined> => {
  const text = await readFile(logFile, 'utf8').catch(() => '')
  for (const line of text.split('\n')) {
    let entry: unknown
    try {
      entry = JSON.parse(line)
    } catch {
      continue
    }
    if (!isObject(entry) || own(entry, 'msg') !== 'listening') continue
    const [admission, health, metrics] = ['admissionPort', 'healthPort', 'metricsPort'].map(k => own(entry, k))
    if (typeof admission === 'number' && typeof health === 'number' && typeof metrics === 'number')
      return { admission, health, metrics }
  }
  return undefined
}

const readyz = (port: number): Promise<number> =>
  new Promise(resolve => {
    const req = http.get({ host: '127.0.0.1', port, path: '/readyz', timeout: 2_000 }, res => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(0))
  })

const get = (port: number, path: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 5_000 }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('error', reject)
      res.on('end', () =>
        res.statusCode === 200 ? resolve(text) : reject(new Error(`GET ${path} → ${res.statusCode}`)),
      )
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)))
    req.on('error', reject)
  })

/**
 * The sum of every series of the webhook's metric `name` (without the `stackit_pod_identity_webhook_` prefix) whose
 * labels include all of `labels`; 0 when there is none. `{}` sums all of them.
 */
export const metricValue = (text: string, name: string, labels: Readonly<Record<string, string>> = {}): number => {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  let sum = 0
  for (const line of text.split('\n')) {
    const match = /^stackit_pod_identity_webhook_([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match?.[1] !== name) continue
    const present = (match[2] ?? '').split(',')
    if (wanted.every(w => present.includes(w))) sum += Number(match[3])
  }
  return sum
}

/** Starts the webhook and resolves once it is ready to admit Pods. */
export const startWebhookProcess = async (options: WebhookProcessOptions): Promise<WebhookProcess> => {
  const child = startProcess(
    process.execPath,
    [
      // The Node flags of the container image's ENTRYPOINT, as in production.
      ...imageNodeFlags(),
      webhookBin,
      'serve',
      // Loopback only: the test API server is the only client, and nothing else on the machine should reach it.
      '--bind-address',
      '127.0.0.1',
      '--port',
      String(options.port ?? 0),
      '--health-port',
      '0',
      '--metrics-port',
      '0',
      '--cert-dir',
      options.certDir,
      '--api-server',
      options.apiServer.href.replace(/\/$/, ''),
      '--api-ca-file',
      options.apiCaFile,
      '--api-token-file',
      options.apiTokenFile,
      '--log-level',
      'debug',
      '--shutdown-timeout',
      '5s',
      ...(options.extraArgs ?? []),
    ],
    options.logFile,
  )
  const stop = async (): Promise<number | null> => {
    await stopProcess(child, 15_000)
    return child.exitCode
  }
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000)
  try {
    let ports: Awaited<ReturnType<typeof listeningPorts>>
    while ((ports = await listeningPorts(options.logFile)) === undefined) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`the webhook exited (${child.exitCode ?? child.signalCode})`)
      if (Date.now() > deadline) throw new Error('the webhook logged no "listening" line in time')
      await sleep(100)
    }
    while ((await readyz(ports.health)) !== 200) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`the webhook exited (${child.exitCode ?? child.signalCode})`)
      if (Date.now() > deadline) throw new Error('the webhook did not report ready in time')
      await sleep(100)
    }
    const { admission, health, metrics } = ports
    const scrape = (): Promise<string> => get(metrics, '/metrics')
    return { child, admissionPort: admission, healthPort: health, metricsPort: metrics, metrics: scrape, stop }
  } catch (e) {
    await stop()
    const log = await logTail(options.logFile, 30)
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- webhook log ---\n${log}`, { cause: e })
  }
}

/** The serving certificate of a run's webhook: its folder, its CA, and the CA as a webhook configuration's caBundle. */
export interface WebhookCerts {
  readonly certDir: string
  readonly ca: CertFiles
  readonly caBundle: string
}

/** A CA of the run's own and a serving certificate for localhost and 127.0.0.1 in `<cluster dir>/webhook-certs`. */
export const makeWebhookCerts = async (cluster: Pick<Cluster, 'dir'>): Promise<WebhookCerts> => {
  const certDir = join(cluster.dir, 'webhook-certs')
  await mkdir(certDir)
  const ca = await makeCa(cluster.dir, { name: 'webhook-ca' })
  await makeServerCert(certDir, ca, { name: 'tls', dnsNames: ['localhost'], ips: ['127.0.0.1'] })
  return { certDir, ca, caBundle: (await readFile(ca.certFile)).toString('base64') }
}

/**
 * Starts the webhook against `cluster` as the ServiceAccount whose token is in `tokenFile`, serving from `certDir`;
 * each start logs to a file of its own (`webhook-N.log`), and a restart may pass the previous port.
 */
export const webhookStarter = (cluster: Pick<Cluster, 'server' | 'ca' | 'dir'>, tokenFile: string, certDir: string) => {
  let starts = 0
  return (port?: number): Promise<WebhookProcess> =>
    startWebhookProcess({
      apiServer: cluster.server,
      apiCaFile: cluster.ca.certFile,
      apiTokenFile: tokenFile,
      certDir,
      logFile: join(cluster.dir, `webhook-${++starts}.log`),
      ...(port === undefined ? {} : { port }),
    })
}
