/**
 * Reads the YAML under `manifests/` for the manifest and image tests: every document of every file, parsed with a
 * real YAML parser (any parse error or warning throws, naming the file), plus small accessors for walking the
 * parsed, untrusted trees without casts, and a label-selector evaluator with the API server's semantics.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { repoRoot } from './paths.js'

/** The repository root. */
export { repoRoot }

/** The manifests directory. */
export const manifestsDir = join(repoRoot, 'manifests')

/** One YAML document: its file (relative to the repository root), its position in the file, its content. */
export interface ManifestDoc {
  readonly file: string
  readonly index: number
  readonly doc: unknown
}

/** A plain object from parsed YAML. */
export type Obj = Readonly<Record<string, unknown>>

/** True for a plain object (not an array, not null). */
export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Walks `v` along `path` (object keys and array indices); undefined where the path does not exist. */
export const at = (v: unknown, ...path: ReadonlyArray<string | number>): unknown => {
  let cur = v
  for (const step of path) {
    if (typeof step === 'number') cur = Array.isArray(cur) ? (cur as unknown[])[step] : undefined
    else cur = isObj(cur) ? cur[step] : undefined
  }
  return cur
}

/** `at(...)` as an array; an empty one where the path holds no array. */
export const arr = (v: unknown, ...path: ReadonlyArray<string | number>): readonly unknown[] => {
  const found = at(v, ...path)
  return Array.isArray(found) ? (found as unknown[]) : []
}

/** `at(...)` as a string; undefined where the path holds no string. */
export const str = (v: unknown, ...path: ReadonlyArray<string | number>): string | undefined => {
  const found = at(v, ...path)
  return typeof found === 'string' ? found : undefined
}

/** `at(...)` as a string map (labels, matchLabels); empty where absent or not all values are strings. */
export const strMap = (v: unknown, ...path: ReadonlyArray<string | number>): Readonly<Record<string, string>> => {
  const found = at(v, ...path)
  if (!isObj(found)) return {}
  const out: Record<string, string> = {}
  for (const [k, val] of Object.entries(found)) if (typeof val === 'string') out[k] = val
  return out
}

/** The Helm chart's folder: Go templates, not manifests (test/helm/check.sh and the e2e tier render and check it). */
const helmDir = join(manifestsDir, 'helm')

/** Every `.yaml`/`.yml` file under `dir`, sorted, as absolute paths; the Helm chart's files are left out. */
export const yamlFiles = async (dir: string = manifestsDir): Promise<string[]> => {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries
    .filter(e => e.isFile() && /\.ya?ml$/.test(e.name) && !`${e.parentPath}/`.startsWith(`${helmDir}/`))
    .map(e => join(e.parentPath, e.name))
    .sort()
}

/** Parses one YAML file into its documents; a syntax error or warning throws with the file and the message. */
export const parseYamlFile = async (file: string): Promise<ManifestDoc[]> => {
  const name = relative(repoRoot, file)
  const docs = parseAllDocuments(await readFile(file, 'utf8'))
  if (!Array.isArray(docs)) throw new Error(`${name}: not a YAML stream`)
  return docs.map((d, index) => {
    const problem = d.errors[0] ?? d.warnings[0]
    if (problem) throw new Error(`${name}, document ${index + 1}: ${problem.message}`)
    return { file: name, index, doc: d.toJS() as unknown }
  })
}

/** Every document under `manifests/` (empty documents, e.g. after a trailing `---`, are dropped). */
export const loadManifests = async (): Promise<ManifestDoc[]> => {
  const all: ManifestDoc[] = []
  for (const file of await yamlFiles()) all.push(...(await parseYamlFile(file)))
  return all.filter(d => d.doc !== null && d.doc !== undefined)
}

/** The documents of one kind, optionally only those in files under `dir` (relative to the repository root). */
export const ofKind = (docs: readonly ManifestDoc[], kind: string, dir = 'manifests/'): ManifestDoc[] =>
  docs.filter(d => str(d.doc, 'kind') === kind && d.file.startsWith(dir))

/** The one document of `kind` under `dir`; throws when there is none or more than one. */
export const theOne = (docs: readonly ManifestDoc[], kind: string, dir = 'manifests/base/'): unknown => {
  const found = ofKind(docs, kind, dir)
  if (found.length !== 1) throw new Error(`expected exactly one ${kind} under ${dir}, found ${found.length}`)
  return (found[0] as ManifestDoc).doc
}

/**
 * Whether a label selector (matchLabels and matchExpressions with In, NotIn, Exists, DoesNotExist) selects an
 * object with `labels`, as the API server decides it. NotIn and DoesNotExist also select objects without the key.
 */
export const selects = (selector: unknown, labels: Readonly<Record<string, string>>): boolean => {
  for (const [k, v] of Object.entries(strMap(selector, 'matchLabels'))) if (labels[k] !== v) return false
  for (const e of arr(selector, 'matchExpressions')) {
    const key = str(e, 'key') ?? ''
    const values = arr(e, 'values')
    const has = Object.hasOwn(labels, key)
    const ok = {
      In: has && values.includes(labels[key]),
      NotIn: !has || !values.includes(labels[key]),
      Exists: has,
      DoesNotExist: !has,
    }[str(e, 'operator') ?? '']
    if (ok !== true) return false
  }
  return true
}
