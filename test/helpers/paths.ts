/**
 * Paths in the repository for the tests, the benchmarks and the end-to-end tier, computed in one place: this file
 * runs as dist/test/helpers/paths.js, three levels below the repository root, wherever its importer lives.
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root, with a trailing separator. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))

/** An absolute path below the repository root, e.g. `repoPath('manifests', 'base')`. */
export const repoPath = (...segments: string[]): string => join(repoRoot, ...segments)

/** An absolute path below test/fixtures/; with no argument, that folder. */
export const fixturePath = (...segments: string[]): string => repoPath('test', 'fixtures', ...segments)

/** The compiled entry point of a `bin/` script, e.g. `distBin('demo')` for dist/bin/demo.js. */
export const distBin = (name: string): string => repoPath('dist', 'bin', `${name}.js`)
