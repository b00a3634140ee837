// The package entry, imported by name as a Node app would (package.json "exports"): exactly the API the README
// documents. An export added or removed fails here, so a change of the public API is always a decision.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { repoPath } from './helpers/paths.js'

const values = [
  'WorkloadIdentityClient',
  'WorkloadIdentityError',
  'isWorkloadIdentityError',
  'resolveWorkloadIdentityConfig',
]
const types = [
  'Env',
  'WorkloadIdentityClientOptions',
  'WorkloadIdentityConfig',
  'WorkloadIdentityErrorCode',
  'WorkloadIdentityOptions',
]

// A variable specifier keeps tsc from resolving the package's own .d.ts, which a fresh clone has not built yet.
const name = 'stackit-pod-identity-webhook'
type Package = typeof import('../lib/index.js')
const load = async (): Promise<Package> => (await import(name)) as Package

t.test('the values the package exports, no more and no fewer', async t => {
  t.same(Object.keys(await load()).sort(), [...values].sort())
})

t.test('the names its declarations export (what TypeScript users see), no more and no fewer', async t => {
  const text = await readFile(repoPath('dist', 'lib', 'index.d.ts'), 'utf8')
  const statements = text.split('\n').filter(l => l.startsWith('export'))
  const lists = statements.map(l => /^export (?:type )?\{ ([^}]+) \} from '[^']+';$/.exec(l)?.[1])
  const others = statements.filter((_, i) => lists[i] === undefined)
  t.same(others, [], 'only named re-exports (no export *, no declarations)')
  t.same(lists.flatMap(l => l?.split(', ') ?? []).sort(), [...values, ...types].sort())
})

t.test('the error class exported is the one the client throws', async t => {
  const pkg = await load()
  const thrown = (fn: () => unknown): unknown => {
    try {
      fn()
    } catch (e) {
      return e
    }
    return undefined
  }
  t.ok(thrown(() => new pkg.WorkloadIdentityClient({ env: {} })) instanceof pkg.WorkloadIdentityError)
  t.ok(
    pkg.isWorkloadIdentityError(
      thrown(() => pkg.resolveWorkloadIdentityConfig({}, {})),
      'CONFIG',
    ),
  )
})
