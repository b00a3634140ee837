// The built binary writing into real pipes whose reader starts late: the process must not exit before its
// output has drained (stdout and stderr on a pipe are asynchronous), and serve must still end when nobody reads.
import t, { type Test } from 'tap'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import https from 'node:https'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { makeCa, makeServerCert } from '../helpers/certs.js'
import { binPath, request } from '../helpers/webhook-client.js'
import { fixturePath } from '../helpers/paths.js'

const fixtures = fixturePath()
const saFile = join(fixtures, 'serviceaccounts.json')
const review = readFileSync(join(fixtures, 'admission-review-deployment-pod.json'), 'utf8')

/** How long the reader waits before it starts: only creates the condition, nothing is timed. */
const readerDelayMs = 1000
/** What a pipe (64 KiB) and the reading side's stream buffer (at most 64 KiB) hold while nobody reads. */
const pipeCapacity = 128 * 1024

/**
 * A reader that does not read yet: its listener is attached (so Node does not discard the pipe's data when the
 * child exits) and the stream is paused until `start()`. `text` resolves with all the pipe delivered.
 */
const lateReader = (stream: NodeJS.ReadableStream): { start: () => void; text: Promise<string> } => {
  let text = ''
  stream.setEncoding('utf8')
  stream.on('data', (d: string) => (text += d))
  stream.pause()
  return { start: () => void stream.resume(), text: new Promise(resolve => stream.on('end', () => resolve(text))) }
}

/** What a finished CLI run printed and how it exited. */
interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the CLI with `stdin`; stdout and stderr are read only after {@link readerDelayMs}. */
const runWithLateReader = async (args: readonly string[], stdin: string): Promise<Run> => {
  const child = spawn(process.execPath, [binPath, ...args])
  const out = lateReader(child.stdout)
  const err = lateReader(child.stderr)
  const closed = new Promise<number | null>(resolve => child.on('close', code => resolve(code)))
  child.stdin.on('error', () => {}) // the child may exit before reading everything
  child.stdin.end(stdin)
  await sleep(readerDelayMs)
  out.start()
  err.start()
  return { code: await closed, stdout: await out.text, stderr: await err.text }
}

const identityEnv = { name: 'STACKIT_SERVICE_ACCOUNT_EMAIL', value: 'app-1a2b3c@sa.stackit.cloud' }
/** A bare Pod of the fixture's identity-bearing ServiceAccount with `n` containers. */
const bigPod = (n: number, env: { name: string; value: string }[] = []) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'big', namespace: 'team-a' },
  spec: {
    serviceAccountName: 'app-sa',
    containers: Array.from({ length: n }, (_, i) => ({ name: `c${i}`, image: 'registry.example/app:1', env })),
  },
})
type Pod = ReturnType<typeof bigPod>
const emailOf = (c: Pod['spec']['containers'][number]): string | undefined =>
  c.env.find(e => e.name === identityEnv.name)?.value

t.test('mutate: everything reaches a reader that starts late, with the right exit code', async t => {
  const longNamespace = 'n'.repeat(2 * pipeCapacity)
  const presetEnv = [{ name: identityEnv.name, value: 'mine' }]
  const alreadySet = `${identityEnv.name} already set, keeping the container's value`
  const notFound = 'not found; create it before the Pod, or fix spec.serviceAccountName'
  // The denial names the Pod's namespace, so a long one makes a long denial.
  const deniedPod = { ...bigPod(1), metadata: { namespace: longNamespace } }
  type Row = [name: string, input: unknown, code: number, check: (t: Test, stdout: string, stderr: string) => void]
  const rows: Row[] = [
    [
      '2,000 containers → the whole mutated Pod on stdout',
      bigPod(2000),
      0,
      (t, stdout, stderr) => {
        t.ok(stdout.length > pipeCapacity, `the output (${stdout.length} bytes) is more than a pipe holds`)
        const pod = JSON.parse(stdout) as Pod
        t.equal(pod.spec.containers.length, 2000, 'every container is there')
        t.ok(
          pod.spec.containers.every(c => emailOf(c) === identityEnv.value),
          'every container got its identity',
        )
        t.equal(stderr, '')
      },
    ],
    [
      '2,000 warnings → every one on stderr, the Pod on stdout',
      bigPod(2000, presetEnv),
      0,
      (t, stdout, stderr) => {
        const lines = stderr.split('\n')
        t.ok(stderr.length > pipeCapacity, `the warnings (${stderr.length} bytes) are more than a pipe holds`)
        t.equal(lines.pop(), '', 'stderr ends with a complete line')
        t.equal(lines.length, 2000, 'one warning per container')
        const warned = (l: string, i: number): boolean => l.startsWith(`warning: container c${i}: ${alreadySet}`)
        t.ok(lines.every(warned), 'in order, none cut')
        const pod = JSON.parse(stdout) as Pod
        t.ok(
          pod.spec.containers.every(c => emailOf(c) === 'mine'),
          'the containers keep their value',
        )
      },
    ],
    [
      'a denial longer than a pipe holds → all of it on stderr',
      deniedPod,
      1,
      (t, stdout, stderr) => {
        t.equal(stdout, '')
        t.ok(stderr.length > pipeCapacity, `the denial (${stderr.length} bytes) is more than a pipe holds`)
        // not t.equal: a failure would print both 256 KiB strings
        t.ok(stderr === `denied: ServiceAccount ${longNamespace}/app-sa ${notFound}\n`, 'the whole line, not cut')
      },
    ],
  ]
  // The runs wait for their readers side by side: each is its own process with its own pipes.
  const runs = await Promise.all(
    rows.map(async row => ({
      row,
      r: await runWithLateReader(['mutate', '--service-account', saFile], JSON.stringify(row[1])),
    })),
  )
  for (const {
    row: [name, , code, check],
    r,
  } of runs) {
    t.equal(r.code, code, `${name}: exit code`)
    t.test(name, async t => check(t, r.stdout, r.stderr))
  }
})

