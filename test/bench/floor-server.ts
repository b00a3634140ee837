/**
 * The floors the webhook's HTTPS figures are judged by: a bare `node:https` server in its own process, with the
 * webhook's certificate, TLS minimum and keep-alive, that reads the whole body and answers a constant JSON body
 * of the webhook's response size. `transport` does nothing else; `parse` also JSON.parses the body, which no
 * webhook can skip. `compare` is the ceiling of the project's fixed design rather than a floor: it parses, mutates
 * the Pod and diffs it with `jsonpatch.compare`, the least a review costs when the patch comes from
 * fast-json-patch, and still answers the constant body (no identity lookup, response building or logging).
 *
 * A plain-HTTP port answers 200 on any path at once: spawning this process and waiting for that answer is the
 * floor of the webhook's cold start (spawn → /readyz 200).
 *
 * Usage: node floor-server.js transport|parse|compare CERT KEY RESPONSE_BYTES → one JSON "listening" line on stderr.
 */
import http from 'node:http'
import https from 'node:https'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import jsonpatch from 'fast-json-patch'
import { resolveIdentity } from '../../lib/admission/identity-config.js'
import { mutatePod } from '../../lib/admission/mutate-pod.js'
import type { JsonObject } from '../../lib/json.js'
import { typicalServiceAccount } from './workloads.js'

const identity = resolveIdentity(typicalServiceAccount, new Map())
if (identity.kind !== 'inject') throw new Error('the typical ServiceAccount must inject')
const noSkip: ReadonlySet<string> = new Set()

const text = (chunks: Buffer[]): string => Buffer.concat(chunks).toString('utf8')

/** What each mode does with the body; the returned count keeps the work from being optimised away. */
const modes: Readonly<Record<string, (chunks: Buffer[]) => number>> = {
  transport: chunks => chunks.length,
  parse: chunks => Object.keys(JSON.parse(text(chunks)) as object).length,
  compare: chunks => {
    const pod = (JSON.parse(text(chunks)) as { request: { object: JsonObject } }).request.object
    return jsonpatch.compare(pod, mutatePod(pod, identity.config, noSkip).pod).length
  },
}

const [mode, certFile, keyFile, bytesText] = process.argv.slice(2)
const work = modes[mode ?? '']
if (!work || !certFile || !keyFile || !bytesText) {
  process.stderr.write('usage: floor-server.js transport|parse|compare CERT KEY RESPONSE_BYTES\n')
  process.exit(2)
}
const answer = Buffer.from(JSON.stringify({ pad: 'x'.repeat(Math.max(0, Number(bytesText) - 10)) }))
let done = 0

const server = https.createServer(
  { cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.3' },
  (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      done += work(chunks)
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': answer.length })
      res.end(answer)
    })
  },
)
// Same idle timeout as the webhook, so neither side closes connections during a run.
server.keepAliveTimeout = 120_000
const health = http.createServer((_req, res) => void res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n'))
const listen = (s: http.Server): Promise<number> =>
  new Promise(resolve => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)))
const [admissionPort, healthPort] = await Promise.all([listen(server), listen(health)])
process.stderr.write(
  `${JSON.stringify({ msg: 'listening', admissionPort, healthPort, metricsPort: healthPort, mode })}\n`,
)
process.on('SIGTERM', () => {
  for (const s of [server, health]) s.closeAllConnections()
  process.exit(done >= 0 ? 0 : 1)
})
