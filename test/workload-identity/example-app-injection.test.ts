/**
 * Ties both halves together: the webhook's `mutate` injects the identity into the example Job's Pod, and the
 * example app, started with exactly the injected environment, authenticates with the token found at the
 * injected path. If the webhook and the client ever disagree on a variable name, a default, or where the token
 * lives, this test fails.
 */
import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import YAML from 'yaml'
import { isObject, isString, own, type JsonObject } from '../../lib/json.js'
import { defaults, keys, volumeName } from '../../lib/names.js'
import { unverifiedClaims } from '../../lib/workload-identity/jwt-claims.js'
import { defaultVersions, fakeJwt, startFakeStackit } from '../helpers/fake-stackit.js'
import { makeCa, makeServerCert } from '../helpers/certs.js'
import { distBin, repoRoot } from '../helpers/paths.js'

const run = promisify(execFile)
const root = repoRoot
const webhookBin = distBin('stackit-pod-identity-webhook')
const exampleBin = distBin('stackit-workload-identity-example-app')
const manifest = join(root, 'manifests/examples/stackit-workload-identity-example-app.yaml')

/** Walks a path of object keys and array indexes, failing the test with the path when the shape is wrong. */
const at = (v: unknown, ...path: (string | number)[]): unknown => {
  let cur = v
  for (const p of path) {
    cur = typeof p === 'number' ? (Array.isArray(cur) ? cur[p] : undefined) : isObject(cur) ? own(cur, p) : undefined
  }
  return cur
}
const objectAt = (v: unknown, ...path: (string | number)[]): JsonObject => {
  const o = at(v, ...path)
  if (!isObject(o)) throw new Error(`expected an object at ${path.join('.')}`)
  return o
}
const arrayAt = (v: unknown, ...path: (string | number)[]): unknown[] => {
  const a = at(v, ...path)
  if (!Array.isArray(a)) throw new Error(`expected an array at ${path.join('.')}`)
  return a
}

/** Runs the webhook CLI's `mutate` with `input` on stdin. */
const mutate = (
  args: readonly string[],
  input: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [webhookBin, 'mutate', ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => void (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => void (stderr += c.toString()))
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr }))
    child.stdin.end(input)
  })

