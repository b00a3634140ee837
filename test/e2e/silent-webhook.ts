/**
 * A webhook that accepts a review and never answers, served from the test process: it stands for a hung replica,
 * so a test sees what the API server does at the configuration's `timeoutSeconds` (and its `failurePolicy`).
 */
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'

/** One review the silent webhook received. */
export interface HeldCall {
  /** The request target as the API server sent it (path and query: it carries `?timeout=…`). */
  readonly url: string
  /** Resolves once the API server has given up and closed the connection. */
  readonly abandoned: Promise<void>
}

/** A running silent webhook. */
export interface SilentWebhook {
  readonly port: number
  /** Every review received so far, oldest first. */
  readonly calls: () => readonly HeldCall[]
  close(): Promise<void>
}

/** Starts the silent webhook on 127.0.0.1 with the given serving certificate. */
export const startSilentWebhook = async (certFile: string, keyFile: string): Promise<SilentWebhook> => {
  const calls: HeldCall[] = []
  const server = https.createServer({ cert: await readFile(certFile), key: await readFile(keyFile) }, req => {
    // Read the body so the API server's write completes, then hold the response until the peer gives up.
    req.resume()
    calls.push({ url: req.url ?? '', abandoned: new Promise(resolve => req.socket.once('close', () => resolve())) })
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
