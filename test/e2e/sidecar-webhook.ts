/**
 * A second mutating webhook for the reinvocation case, served from the test process: it appends a `sidecar`
 * container to every Pod it sees (once; it is idempotent itself). Registered so that the API server calls it after
 * ours, it forces the situation `reinvocationPolicy: IfNeeded` exists for: a container our webhook never saw.
 */
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'
import { isObject, own } from '../../lib/json.js'

/** The name of the container this webhook adds. */
export const sidecarName = 'sidecar'

/** A running sidecar webhook. */
export interface SidecarWebhook {
  readonly port: number
  /** How many reviews it answered (proves it was really in the chain). */
  readonly calls: () => number
  close(): Promise<void>
}

const review = (uid: unknown, patch: unknown[] | undefined): string =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid,
      allowed: true,
      ...(patch ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}),
    },
  })

/** Starts the sidecar webhook on 127.0.0.1 with the given serving certificate. */
export const startSidecarWebhook = async (certFile: string, keyFile: string): Promise<SidecarWebhook> => {
  let calls = 0
  const server = https.createServer({ cert: await readFile(certFile), key: await readFile(keyFile) }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      calls++
      let body: unknown
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        res.writeHead(400).end()
        return
      }
      const request = isObject(body) ? own(body, 'request') : undefined
      const object = isObject(request) ? own(request, 'object') : undefined
      const spec = isObject(object) ? own(object, 'spec') : undefined
      const containers = isObject(spec) ? own(spec, 'containers') : undefined
      const uid = isObject(request) ? own(request, 'uid') : undefined
      const present = Array.isArray(containers) && containers.some(c => isObject(c) && own(c, 'name') === sidecarName)
      const patch = present
        ? undefined
        : [{ op: 'add', path: '/spec/containers/-', value: { name: sidecarName, image: 'registry.invalid/sidecar:1' } }]
      res.writeHead(200, { 'content-type': 'application/json' }).end(review(uid, patch))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    calls: () => calls,
    close: () =>
      new Promise(resolve => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
