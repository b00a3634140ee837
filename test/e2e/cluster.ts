/**
 * A throwaway Kubernetes control plane for the end-to-end tier: etcd and a real kube-apiserver on loopback, on
 * free ports, with certificates, keys and tokens made for the run in a private temporary folder. There is no
 * controller-manager and no kubelet: the API server stores Pods but nothing runs them, which is all an admission
 * webhook test needs. The API server is its own ServiceAccount token issuer (`https://127.0.0.1:PORT`) and lets
 * anyone read the issuer's discovery document and keys, so a verifier outside can check the tokens it signs.
 * Both processes die with the test process, however it ends (see processes.ts).
 */
import type { ChildProcess } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { isObject, isString, own } from '../../lib/json.js'
import { makeCa, makeServerCert } from '../helpers/certs.js'
import type { CertFiles } from '../helpers/certs.js'
import { resolveBinaries } from './binaries.js'
import type { E2eBinaries } from './binaries.js'
import { KubeRest } from './kube-rest.js'
import { freePorts, logTail, startProcess, stopProcess, trackDir, untrackDir } from './processes.js'

/** Static-token identity of the test itself: a member of `system:masters`, so RBAC never gets in its way. */
export const adminUser = 'e2e-admin'

/** The built-in ClusterRole that grants reading the issuer's discovery document and key set. */
export const issuerDiscoveryRole = 'system:service-account-issuer-discovery'

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Where binaries are looked up (`KUBE_APISERVER`, `ETCD`, `KUBEBUILDER_ASSETS`); default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Already resolved binaries (skips the lookup). */
  readonly binaries?: E2eBinaries
  /** How long to wait for `/readyz` (default 120 s: two shared cores, and etcd fsyncs on a slow disk). */
  readonly readyTimeoutMs?: number
  /** kube-apiserver `--v` (default 1; 5 shows every webhook call). */
  readonly apiserverVerbosity?: number
  /**
   * The ServiceAccount signing key: `ec` (P-256, tokens signed ES256; the default, made in a millisecond) or `rsa`
   * (2048 bits, RS256, what kubeadm and most managed clusters use).
   */
  readonly signingKey?: 'ec' | 'rsa'
  /**
   * The issuer to claim instead of the API server's own URL, e.g. another cluster's (its discovery document then
   * names this issuer while its key set holds this server's own key).
   */
  readonly issuer?: string
}

/** A running control plane. */
export interface Cluster {
  /** `https://127.0.0.1:PORT`. */
  readonly server: URL
  /**
   * The ServiceAccount token issuer: the API server's own URL (`https://127.0.0.1:PORT`, no trailing slash) unless
   * {@link ClusterOptions.issuer} names another. The server serves `/.well-known/openid-configuration` (naming this
   * issuer) and `/openid/v1/jwks` (its own key), readable without credentials (the discovery role is bound to
   * `system:unauthenticated`, as managed clusters do), so an external IdP can verify the tokens it signs.
   */
  readonly issuer: string
  /** The run's CA: it signed the API server's serving certificate. */
  readonly ca: CertFiles
  /** The CA certificate as PEM, for clients that pin it. */
  readonly caPem: Buffer
  /** REST client acting as {@link adminUser}. */
  readonly admin: KubeRest
  /** Private temporary folder of this run (removed by {@link Cluster.stop}); tests may put their files here. */
  readonly dir: string
  /** Creates a namespace and its `default` ServiceAccount (which no controller-manager creates here). */
  createNamespace(name: string, labels?: Readonly<Record<string, string>>): Promise<void>
  /** A bound ServiceAccount token from the TokenRequest API, as the kubelet would mount it. */
  tokenFor(namespace: string, serviceAccount: string, expirationSeconds?: number): Promise<string>
  /** The last lines a component logged, for failure diagnostics. */
  logTail(component: 'etcd' | 'kube-apiserver', lines?: number): Promise<string>
  /** Stops the API server, then etcd (each SIGTERM, SIGKILL after a grace period), and removes {@link dir}. */
  stop(): Promise<void>
}

const runDirPrefix = 'stackit-e2e-'

/** True while a process with this id exists (signal 0 only checks); EPERM means it exists but is not ours. */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Removes run folders whose test process died by SIGKILL (where no exit handler runs; setpriv has already
 * killed their etcd and API server), so crashed runs do not pile up keys and etcd data in the temp folder.
 */