t.test('mutate the example Job, then run the example app with exactly the injected env', async t => {
  const tmp = t.testdir({})
  // The token lives inside a temporary root, at the path the kubelet would use below it.
  const tokenFile = join(tmp, 'root', defaults.mountPath, defaults.tokenPath)
  const ca = await makeCa(tmp)
  const fake = await startFakeStackit(await makeServerCert(tmp, ca))
  t.teardown(() => fake.close())

  const docs = YAML.parseAllDocuments(await readFile(manifest, 'utf8')).map(d => d.toJS() as unknown)
  const serviceAccount = docs.find(d => at(d, 'kind') === 'ServiceAccount')
  const job = docs.find(d => at(d, 'kind') === 'Job')
  const saName = at(serviceAccount, 'metadata', 'name')
  const email = at(serviceAccount, 'metadata', 'annotations', keys.email)
  if (!isString(saName) || !isString(email))
    throw new Error('the manifest ServiceAccount needs a name and the e-mail annotation')
  t.equal(at(job, 'spec', 'template', 'spec', 'serviceAccountName'), saName, 'the Job uses the example ServiceAccount')

  // The manifest's command runs the same file package.json publishes as the example app's bin.
  const pkg: unknown = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'))
  const binPath = at(pkg, 'bin', 'stackit-workload-identity-example-app')
  const command = arrayAt(job, 'spec', 'template', 'spec', 'containers', 0, 'command')
  t.ok(
    isString(binPath) && isString(command[1]) && command[1].endsWith(`/${binPath}`),
    'the container command runs the published bin',
  )

  // Point the token file into the temporary root and the token endpoint at the fake, by the two annotations.
  const sa = structuredClone(objectAt(serviceAccount))
  Object.assign(objectAt(sa, 'metadata', 'annotations'), {
    [keys.federatedTokenFile]: tokenFile,
    [keys.idpTokenEndpoint]: fake.tokenUrl,
  })
  const saFile = join(tmp, 'serviceaccount.json')
  await writeFile(saFile, JSON.stringify(sa))
  const template = objectAt(job, 'spec', 'template')
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...objectAt(template, 'metadata'), generateName: 'example-' },
    spec: objectAt(template, 'spec'),
  }

  const result = await mutate(['--service-account', saFile, '--namespace', 'default'], JSON.stringify(pod))
  t.equal(result.code, 0, `mutate allowed the Pod${result.stderr === '' ? '' : `: ${result.stderr}`}`)
  const mutated: unknown = JSON.parse(result.stdout)

  // What the webhook injected into the container.
  const container = objectAt(mutated, 'spec', 'containers', 0)
  const env: Record<string, string> = {}
  for (const e of arrayAt(container, 'env')) {
    const name = at(e, 'name')
    const value = at(e, 'value')
    if (!isString(name) || !isString(value)) throw new Error('every env entry must be a plain name/value pair')
    env[name] = value
  }
  t.match(env, {
    STACKIT_SERVICE_ACCOUNT_EMAIL: email,
    STACKIT_FEDERATED_TOKEN_FILE: tokenFile,
    STACKIT_IDP_TOKEN_ENDPOINT: fake.tokenUrl,
    STACKIT_REGION: 'eu01',
  })
  const mount = arrayAt(container, 'volumeMounts').find(m => at(m, 'name') === volumeName)
  const volume = arrayAt(mutated, 'spec', 'volumes').find(v => at(v, 'name') === volumeName)
  const projected = at(volume, 'projected', 'sources', 0, 'serviceAccountToken')
  const audience = at(projected, 'audience')
  t.equal(
    `${String(at(mount, 'mountPath'))}/${String(at(projected, 'path'))}`,
    env['STACKIT_FEDERATED_TOKEN_FILE'],
    'the mounted token is where the env says',
  )

  // The kubelet's part: write the projected token, for the Pod's ServiceAccount and the volume's audience.
  const kubeletSubject = `system:serviceaccount:default:${String(at(mutated, 'spec', 'serviceAccountName'))}`
  const assertion = fakeJwt({
    iss: 'https://cluster.example',
    aud: [audience],
    sub: kubeletSubject,
    exp: Math.floor(Date.now() / 1000) + 600,
  })
  await mkdir(dirname(tokenFile), { recursive: true })
  await writeFile(tokenFile, assertion)

  // The federation's part, configured as the README tells users (the `sub` value documented there):
  // accept only the expected audience and subject.
  const subject = 'system:serviceaccount:default:stackit-workload-identity-example-app'
  fake.tokenReply = (_n, req) => {
    const claims = unverifiedClaims(req.form.get('client_assertion') ?? '')
    const aud = claims === undefined ? undefined : own(claims, 'aud')
    const ok =
      req.form.get('client_id') === email &&
      Array.isArray(aud) &&
      aud.includes(defaults.audience) &&
      claims !== undefined &&
      own(claims, 'sub') === subject
    return ok ? undefined : { status: 401, body: '{"error":"invalid_client"}' }
  }

  // Exactly the injected env, plus what only the test needs: trust in the test CA and the fake SKE endpoint.
  const app = await run(process.execPath, [exampleBin], {
    env: { ...env, NODE_EXTRA_CA_CERTS: ca.certFile, STACKIT_SKE_ENDPOINT: fake.base },
  }).then(
    r => ({ code: 0, stdout: r.stdout }),
    (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
  )
  const lines = app.stdout
    .trim()
    .split('\n')
    .map(l => JSON.parse(l) as unknown)
  t.equal(app.code, 0, `example app succeeded: ${app.stdout}`)
  t.match(lines.at(-1), {
    level: 'info',
    msg: 'authenticated; SKE provider options received',
    kubernetesVersions: defaultVersions.join(','),
  })
  t.equal(fake.tokenRequests.length, 1, 'one token exchange')
  t.equal(
    fake.tokenRequests[0]?.form.get('client_assertion'),
    assertion,
    'the assertion was the token at the injected path',
  )
  t.equal(fake.skeRequests[0]?.authorization, `Bearer ${fake.issued[0] ?? ''}`, 'SKE saw the exchanged access token')
  t.equal(audience, defaults.audience, 'the projected token carries the STACKIT audience')
})
