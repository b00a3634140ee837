/**
 * The real helm for the end-to-end tier: where it is (HELM, else test/helm/.cache/bin/helm, which
 * test/helm/build.sh makes), whether it is there, and `helm template` of the chart as users install it (the
 * reference chart's documented release and namespace, both named after the chart).
 */
import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { access } from 'node:fs/promises'
import { promisify } from 'node:util'
import { parseAllDocuments } from 'yaml'
import { isObj, str } from '../helpers/manifests.js'
import { repoPath } from '../helpers/paths.js'

const run = promisify(execFile)

/** The helm binary the tier runs. */
export const helm = process.env['HELM'] || repoPath('test', 'helm', '.cache', 'bin', 'helm')
/** The chart under test. */
export const chart = repoPath('manifests', 'helm', 'stackit-pod-identity-webhook')
/** The reference chart's documented install: release and namespace both named after the chart. */
export const release = 'stackit-pod-identity-webhook'
export const namespace = 'stackit-pod-identity-webhook'

/** Whether {@link helm} can be run; a file that needs it is skipped with {@link noHelm} otherwise. */
export const haveHelm = await access(helm, constants.X_OK).then(
  () => true,
  () => false,
)

/** Why a file needing helm was skipped, and how to make it run. */
export const noHelm = `no helm at ${helm}: run test/helm/build.sh, or set HELM to a helm binary`

/**
 * Renders the chart with `args` (`--set …`) as {@link release} in {@link namespace}; the objects, or helm's
 * stderr when it fails. `home` keeps helm's config, cache and repository lists out of the user's home.
 */
export const render = async (
  home: string,
  args: readonly string[],
): Promise<{ objects: unknown[]; stderr: string }> => {
  const env = { ...process.env, HELM_CONFIG_HOME: home, HELM_CACHE_HOME: home, HELM_DATA_HOME: home }
  try {
    const out = await run(helm, ['template', release, chart, '--namespace', namespace, ...args], { env })
    const objects = parseAllDocuments(out.stdout)
    if (!Array.isArray(objects)) throw new Error('helm template printed no YAML stream')
    return { objects: objects.map(d => d.toJS() as unknown).filter(o => o !== null), stderr: out.stderr }
  } catch (error) {
    if (isObj(error) && typeof error['stderr'] === 'string') return { objects: [], stderr: error['stderr'] }
    throw error
  }
}

/** The one object of `kind` (throws when there is none or several). */
export const one = (objects: readonly unknown[], kind: string): unknown => {
  const found = objects.filter(o => str(o, 'kind') === kind)
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`)
  return found[0]
}
