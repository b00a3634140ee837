/**
 * The Node flags the container image starts the webhook with (its Dockerfile ENTRYPOINT), so tests and benchmarks
 * run the webhook process exactly as production does.
 */
import { readFileSync } from 'node:fs'
import { repoPath } from './paths.js'

const dockerfile = repoPath('Dockerfile')

/** The ENTRYPOINT array of the Dockerfile's final stage. */
export const imageEntrypoint = (): string[] => {
  const lines = readFileSync(dockerfile, 'utf8')
    .split('\n')
    .filter(l => l.startsWith('ENTRYPOINT '))
  const last = lines.at(-1)
  if (!last) throw new Error('the Dockerfile has no ENTRYPOINT')
  return JSON.parse(last.slice('ENTRYPOINT '.length)) as string[]
}

/** The flags between the node binary and the script, e.g. `--max-semi-space-size=4`. */
export const imageNodeFlags = (): string[] => imageEntrypoint().slice(1, -1)
