// The container image without a container engine: the Dockerfile is parsed, every file it copies is checked to
// exist after a build, and the runtime tree it assembles (production install + compiled code + package.json) is
// rebuilt in a temp folder outside the repository and started from there: it must answer the probe paths the
// Deployment uses and an admission review on the webhook configuration's path.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { basename, join, relative } from 'node:path'
import { imageNodeFlags } from './helpers/image-entrypoint.js'
import { makeCa, makeServerCert } from './helpers/certs.js'
import { arr, at, loadManifests, repoRoot, str, theOne } from './helpers/manifests.js'

/** One Dockerfile instruction, continuation lines joined, comments dropped. */
interface Instruction {
  readonly op: string
  readonly args: string
}

/** Parses a Dockerfile into instructions (enough for this project's: no heredocs, no escape directive). */
const parseDockerfile = (text: string): Instruction[] => {
  const out: Instruction[] = []
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('#')) continue // comment lines may sit inside a continued RUN as well
    pending += line.endsWith('\\') ? `${line.slice(0, -1)} ` : line
    if (line.endsWith('\\')) continue
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(pending.trim())
    if (m) out.push({ op: (m[1] as string).toUpperCase(), args: (m[2] as string).trim() })
    pending = ''
  }
  return out
}

/** The stages: name (or index) → the instructions after its FROM. */
const stagesOf = (
  instructions: readonly Instruction[],
): Array<{ name: string; image: string; body: Instruction[] }> => {
  const stages: Array<{ name: string; image: string; body: Instruction[] }> = []
  for (const i of instructions) {
    if (i.op === 'FROM') {
      const [image = '', , name] = i.args.split(/\s+/)
      stages.push({ name: name ?? String(stages.length), image, body: [] })
    } else stages.at(-1)?.body.push(i)
  }
  return stages
}

