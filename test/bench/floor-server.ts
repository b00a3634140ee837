/**
 * The floors the webhook's HTTPS figures are judged by: a bare `node:https` server in its own process, with the
 * webhook's certificate, TLS minimum and keep-alive, that reads the whole body and answers a constant JSON body
 * of the webhook's response size. `transport` does nothing else; `parse` also JSON.parses the body, which no
 * webhook can skip.
 *
 * A plain-HTTP port answers 200 on any path at once: spawning this process and waiting for that answer is the
 * floor of the webhook's cold start (spawn → /readyz 200).
 *
 * Usage: node floor-server.js transport|parse CERT KEY RESPONSE_BYTES → one JSON "listening" line on stderr.
 */
import http from 'node:http'
import https from 'node:https'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'

const [mode, certFile, keyFile, bytesText] = process.argv.slice(2)
if ((mode !== 'transport' && mode !== 'parse') || !certFile || !keyFile || !bytesText) {
  process.stderr.write('usage: floor-server.js transport|parse CERT KEY RESPONSE_BYTES\n')
  process.exit(2)
}
const answer = Buffer.from(JSON.stringify({ pad: 'x'.repeat(Math.max(0, Number(bytesText) - 10)) }))
const parse = mode === 'parse'
let parsed = 0

const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.3' }, (req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    // Counting keys keeps the parse from being optimised away.
    if (parse) parsed += Object.keys(JSON.parse(Buffer.concat(chunks).toString('utf8')) as object).length
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': answer.length })
    res.end(answer)
  })
})
// Same idle timeout as the webhook, so neither side closes connections during a run.
server.keepAliveTimeout = 120_000
const health = http.createServer((_req, res) => void res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n'))
const listen = (s: http.Server): Promise<number> =>
  new Promise(resolve => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)))
const [admissionPort, healthPort] = await Promise.all([listen(server), listen(health)])
process.stderr.write(JSON.stringify({ msg: 'listening', admissionPort, healthPort, metricsPort: healthPort, mode }) + '\n')
process.on('SIGTERM', () => {
  for (const s of [server, health]) s.closeAllConnections()
  process.exit(parsed >= 0 ? 0 : 1)
})
