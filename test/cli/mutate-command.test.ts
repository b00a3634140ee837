// In-process runs of `mutate` with in-memory I/O, for the edges a spawned process cannot reach.
import t from 'tap'
import { runMutate, type CommandIO } from '../../lib/cli/mutate-command.js'

const io = (
  stdin: string,
  files: Record<string, string | Error | string[]> = {},
): CommandIO & { out: string; err: string } => {
  const r = {
    out: '',
    err: '',
    readStdin: () => Promise.resolve(stdin),
    readFile: (p: string) => {
      const f = files[p]
      return typeof f === 'string' ? Promise.resolve(f) : Promise.reject(f ?? new Error('missing'))
    },
    stdout: (s: string) => void (r.out += s),
    stderr: (s: string) => void (r.err += s),
  }
  return r
}

t.test('a read failure without an errno code still names the file', async t => {
  const x = io('{}', { 'a.json': new Error('odd'), 'b.json': ['not an Error'] })
  t.equal(await runMutate(['--service-account', 'a.json'], x), 2)
  t.equal(x.err, 'error: cannot read --service-account file a.json\n')
  const y = io('{}', { 'b.json': ['not an Error'] })
  t.equal(await runMutate(['--service-account', 'b.json'], y), 2)
  t.equal(y.err, 'error: cannot read --service-account file b.json\n')
})

t.test('a bare Pod without metadata uses --namespace', async t => {
  const sa = JSON.stringify({
    kind: 'ServiceAccount',
    metadata: {
      name: 'default',
      namespace: 'ns',
      annotations: { 'workload-identity.stackit.cloud/service-account-email': 'a@b.cd' },
    },
  })
  const x = io(JSON.stringify({ kind: 'Pod', spec: { containers: [{ name: 'c' }] } }), { 'sa.json': sa })
  t.equal(await runMutate(['--service-account', 'sa.json', '--namespace', 'ns'], x), 0)
  t.equal(JSON.parse(x.out).spec.containers[0].env[0].value, 'a@b.cd')
  const y = io(JSON.stringify({ kind: 'Pod', metadata: { namespace: '' }, spec: { containers: [{ name: 'c' }] } }), {
    'sa.json': sa,
  })
  t.equal(
    await runMutate(['--service-account', 'sa.json', '--namespace', 'ns'], y),
    0,
    'an empty namespace counts as none',
  )
  t.equal(JSON.parse(y.out).spec.containers[0].env[0].value, 'a@b.cd')
})

t.test('a Pod nested too deeply to print back is unusable input (exit 2), not a crash', async t => {
  const deep = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`
  const x = io(
    '{"kind":"Pod","metadata":{"labels":{"workload-identity.stackit.cloud/skip-pod-identity-webhook":"true"},' +
      `"x":${deep}},"spec":{"containers":[{"name":"c"}]}}`,
  )
  t.equal(await runMutate([], x), 2)
  t.equal(x.err, 'error: standard input is nested too deeply to be printed back\n')
  t.equal(x.out, '')
})
