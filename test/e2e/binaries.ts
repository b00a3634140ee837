/**
 * Which kube-apiserver and etcd the end-to-end tier runs: binaries the user already has (`KUBE_APISERVER` /
 * `ETCD`, or an envtest folder in `KUBEBUILDER_ASSETS`), else the ones `test/e2e/build.sh` put into
 * `test/e2e/.cache/bin/`. The environment is a parameter so the choice is easy to reason about in one place.
 */
import { constants } from 'node:fs'
import { access } from 'node:fs/promises'
import { join } from 'node:path'
import { repoPath } from '../helpers/paths.js'

/** Absolute paths of the two programs a test cluster needs. */
export interface E2eBinaries {
  readonly kubeApiserver: string
  readonly etcd: string
}

/** Where build.sh leaves its output. */
export const cacheBinDir = repoPath('test', 'e2e', '.cache', 'bin')

const pick = (
  env: Readonly<Record<string, string | undefined>>,
  variable: string,
  name: string,
): { path: string; from: string } => {
  const direct = env[variable]
  if (direct !== undefined && direct !== '') return { path: direct, from: variable }
  const assets = env['KUBEBUILDER_ASSETS']
  if (assets !== undefined && assets !== '') return { path: join(assets, name), from: 'KUBEBUILDER_ASSETS' }
  return { path: join(cacheBinDir, name), from: 'test/e2e/build.sh' }
}

/**
 * Resolves both binaries and checks that they are executable, failing with a message that says how to get them
 * (rather than a spawn ENOENT in the middle of a test).
 */
export const resolveBinaries = async (env: Readonly<Record<string, string | undefined>>): Promise<E2eBinaries> => {
  const found: string[] = []
  for (const [variable, name] of [
    ['KUBE_APISERVER', 'kube-apiserver'],
    ['ETCD', 'etcd'],
  ] as const) {
    const { path, from } = pick(env, variable, name)
    try {
      await access(path, constants.X_OK)
    } catch {
      throw new Error(
        `${name} not found or not executable at ${path} (from ${from}); run test/e2e/build.sh, ` +
          `or point ${variable} or KUBEBUILDER_ASSETS at an existing binary`,
      )
    }
    found.push(path)
  }
  const [kubeApiserver = '', etcd = ''] = found
  return { kubeApiserver, etcd }
}