t.test('mutate: a reader that goes away ends the output, not the process with a crash', async t => {
  const child = spawn(process.execPath, [binPath, 'mutate', '--service-account', saFile])
  child.stdout.destroy() // closed before the child writes: its writes fail with EPIPE
  const err = lateReader(child.stderr)
  err.start()
  child.stdin.end(JSON.stringify(bigPod(2000)))
  const code = await new Promise<number | null>(resolve => child.on('close', c => resolve(c)))
  t.equal(await err.text, '', 'no stack trace')
  t.equal(code, 0, 'the exit code still tells the decision')
})

/** Enough reviews that their log lines overfill the stderr pipe while it is not read. */
const reviews = 1000

/** A `serve` process whose log is no longer read, and the reader to start later. */
interface UnreadServe {
  child: ChildProcessWithoutNullStreams
  log: ReturnType<typeof lateReader>
}

/** Starts serve, reads its log up to "listening", then stops reading it; answers `reviews` reviews. */
const busyServeWithUnreadLog = async (t: Test): Promise<UnreadServe> => {
  const dir = t.testdir({})
  const ca = await makeCa(dir)
  const cert = await makeServerCert(dir, ca)
  const ports = ['--port', '0', '--health-port', '0', '--metrics-port', '0']
  const tls = ['--tls-cert-file', cert.certFile, '--tls-key-file', cert.keyFile]
  const args = ['serve', '--bind-address', '127.0.0.1', ...ports, ...tls, '--service-account', saFile]
  const child = spawn(process.execPath, [binPath, ...args])
  t.teardown(() => void child.kill('SIGKILL')) // a failed assertion must not leave a server behind; no-op once exited
  const log = lateReader(child.stderr)
  child.stderr.resume()
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = ''
    const onData = (d: string): void => {
      buffered += d
      const line = buffered.split('\n').find(l => l.includes('"msg":"listening"'))
      if (line === undefined) return
      child.stderr.off('data', onData)
      child.stderr.pause()
      resolve((JSON.parse(line) as { admissionPort: number }).admissionPort)
    }
    child.stderr.on('data', onData)
    child.on('exit', code => reject(new Error(`serve exited with ${String(code)} before listening: ${buffered}`)))
  })
  const agent = new https.Agent({ keepAlive: true, maxSockets: 8 })
  const caPem = readFileSync(ca.certFile)
  let sent = 0
  let answered = 0
  const worker = async (): Promise<void> => {
    while (sent++ < reviews) {
      if ((await request({ port, ca: caPem, body: review, agent })).status === 200) answered++
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  agent.destroy()
  t.equal(answered, reviews, 'every review answered while the log is not read')
  return { child, log }
}

t.test('serve: the log lines written at shutdown reach a reader that starts late', async t => {
  const { child, log } = await busyServeWithUnreadLog(t)
  const closed = new Promise<number | null>(resolve => child.on('close', code => resolve(code)))
  child.kill('SIGTERM')
  await sleep(readerDelayMs)
  log.start()
  const text = await log.text
  t.equal(await closed, 0)
  t.ok(text.length > pipeCapacity, `the log (${text.length} bytes) is more than a pipe holds`)
  const lines = text.split('\n')
  t.equal(lines.pop(), '', 'the log ends with a complete line')
  t.equal(lines.filter(l => l.includes('"msg":"review"')).length, reviews, 'one line per review')
  t.match(lines.at(-1), /"msg":"shut down cleanly"/, 'the last line is there')
})

t.test('serve: a log pipe nobody reads does not keep a terminating webhook alive', async t => {
  const { child, log } = await busyServeWithUnreadLog(t)
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'exits with the drain result while its log is still unread')
  log.start()
  await log.text
})
