/**
 * A loopback fake of the two STACKIT endpoints the example app talks to, on one server (plain HTTP, or HTTPS
 * with a given certificate):
 * - `POST /oauth/v2/token`: records the form and, by default, issues an unsigned JWT access token valid for an hour;
 * - `GET /v2/regions/{region}/provider-options`: answers 200 with Kubernetes versions when the Bearer token is one
 *   it issued, 401 otherwise.
 * Tests replace either answer with `tokenReply` / `skeReply` to inject failures, delays or odd bodies.
 * With `options.federation`, the token endpoint verifies as STACKIT does (federation.ts): it answers an access
 * token only for an assertion the federation accepts, an OAuth error otherwise, and lists what it saw in `assertions`.
 */
import http from 'node:http'
import https from 'node:https'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { isObject, isString, own } from '../../lib/json.js'
import { exchange, fakeJwt, type FederationOptions, type SeenAssertion } from './federation.js'

export { fakeJwt }

/** A canned answer. `hang: true` sends nothing (for deadlines); `hangUpAfterHeaders` cuts the body short. */
export interface Reply {
  status?: number
  body?: string
  hang?: boolean
  hangUpAfterHeaders?: boolean
}

/** One token request as the fake received it. */
export interface TokenRequest {
  method: string
  contentType: string | undefined
  form: URLSearchParams
}

/** One SKE request as the fake received it. */
export interface SkeRequest {
  path: string
  authorization: string | undefined
  accept: string | undefined
}

/** The default provider-options body. */
export const defaultVersions = ['1.33.2', '1.32.6']

/** The running fake. */
export interface FakeStackit {
  /** Base URL (`http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`; test certificates carry that IP). */
  base: string
  tokenUrl: string
  tokenRequests: TokenRequest[]
  skeRequests: SkeRequest[]
  /** Access tokens issued so far, in order. */
  issued: string[]
  /** With a federation: what the token endpoint saw of each assertion, in order (empty without one). */
  assertions: SeenAssertion[]
  /** Answer for the n-th (0-based) token request; `undefined` → issue a token (with a federation: judge it). */
  tokenReply: (n: number, req: TokenRequest) => Reply | undefined
  /** Answer for an SKE request; `undefined` → the default check-and-answer. */
  skeReply: (req: SkeRequest) => Reply | undefined
  /** `exp` of issued tokens, seconds since the epoch; default one hour from the request (not used by a federation). */
  tokenExp: () => number | undefined
  close(): Promise<void>
}

const readBody = async (req: IncomingMessage): Promise<string> => {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

const send = (res: ServerResponse, reply: Reply): void => {
  if (reply.hang) return
  res.writeHead(reply.status ?? 200, { 'content-type': 'application/json' })
  if (reply.hangUpAfterHeaders) {
    res.write(reply.body ?? '{')
    setTimeout(() => res.socket?.destroy(), 20)
    return
  }
  res.end(reply.body ?? '')
}

/** Options of {@link startFakeStackit}. */
export interface FakeStackitOptions {
  /** Verify token requests against this federation instead of accepting any. */
  readonly federation?: FederationOptions
}

/** The token endpoint's answer with a federation: the form must be a form POST, then {@link exchange} judges it. */
const federatedReply = async (record: TokenRequest, options: FederationOptions, fake: FakeStackit): Promise<Reply> => {
  if (record.method !== 'POST' || record.contentType?.split(';')[0]?.trim() !== 'application/x-www-form-urlencoded') {
    const description = 'the token request must be a POST of application/x-www-form-urlencoded'
    fake.assertions.push({ accepted: false, error: 'invalid_request', description })
    return { status: 400, body: JSON.stringify({ error: 'invalid_request', error_description: description }) }
  }
  const { status, body, seen } = await exchange(record.form, options)
  fake.assertions.push(seen)
  const accessToken = isObject(body) ? own(body, 'access_token') : undefined
  if (isString(accessToken)) fake.issued.push(accessToken)
  return { status, body: JSON.stringify(body) }
}

/** Starts the fake on 127.0.0.1, port 0. With `tls`, serves HTTPS using those PEM files. */
export const startFakeStackit = async (
  tls?: { certFile: string; keyFile: string },
  options: FakeStackitOptions = {},
): Promise<FakeStackit> => {
  const fake: FakeStackit = {
    base: '',
    tokenUrl: '',
    tokenRequests: [],
    skeRequests: [],
    issued: [],
    assertions: [],
    tokenReply: () => undefined,
    skeReply: () => undefined,
    tokenExp: () => Math.floor(Date.now() / 1000) + 3600,
    close: async () => {},
  }
  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://fake')
    if (url.pathname === '/oauth/v2/token') {
      const record: TokenRequest = {
        method: req.method ?? '',
        contentType: req.headers['content-type'],
        form: new URLSearchParams(await readBody(req)),
      }
      const n = fake.tokenRequests.push(record) - 1
      const reply = fake.tokenReply(n, record)
      if (reply) return send(res, reply)
      if (options.federation) return send(res, await federatedReply(record, options.federation, fake))
      const exp = fake.tokenExp()
      const token = fakeJwt({ sub: record.form.get('client_id'), n, ...(exp === undefined ? {} : { exp }) })
      fake.issued.push(token)
      return send(res, {
        body: JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: 3600, scope: '' }),
      })
    }
    const match = /^\/v2\/regions\/([^/]+)\/provider-options$/.exec(url.pathname)
    if (req.method === 'GET' && match) {
      const record: SkeRequest = {
        path: url.pathname,
        authorization: req.headers.authorization,
        accept: req.headers.accept,
      }
      fake.skeRequests.push(record)
      const reply = fake.skeReply(record)
      if (reply) return send(res, reply)
      const ok = fake.issued.some(t => record.authorization === `Bearer ${t}`)
      return send(
        res,
        ok
          ? {
              body: JSON.stringify({
                kubernetesVersions: defaultVersions.map(version => ({ version, state: 'supported' })),
                machineTypes: [],
              }),
            }
          : { status: 401, body: '{"message":"unauthorized"}' },
      )
    }
    send(res, { status: 404, body: '{}' })
  }
  const listener = (req: IncomingMessage, res: ServerResponse): void => void handler(req, res)
  const server = tls
    ? https.createServer({ cert: await readFile(tls.certFile), key: await readFile(tls.keyFile) }, listener)
    : http.createServer(listener)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  fake.base = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`
  fake.tokenUrl = `${fake.base}/oauth/v2/token`
  fake.close = () => {
    server.closeAllConnections()
    return new Promise(resolve => server.close(() => resolve()))
  }
  return fake
}