const removeStaleRunDirs = async (): Promise<void> => {
  for (const name of await readdir(tmpdir())) {
    if (!name.startsWith(runDirPrefix)) continue
    const dir = join(tmpdir(), name)
    const owner = Number.parseInt(await readFile(join(dir, 'owner.pid'), 'utf8').catch(() => ''), 10)
    if (Number.isInteger(owner) && !alive(owner)) await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Starts etcd and kube-apiserver and resolves once the API server reports ready (`/readyz`, which includes its
 * RBAC bootstrap). On failure, everything started is stopped again and the error carries both logs' tails.
 */
export const startCluster = async (options: ClusterOptions = {}): Promise<Cluster> => {
  const binaries = options.binaries ?? (await resolveBinaries(options.env ?? process.env))
  await removeStaleRunDirs()
  // mkdtemp makes the folder 0700: keys, tokens and etcd's data stay private to this user.
  const dir = await mkdtemp(join(tmpdir(), runDirPrefix))
  trackDir(dir)
  await writeFile(join(dir, 'owner.pid'), String(process.pid))
  const logs = { etcd: join(dir, 'etcd.log'), 'kube-apiserver': join(dir, 'kube-apiserver.log') }
  const started: ChildProcess[] = []

  const stop = async (): Promise<void> => {
    // The API server first: it would otherwise spend its shutdown retrying a vanished etcd.
    for (const child of [...started].reverse()) await stopProcess(child, 15_000)
    await rm(dir, { recursive: true, force: true })
    untrackDir(dir)
  }

  try {
    const ca = await makeCa(dir, { name: 'ca' })
    // One serving certificate for both: each listens on 127.0.0.1 only, and the API server checks etcd's.
    const serving = await makeServerCert(dir, ca, { name: 'serving', dnsNames: ['localhost'], ips: ['127.0.0.1'] })
    const publicKeyEncoding = { type: 'spki', format: 'pem' } as const
    const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const
    const saKeys =
      options.signingKey === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding, privateKeyEncoding })
        : generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding, privateKeyEncoding })
    const saKeyFile = join(dir, 'sa.key')
    const saPubFile = join(dir, 'sa.pub')
    await writeFile(saKeyFile, saKeys.privateKey, { mode: 0o600 })
    await writeFile(saPubFile, saKeys.publicKey, { mode: 0o600 })
    const adminToken = randomBytes(32).toString('hex')
    const tokenFile = join(dir, 'tokens.csv')
    // Static token file format: token,user,uid,"group1,group2".
    await writeFile(tokenFile, `${adminToken},${adminUser},${adminUser},"system:masters"\n`, { mode: 0o600 })

    const [etcdClientPort, etcdPeerPort, apiPort] = await freePorts(3)
    const etcdUrl = `https://127.0.0.1:${etcdClientPort}`
    const issuer = options.issuer ?? `https://127.0.0.1:${apiPort}`
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`
    started.push(
      startProcess(
        binaries.etcd,
        [
          '--name=e2e',
          `--data-dir=${join(dir, 'etcd-data')}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          // A single member never talks to peers, but etcd binds the peer URL anyway: keep it on loopback too.
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=e2e=${peerUrl}`,
          `--cert-file=${serving.certFile}`,
          `--key-file=${serving.keyFile}`,
          '--logger=zap',
          '--log-level=warn',
        ],
        logs.etcd,
      ),
    )

    started.push(
      startProcess(
        binaries.kubeApiserver,
        [
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${apiPort}`,
          `--cert-dir=${join(dir, 'apiserver-certs')}`,
          `--tls-cert-file=${serving.certFile}`,
          `--tls-private-key-file=${serving.keyFile}`,
          `--etcd-servers=${etcdUrl}`,
          `--etcd-cafile=${ca.certFile}`,
          `--token-auth-file=${tokenFile}`,
          '--authorization-mode=RBAC',
          // Listed explicitly (they are also defaults) because the tests depend on exactly these.
          '--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,' +
            'MutatingAdmissionWebhook,ValidatingAdmissionWebhook',
          // Its own URL as issuer, so it serves the discovery document and key set a federation fetches; the key
          // set's URL is named too (else derived from the advertised address), and stays its own for a claimed issuer.
          `--service-account-issuer=${issuer}`,
          `--service-account-jwks-uri=https://127.0.0.1:${apiPort}/openid/v1/jwks`,
          `--service-account-key-file=${saPubFile}`,
          `--service-account-signing-key-file=${saKeyFile}`,
          // Only an allocation range for Service objects stored in etcd; no traffic goes there.
          '--service-cluster-ip-range=10.0.0.0/24',
          // No kubelets or controllers: nothing would serve endpoints, so the API server should not maintain them.
          '--endpoint-reconciler-type=none',
          '--allow-privileged=true',
          '--profiling=false',
          `--v=${options.apiserverVerbosity ?? 1}`,
        ],
        logs['kube-apiserver'],
      ),
    )

    const server = new URL(`https://127.0.0.1:${apiPort}`)
    const caPem = await readFile(ca.certFile)
    const admin = new KubeRest({ server, ca: caPem, token: adminToken, timeoutMs: 5_000 })
    const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000)
    for (;;) {
      for (const child of started) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(
            `${child === started[0] ? 'etcd' : 'kube-apiserver'} exited early (${child.exitCode ?? child.signalCode})`,
          )
        }
      }
      const ready = await admin.request('GET', '/readyz').then(
        r => r.status === 200,
        () => false,
      )
      if (ready) break
      if (Date.now() > deadline) throw new Error('kube-apiserver did not become ready in time')
      await sleep(250)
    }

    const restAdmin = new KubeRest({ server, ca: caPem, token: adminToken })
    // As managed clusters expose it: anyone may read the issuer's discovery document and public keys.
    await restAdmin.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'e2e-public-issuer-discovery' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: issuerDiscoveryRole },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:unauthenticated' }],
    })
    return {
      server,
      issuer,
      ca,
      caPem,
      admin: restAdmin,
      dir,
      async createNamespace(name, labels) {
        await restAdmin.create({
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name, ...(labels ? { labels } : {}) },
        })
        await restAdmin.create({
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: { name: 'default', namespace: name },
        })
      },
      async tokenFor(namespace, serviceAccount, expirationSeconds = 3600) {
        const sa = `${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}`
        const path = `/api/v1/namespaces/${sa}/token`
        const review = await restAdmin.post(path, {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { expirationSeconds },
        })
        const status = own(review, 'status')
        const token = isObject(status) ? own(status, 'token') : undefined
        if (!isString(token) || token === '')
          throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`)
        return token
      },
      logTail: (component, lines = 40) => logTail(logs[component], lines),
      stop,
    }
  } catch (e) {
    const etcdLog = await logTail(logs.etcd, 20)
    const apiLog = await logTail(logs['kube-apiserver'], 40)
    const detail = `\n--- etcd log ---\n${etcdLog}\n--- kube-apiserver log ---\n${apiLog}`
    await stop()
    throw new Error(`${e instanceof Error ? e.message : String(e)}${detail}`, { cause: e })
  }
}
