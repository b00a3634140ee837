#!/usr/bin/env node
/**
 * `npm start`: the webhook on 127.0.0.1 with a throw-away self-signed certificate and the example
 * ServiceAccounts from test/fixtures, plus a copy-pasteable curl that shows the patch it answers with.
 * A development aid: not part of the published package.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLogger } from '../lib/log.js'
import { parseServeArgs } from '../lib/cli/serve-config.js'
import { startWebhook } from '../lib/server/webhook.js'

const repo = fileURLToPath(new URL('../../', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'stackit-pod-identity-webhook-demo-'))
const cleanup = (): void => rmSync(dir, { recursive: true, force: true })
try {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      join(dir, 'tls.key'),
      '-out',
      join(dir, 'tls.crt'),
    ],
    { stdio: 'ignore' },
  )
  /* c8 ignore start -- only on a machine without openssl, where the test suite's own certificates fail too */
} catch {
  cleanup()
  process.stderr.write(
    'npm start needs the openssl command to make a throw-away certificate; install openssl and retry\n',
  )
  process.exit(1)
}
/* c8 ignore stop */
const fixture = join(repo, 'test', 'fixtures')
const loopback = ['--bind-address=127.0.0.1', '--port=0', '--health-port=0', '--metrics-port=0']
const saFile = join(fixture, 'serviceaccounts.json')
const { config } = parseServeArgs([...loopback, `--cert-dir=${dir}`, `--service-account=${saFile}`])
const logger = createLogger({ level: 'info', write: line => void process.stderr.write(line) })
const webhook = await startWebhook(config, process.env, logger)
const decode =
  `node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s).response;` +
  'console.log(JSON.stringify({allowed:r.allowed,warnings:r.warnings,' +
  `patch:r.patch&&JSON.parse(Buffer.from(r.patch,"base64"))},null,2))})'`
process.stdout.write(`
The webhook is running (offline, with the ServiceAccounts in test/fixtures/serviceaccounts.json).
Post the example AdmissionReview (a Deployment's Pod in team-a, ServiceAccount app-sa) and see the patch:

  curl -s --cacert ${join(dir, 'tls.crt')} -H 'Content-Type: application/json' \\
    --data-binary @${join(fixture, 'admission-review-deployment-pod.json')} \\
    https://localhost:${webhook.ports.admission}/mutate | ${decode}

Readiness: curl -s http://127.0.0.1:${webhook.ports.health}/readyz
Metrics:   curl -s http://127.0.0.1:${webhook.ports.metrics}/metrics
Stop with Ctrl-C.
`)
const stop = (): void => {
  // A second signal gets Node's default handling: exit at once.
  process.off('SIGINT', stop)
  process.off('SIGTERM', stop)
  void webhook.shutdown().then(() => {
    cleanup()
    process.exit(0)
  })
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
