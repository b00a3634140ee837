/**
 * The kubelet's part of workload identity, done as the kubelet does it, for a Pod that no kubelet runs: read the Pod
 * the API server stored (after our webhook mutated it), ask the TokenRequest API for a token per the injected
 * projected volume (its audience and expirationSeconds, bound to the Pod by name and uid), and write it where the
 * container's mount of that volume puts it, inside a temporary root folder standing for the container's filesystem.
 * The file layout is the kubelet's atomic writer's: `<mount>/token` → `..data/token`, `..data` → a timestamped
 * folder.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { isObject, isString, own } from '../../lib/json.js'
import type { JsonObject } from '../../lib/json.js'
import { envNames, volumeName } from '../../lib/names.js'
import { defaultFederatedTokenFile } from '../../lib/workload-identity/workload-identity-config.js'
import { at as field } from '../helpers/manifests.js'
import type { KubeRest } from './kube-rest.js'

/** What one container of the Pod would see of our volume, and its environment, re-rooted under {@link root}. */
export interface MountedIdentity {
  /** The folder standing for the container's root filesystem. */
  readonly root: string
  /**
   * The container's `env` exactly as the API server stored it, except that the token path is re-rooted:
   * `STACKIT_FEDERATED_TOKEN_FILE` prefixed with {@link root}, or, when the Pod relies on the SDK's default path,
   * set to that default under {@link root}.
   */
  readonly env: Record<string, string>
  /** Where the token was written (under {@link root}). */
  readonly tokenFile: string
  /** The token the API server issued (a JWT). */
  readonly token: string
  /** The TokenRequest `spec` that was sent. */
  readonly tokenRequestSpec: JsonObject
}

/** Which Pod and container to mount for. */
export interface MountOptions {
  readonly namespace: string
  readonly pod: string
  /** The container whose mount and env are used; default the Pod's first container. */
  readonly container?: string
  /** An empty folder to stand for the container's root filesystem. */
  readonly root: string
}

const list = (v: unknown): JsonObject[] => (Array.isArray(v) ? v.filter(isObject) : [])
const text = (v: unknown, what: string): string => {
  if (!isString(v) || v === '') throw new Error(`the stored Pod has no ${what}`)
  return v
}

/** The atomic writer's folder name for one write, e.g. `..2026_01_31_12_00_00.123456789`. */
const timestampedDir = (now: Date): string => {
  const [date = '', time = ''] = now.toISOString().replace('Z', '').split('T')
  const [hms = '', ms = '0'] = time.split('.')
  return `..${date.replaceAll('-', '_')}_${hms.replaceAll(':', '_')}.${ms.padEnd(9, '0')}`
}

/**
 * Mounts our projected token for one container of a stored Pod, as the kubelet would; throws if the Pod has no such
 * volume or mount (the webhook did not mutate it) or the API server refuses the TokenRequest.
 */
export const mountWorkloadIdentity = async (api: KubeRest, options: MountOptions): Promise<MountedIdentity> => {
  const { namespace, pod: podName, root } = options
  const pod = await api.get(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(podName)}`)
  const uid = text(field(pod, 'metadata', 'uid'), 'metadata.uid')
  // An empty serviceAccountName means `default` (the ServiceAccount admission plugin fills it in anyway).
  const serviceAccount = field(pod, 'spec', 'serviceAccountName')
  const account = isString(serviceAccount) && serviceAccount !== '' ? serviceAccount : 'default'

  const volume = list(field(pod, 'spec', 'volumes')).find(v => own(v, 'name') === volumeName)
  const sources = list(field(volume, 'projected', 'sources'))
  const tokenSources = sources.map(s => own(s, 'serviceAccountToken')).filter(isObject)
  const [source] = tokenSources
  if (source === undefined || tokenSources.length !== 1 || sources.length !== 1) {
    throw new Error(`the stored Pod has no ${volumeName} volume with exactly one serviceAccountToken source`)
  }
  const path = text(own(source, 'path'), `path in the ${volumeName} volume's token source`)
  const audience = own(source, 'audience')
  const expirationSeconds = own(source, 'expirationSeconds')
  // The API server defaults defaultMode to 0644 on a projected volume; the kubelet writes the files with it.
  const mode = field(volume, 'projected', 'defaultMode')

  const containers = list(field(pod, 'spec', 'containers'))
  const container =
    options.container === undefined ? containers[0] : containers.find(c => own(c, 'name') === options.container)
  if (container === undefined) throw new Error(`the stored Pod has no container ${options.container ?? ''}`)
  const mount = list(own(container, 'volumeMounts')).find(m => own(m, 'name') === volumeName)
  const mountPath = text(field(mount, 'mountPath'), `mount of ${volumeName} in the container`)
  if (field(mount, 'subPath') !== undefined) throw new Error('a subPath mount is beyond this emulation')

  // The kubelet's request: the source's audience (none: the API server's own audiences), its expiration, the Pod.
  const tokenRequestSpec: JsonObject = {
    ...(isString(audience) && audience !== '' ? { audiences: [audience] } : {}),
    ...(typeof expirationSeconds === 'number' ? { expirationSeconds } : {}),
    boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: podName, uid },
  }
  const sa = `${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(account)}`
  const review = await api.post(`/api/v1/namespaces/${sa}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: tokenRequestSpec,
  })
  const token = text(field(review, 'status', 'token'), 'token in the TokenRequest answer')

  // The atomic writer: the payload in a fresh timestamped folder, `..data` pointing at it, and each top-level name of
  // the payload a symlink through `..data`, so a rotation is one rename.
  const volumeDir = join(root, mountPath)
  const payloadDir = timestampedDir(new Date())
  await mkdir(join(volumeDir, payloadDir, path, '..'), { recursive: true })
  await writeFile(join(volumeDir, payloadDir, path), token, { mode: typeof mode === 'number' ? mode : 0o644 })
  await symlink(payloadDir, join(volumeDir, '..data'))
  const [top = path] = path.split('/')
  await symlink(join('..data', top), join(volumeDir, top))

  const env: Record<string, string> = {}
  for (const entry of list(own(container, 'env'))) {
    const name = text(own(entry, 'name'), 'env name')
    const value = own(entry, 'value')
    if (own(entry, 'valueFrom') !== undefined) throw new Error(`env ${name} uses valueFrom, beyond this emulation`)
    env[name] = isString(value) ? value : ''
  }
  const configured = env[envNames.federatedTokenFile]
  const inContainer = configured === undefined || configured === '' ? defaultFederatedTokenFile : configured
  if (!isAbsolute(inContainer)) throw new Error(`${envNames.federatedTokenFile} in the Pod is not an absolute path`)
  env[envNames.federatedTokenFile] = join(root, inContainer)
  return { root, env, tokenFile: join(volumeDir, path), token, tokenRequestSpec }
}
