// The import rules the layout stands for, read from the sources: which folder of lib/ may import which, the one
// runtime dependency, and no cycles. A rule broken here is a design decision, not a refactoring detail.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { repoPath } from './helpers/paths.js'

/** A module as the rules see it: its path from the repository root and what it imports. */
interface Module {
  readonly file: string
  readonly imports: readonly string[]
}

const tsFiles = (dir: string): string[] =>
  readdirSync(repoPath(dir), { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  )

// Static imports and re-exports (`import … from`, `export … from`, `import '…'`) and `import('…')` types.
const specifier = /(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)'([^']+)'/gm

// Comments are dropped first: doc comments show imports a user would write.
const withoutComments = (text: string): string => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')

/** Relative specifiers resolved to repository paths of .ts sources; packages and node: builtins as written. */
const importsOf = (file: string): string[] =>
  [...withoutComments(readFileSync(repoPath(file), 'utf8')).matchAll(specifier)].map(([, s = '']) =>
    s.startsWith('.') ? relative(repoPath(), resolve(repoPath(dirname(file)), s)).replace(/\.js$/, '.ts') : s,
  )

const modules: Module[] = [...tsFiles('lib'), ...tsFiles('bin')].map(file => ({ file, imports: importsOf(file) }))

/** The room a module belongs to: `root` (lib/*.ts), a folder of lib/, `bin`, a package or `node`. */
const roomOf = (target: string): string => {
  if (target.startsWith('node:')) return 'node'
  if (target.startsWith('bin/')) return 'bin'
  if (!target.startsWith('lib/')) return `package ${target}`
  const parts = target.split('/')
  return parts.length === 2 ? 'root' : (parts[1] ?? '')
}

t.test('the sources were found and their imports read', async t => {
  t.ok(modules.length >= 30, `${modules.length} modules`)
  // Known edges of each form the parser must see, so a parser that finds nothing cannot pass the rules below.
  type Edge = [from: string, to: string, form: string]
  const edges: Edge[] = [
    ['bin/stackit-pod-identity-webhook.ts', 'lib/cli/cli.ts', 'import … from'],
    ['lib/server/listeners.ts', 'lib/server/tls-reloader.ts', 'import type … from'],
    ['lib/index.ts', 'lib/workload-identity/workload-identity-client.ts', 'export … from'],
    ['lib/admission/pod-decision.ts', 'fast-json-patch', 'a package'],
    ['lib/kube/kube-client.ts', 'node:https', 'a builtin'],
  ]
  for (const [from, to, form] of edges) {
    t.ok(modules.find(m => m.file === from)?.imports.includes(to), `${from} → ${to} (${form})`)
  }
  const known = new Set(modules.map(m => m.file))
  const unresolved = modules.flatMap(m =>
    m.imports.filter(i => i.startsWith('lib/') && !known.has(i)).map(i => `${m.file} → ${i}`),
  )
  t.same(unresolved, [], 'every relative import names a source file')
})

t.test('each folder imports only what its rule allows', async t => {
  type Rule = [room: string, why: string, allowed: readonly string[]]
  const rules: Rule[] = [
    ['root', 'the shared kernel depends on no concern', ['root', 'node']],
    [
      'admission',
      'the pure core: no HTTP, no Kubernetes client, no CLI',
      ['root', 'admission', 'node', 'package fast-json-patch'],
    ],
    [
      'kube',
      'the API client and cache know the ServiceAccount model, nothing of admission or serving',
      ['root', 'kube', 'node', 'lib/admission/serviceaccount.ts'],
    ],
    [
      'server',
      'the HTTPS side serves the admission core; it never reaches the CLI or the API client',
      ['root', 'server', 'admission', 'node'],
    ],
    ['workload-identity', 'the client library for apps stands alone', ['root', 'workload-identity', 'node']],
    ['cli', 'the commands wire everything together', ['root', 'cli', 'admission', 'kube', 'server', 'node']],
    [
      'bin',
      'the binaries start commands (the demo starts the webhook in process)',
      ['cli', 'server', 'workload-identity', 'root', 'bin', 'node'],
    ],
  ]
  // Two files cross their room's rule on purpose: the package entry re-exports the public client, and the composition
  // root wires the API client into the server.
  const entry = new Map([
    ['lib/index.ts', ['workload-identity']],
    ['lib/server/webhook.ts', ['kube']],
  ])
  for (const [room, why, allowed] of rules) {
    const broken = modules
      .filter(m => roomOf(m.file) === room)
      .flatMap(m =>
        m.imports
          .filter(i => !allowed.includes(roomOf(i)) && !allowed.includes(i) && !entry.get(m.file)?.includes(roomOf(i)))
          .map(i => `${m.file} → ${i}`),
      )
    t.same(broken, [], `${room}: ${why}`)
  }
  const unruled = modules.filter(m => !rules.some(([room]) => room === roomOf(m.file))).map(m => m.file)
  t.same(unruled, [], 'every module falls under a rule')
})

t.test('single edges the layout forbids', async t => {
  type Ban = [from: string, to: string, why: string]
  const bans: Ban[] = [
    ['lib/server/admission-handler.ts', 'lib/server/listeners.ts', 'it answers through the response helpers'],
  ]
  for (const [from, to, why] of bans) {
    t.ok(
      modules.some(m => m.file === from),
      `${from} exists`,
    )
    t.notOk(modules.find(m => m.file === from)?.imports.includes(to), `${from} ↛ ${to}: ${why}`)
  }
})

t.test('fast-json-patch is the only package imported, and only by the admission core', async t => {
  const packages = modules.flatMap(m =>
    m.imports.filter(i => roomOf(i).startsWith('package ')).map(i => `${m.file} → ${i}`),
  )
  t.same(
    packages.filter(p => !/^lib\/admission\/[^ ]+ → fast-json-patch$/.test(p)),
    [],
    'no other package',
  )
  t.ok(packages.length > 0, 'the admission core does import it (the patch comes from fast-json-patch)')
})

t.test('the import graph has no cycle', async t => {
  const edges = new Map(modules.map(m => [m.file, m.imports.filter(i => i.startsWith('lib/') || i.startsWith('bin/'))]))
  const state = new Map<string, 'open' | 'done'>()
  const cycles: string[] = []
  const visit = (file: string, path: readonly string[]): void => {
    if (state.get(file) === 'done') return
    if (state.get(file) === 'open') {
      cycles.push([...path.slice(path.indexOf(file)), file].join(' → '))
      return
    }
    state.set(file, 'open')
    for (const next of edges.get(file) ?? []) visit(next, [...path, file])
    state.set(file, 'done')
  }
  for (const file of edges.keys()) visit(file, [])
  t.same(cycles, [], 'acyclic')
})

t.test('no source line is over 120 characters (the formatter does not cut strings and comments)', async t => {
  const files = [...tsFiles('lib'), ...tsFiles('bin'), ...tsFiles('test')]
  t.ok(files.length > 60, `${files.length} files read`)
  const long = files.flatMap(file =>
    readFileSync(repoPath(file), 'utf8')
      .split('\n')
      .flatMap((line, i) => (line.length > 120 ? [`${file}:${i + 1} (${line.length})`] : [])),
  )
  t.same(long, [], 'every line fits in 120 characters')
})