/** A COPY: the stage it copies from (undefined: the build context), its sources and its destination. */
const copyOf = (i: Instruction): { from: string | undefined; sources: string[]; dest: string } => {
  const words = i.args.split(/\s+/)
  const from = words.find(w => w.startsWith('--from='))?.slice('--from='.length)
  const paths = words.filter(w => !w.startsWith('--'))
  return { from, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' }
}

const dockerfile = await readFile(join(repoRoot, 'Dockerfile'), 'utf8')
const stages = stagesOf(parseDockerfile(dockerfile))
const final = stages.at(-1)
const manifests = await loadManifests()

// What the image holds, as [stage, path in that stage, path under WORKDIR]; the test rebuilds exactly this.
type RuntimeCopy = [stage: string, source: string, dest: string]
const runtimeTree: RuntimeCopy[] = [
  ['production-dependencies', '/src/node_modules', './node_modules'],
  ['build', '/src/package.json', './package.json'],
  ['build', '/src/dist/lib', './dist/lib'],
  ['build', '/src/dist/bin', './dist/bin'],
]

t.test('Dockerfile: build on full Node 20, run on distroless Node 20 nonroot as 65532', async t => {
  t.same(
    stages.map(s => [s.name, s.image]),
    [
      ['build', 'node:20-bookworm'],
      ['production-dependencies', 'node:20-bookworm'],
      ['2', 'gcr.io/distroless/nodejs20-debian12:nonroot'],
    ],
  )
  const runs = (stage: string): string =>
    stages
      .find(s => s.name === stage)
      ?.body.filter(i => i.op === 'RUN')
      .map(i => i.args)
      .join('\n') ?? ''
  t.match(runs('build'), /npm ci\b/, 'build: npm ci')
  t.match(runs('build'), /npm run build/, 'build: npm run build')
  t.match(
    runs('production-dependencies'),
    /npm ci --omit=dev --ignore-scripts/,
    'a clean production install, no install scripts',
  )
  const body = final?.body ?? []
  t.same(
    body.filter(i => i.op === 'USER').map(i => i.args),
    ['65532'],
    'USER 65532',
  )
  t.same(
    body.filter(i => i.op === 'WORKDIR').map(i => i.args),
    ['/app'],
  )
  t.same(
    body.filter(i => i.op === 'CMD').map(i => JSON.parse(i.args)),
    [['serve']],
    'default command serve',
  )
  const entrypoint: unknown = JSON.parse(body.find(i => i.op === 'ENTRYPOINT')?.args ?? 'null')
  const pkg: unknown = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8'))
  t.same(
    entrypoint,
    ['/nodejs/bin/node', ...imageNodeFlags(), `/app/${String(at(pkg, 'bin', 'stackit-pod-identity-webhook'))}`],
    "entrypoint runs package.json's bin",
  )
  t.ok(
    imageNodeFlags().every(f => /^--[a-z-]+=\S+$/.test(f)),
    'only node flags between node and the script',
  )
  const runAsUser = at(theOne(manifests, 'Deployment'), 'spec', 'template', 'spec', 'securityContext', 'runAsUser')
  t.equal(String(runAsUser), '65532', 'the Deployment runs as the image user')
  t.same(
    body.filter(i => i.op === 'RUN'),
    [],
    'the runtime stage runs nothing (it has no shell)',
  )
})

t.test('Dockerfile: the runtime stage copies exactly the runtime tree', async t => {
  const copies = (final?.body ?? []).filter(i => i.op === 'COPY').map(copyOf)
  t.same(
    copies.map(c => [c.from, ...c.sources, c.dest]),
    runtimeTree,
  )
})

t.test('Dockerfile: every COPY source exists after a build, and the build context lets it through', async t => {
  const dockerignore = (await readFile(join(repoRoot, '.dockerignore'), 'utf8')).split('\n').map(l => l.trim())
  t.equal(
    dockerignore.find(l => l !== '' && !l.startsWith('#')),
    '*',
    '.dockerignore is an allow-list',
  )
  for (const stage of stages) {
    for (const copy of stage.body.filter(i => i.op === 'COPY').map(copyOf)) {
      for (const source of copy.sources) {
        // Stages work in /src on a copy of the repository; node_modules there is a fresh npm ci.
        const inRepo = copy.from === undefined ? source : relative('/src', source)
        t.ok(
          existsSync(join(repoRoot, inRepo)),
          `${stage.name}: COPY ${copy.from ? `--from=${copy.from} ` : ''}${source} exists (${inRepo})`,
        )
        if (copy.from === undefined)
          t.ok(
            dockerignore.includes(`!${inRepo}`) || dockerignore.includes(`!${inRepo}/`),
            `${inRepo} is allowed by .dockerignore`,
          )
      }
    }
  }
})

/** Runs a command; rejects with its output on a non-zero exit. */
const run = (cmd: string, args: readonly string[], cwd: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d))
    child.stderr.on('data', (d: Buffer) => (out += d))
    child.on('error', reject)
    child.on('close', code =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out}`)),
    )
  })

/** GET or POST over http(s); resolves with status and body. */
const request = (
  url: string,
  options: https.RequestOptions,
  body?: string,
): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).request(url, options, res => {
      let text = ''
      res.on('data', (d: Buffer) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })

/** Waits for the server's `listening` log line and returns its ports. */
const listening = (child: ChildProcess): Promise<{ admissionPort: number; healthPort: number; metricsPort: number }> =>
  new Promise((resolve, reject) => {
    let log = ''
    child.stderr?.on('data', (d: Buffer) => {
      log += d
      for (const line of log.split('\n')) {
        if (!line.includes('"msg":"listening"')) continue
        const entry: unknown = JSON.parse(line)
        resolve({
          admissionPort: Number(at(entry, 'admissionPort')),
          healthPort: Number(at(entry, 'healthPort')),
          metricsPort: Number(at(entry, 'metricsPort')),
        })
      }
    })
    child.on('exit', code => reject(new Error(`server exited ${code} before listening: ${log}`)))
  })

t.test('the runtime tree, rebuilt outside the repository, serves probes and a review', async t => {
  const root = await mkdtemp(join(tmpdir(), 'webhook-image-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  t.ok(
    relative(repoRoot, root).startsWith('..'),
    "outside the repository: the repository's node_modules cannot leak in",
  )
  const app = join(root, 'app')
  const deps = join(root, 'production-dependencies')
  await mkdir(app)
  await mkdir(deps)

  // The production-dependencies stage: package.json + lock, then the same npm ci as the Dockerfile.
  for (const f of ['package.json', 'package-lock.json']) await cp(join(repoRoot, f), join(deps, f))
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], deps)
  // The build stage's result is the repository after `npm run build`, minus what its RUN removes.
  const stageRoot = { build: repoRoot, 'production-dependencies': deps }
  const dropped = (file: string): boolean => /^demo\./.test(basename(file)) || file.endsWith('.map')
  t.match(dockerfile, /rm -f dist\/bin\/demo\.\*/, 'the Dockerfile drops the demo entry point')
  t.match(dockerfile, /find dist -name '\*\.map' -delete/, 'and the source maps')
  for (const [stage, source, dest] of runtimeTree) {
    const from = join(stageRoot[stage as keyof typeof stageRoot], relative('/src', source))
    await cp(from, join(app, dest), { recursive: true, filter: f => !(stage === 'build' && dropped(f)) })
  }

  t.same((await readdir(app)).sort(), ['dist', 'node_modules', 'package.json'], 'only dist, node_modules, package.json')
  t.same((await readdir(join(app, 'dist'))).sort(), ['bin', 'lib'], 'dist without tests')
  t.same(
    (await readdir(join(app, 'node_modules'))).filter(n => !n.startsWith('.')),
    ['fast-json-patch'],
    'one production package',
  )
  const files = await readdir(join(app, 'dist'), { recursive: true })
  t.same(
    files.filter(f => dropped(f)),
    [],
    'no demo, no source maps',
  )
  t.ok(files.includes(join('bin', 'stackit-pod-identity-webhook.js')), 'the webhook binary')
  t.ok(
    files.includes(join('bin', 'stackit-workload-identity-example-app.js')),
    "the example app's binary (the example Job runs it)",
  )

  const certs = join(root, 'certs')
  await mkdir(certs)
  const ca = await makeCa(certs)
  await makeServerCert(certs, ca, { name: 'tls' })
  const deployment = theOne(manifests, 'Deployment')
  const container = at(deployment, 'spec', 'template', 'spec', 'containers', 0)
  const webhookPath =
    str(theOne(manifests, 'MutatingWebhookConfiguration'), 'webhooks', 0, 'clientConfig', 'service', 'path') ?? ''

  // As the image runs it: WORKDIR /app, entrypoint + `serve`, nothing from this test process's environment.
  const child = spawn(
    process.execPath,
    [
      ...imageNodeFlags(),
      join(app, 'dist/bin/stackit-pod-identity-webhook.js'),
      'serve',
      '--port=0',
      '--health-port=0',
      '--metrics-port=0',
      '--bind-address=127.0.0.1',
      `--cert-dir=${certs}`,
      `--service-account=${join(repoRoot, 'test/fixtures/serviceaccounts.json')}`,
    ],
    { cwd: app, env: { PATH: process.env['PATH'] ?? '' }, stdio: ['ignore', 'ignore', 'pipe'] },
  )
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  t.teardown(() => void child.kill('SIGKILL'))
  const ports = await listening(child)

  type Probe = [probe: string, path: string]
  const probes: Probe[] = ['livenessProbe', 'readinessProbe'].map(p => [p, str(container, p, 'httpGet', 'path') ?? ''])
  t.equal(str(container, 'livenessProbe', 'httpGet', 'port'), 'health')
  for (const [probe, path] of probes) {
    const res = await request(`http://127.0.0.1:${ports.healthPort}${path}`, {})
    t.equal(res.status, 200, `${probe} ${path} answers 200 on the health port`)
  }
  t.equal((await request(`http://127.0.0.1:${ports.metricsPort}/metrics`, {})).status, 200, 'metrics answer')

  const review = await readFile(join(repoRoot, 'test/fixtures/admission-review-deployment-pod.json'), 'utf8')
  const res = await request(
    `https://127.0.0.1:${ports.admissionPort}${webhookPath}`,
    {
      method: 'POST',
      ca: await readFile(ca.certFile),
      headers: { 'content-type': 'application/json' },
    },
    review,
  )
  t.equal(res.status, 200, `POST ${webhookPath} answers`)
  const answer: unknown = JSON.parse(res.body)
  t.equal(at(answer, 'response', 'uid'), at(JSON.parse(review), 'request', 'uid'), 'the review uid is echoed')
  t.equal(at(answer, 'response', 'allowed'), true, 'allowed')
  const patch: unknown = JSON.parse(Buffer.from(String(at(answer, 'response', 'patch')), 'base64').toString('utf8'))
  t.ok(
    arr(patch).some(op => str(op, 'path') === '/spec/volumes/1'),
    'with the token volume in its patch (fast-json-patch loaded from the tree)',
  )

  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM drains and exits 0')
})
