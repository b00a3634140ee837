// The admission endpoint over real HTTPS sockets on port 0: status codes, hostile bodies, slow clients, load.
import t, { type Test } from 'tap'
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import { makeSelfSigned } from '../helpers/certs.js'
import { chunk, connectRaw, postHead, request, type Reply } from '../helpers/webhook-client.js'
import { until } from '../helpers/until.js'
import { fixturePath } from '../helpers/paths.js'
import { errorCode, type ErrorCode } from '../../lib/errors.js'
import { createAdmissionHandler, type AdmissionHandlerOptions } from '../../lib/server/admission-handler.js'
import { defaultTimeouts, startServers, type ServerTimeouts } from '../../lib/server/listeners.js'
import { loadTlsPair } from '../../lib/server/tls-reloader.js'
import { createLogger } from '../../lib/log.js'
import { Registry } from '../../lib/metrics.js'
import { registerWebhookMetrics } from '../../lib/server/webhook-metrics.js'
import { StaticServiceAccountSource, serviceAccountsFromDocument } from '../../lib/admission/offline-source.js'
import type { ServiceAccountSource } from '../../lib/admission/serviceaccount.js'

const fixtureText = (name: string): string => readFileSync(fixturePath(name), 'utf8')
const goodReview = fixtureText('admission-review-deployment-pod.json')
const good = JSON.parse(goodReview) as {
  request: Record<string, unknown> & { object: { spec: Record<string, unknown> } }
}
const withRequest = (patch: Record<string, unknown>): string =>
  JSON.stringify({ ...good, request: { ...good.request, ...patch } })
const withPod = (patch: Record<string, unknown>): string =>
  withRequest({ object: { ...good.request.object, ...patch } })
const withSpec = (patch: Record<string, unknown>): string =>
  withPod({ spec: { ...good.request.object.spec, ...patch } })
const sentinel = 's3cr3t-sentinel'

const dir = t.testdir({})
const cert = await makeSelfSigned(dir)
const ca = readFileSync(cert.certFile)
const pair = await loadTlsPair(cert.certFile, cert.keyFile)
const maxRequestBytes = 64 * 1024
const source = new StaticServiceAccountSource(
  serviceAccountsFromDocument(JSON.parse(fixtureText('serviceaccounts.json')), 'fixture'),
)
// Short enough for the slow-client tests; the handshake limit leaves room for 64 handshakes on a busy machine.
const quick: ServerTimeouts = {
  headersMs: 500,
  requestMs: 5000,
  bodyMs: 2000,
  keepAliveMs: 5000,
  checkIntervalMs: 100,
  handshakeMs: 2000,
}

/** One parsed log line. */
interface LogEntry {
  readonly level: string
  readonly msg: string
  readonly [field: string]: unknown
}

/** A log sink of one server's own: the raw lines (to prove nothing leaks) and the parsed entries. */
const logSink = () => {
  const lines: string[] = []
  const logger = createLogger({ level: 'debug', write: l => void lines.push(l) })
  return { logger, lines, entries: (): LogEntry[] => lines.map(l => JSON.parse(l) as LogEntry) }
}

type HandlerOptions = Partial<Omit<AdmissionHandlerOptions, 'logger' | 'metrics'>>

/**
 * A server of its own, with its own log sink and metrics: the fixture ServiceAccounts and a 64 KiB limit unless
 * `options` say otherwise, the production timeouts overridden by `timeouts`. Closed when the test ends.
 */
const serverWith = async (t: Test, options: HandlerOptions = {}, timeouts: Partial<ServerTimeouts> = {}) => {
  const metrics = registerWebhookMetrics(new Registry(), 1)
  const log = logSink()
  const handler = createAdmissionHandler({ source, maxRequestBytes, ...options, logger: log.logger, metrics })
  const s = await startServers({
    bindAddress: '127.0.0.1',
    admission: { port: 0, tls: pair, minVersion: 'TLSv1.3', handler },
    plain: [],
    timeouts: { ...defaultTimeouts, ...timeouts },
  })
  t.teardown(() => s.drainAdmission(1000))
  const port = s.admissionPort
  type Headers = Record<string, string | number>
  const post = (body: string | Buffer, headers: Headers = {}, path = '/mutate', method = 'POST'): Promise<Reply> =>
    request({ port, ca, body, headers, path, method })
  const review = (body: string | Buffer = goodReview): Promise<Reply> => post(body)
  /** Every request answered with an error, as "level status code", in order. */
  const rejected = (): string[] =>
    log
      .entries()
      .filter(e => e.msg === 'review rejected')
      .map(e => `${e.level} ${String(e['status'])} ${String(e['code'])}`)
  const reviews = (outcome: string, resource = 'pods'): number => metrics.reviews.get({ resource, outcome })
  return { port, post, review, rejected, reviews, inFlight: () => metrics.inFlight.get(), log }
}

/** Asserts that a 200 carries a correct response for the fixture review (uid echoed, mutated). */
const isGoodAnswer = (body: string): boolean => {
  const r = JSON.parse(body) as { response: { uid: string; allowed: boolean; patch: string } }
  const ops = JSON.parse(Buffer.from(r.response.patch, 'base64').toString()) as { path: string }[]
  return r.response.uid === good.request['uid'] && r.response.allowed && ops.some(op => op.path === '/spec/volumes/1')
}

type Server = Awaited<ReturnType<typeof serverWith>>

t.test('status codes, and what is logged and counted for each', async t => {
  type Send = (s: Server) => Promise<Reply>
  type Row = [name: string, send: Send, status: number, body?: RegExp | undefined, code?: ErrorCode]
  const rows: Row[] = [
    ['good review → 200', s => s.post(goodReview), 200],
    ['the API server’s ?timeout query is ignored', s => s.post(goodReview, {}, '/mutate?timeout=10s'), 200],
    ['reference chart path', s => s.post(goodReview, {}, '/mutate--v1-pod'), 200],
    ['charset parameter allowed', s => s.post(goodReview, { 'Content-Type': 'application/json; charset=utf-8' }), 200],
    ['content type is case-insensitive', s => s.post(goodReview, { 'Content-Type': 'Application/JSON' }), 200],
    ['GET → 405', s => s.post('', {}, '/mutate', 'GET'), 405, /use POST/],
    ['PUT → 405', s => s.post(goodReview, {}, '/mutate', 'PUT'), 405],
    ['unknown path: 404', s => s.post(goodReview, {}, '/validate'), 404, /POST \/mutate, .*\/validate-serviceaccount/],
    ['root → 404', s => s.post(goodReview, {}, '/'), 404],
    [
      'text/plain → 415',
      s => s.post(goodReview, { 'Content-Type': 'text/plain' }),
      415,
      /application\/json/,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'json-ish type → 415',
      s => s.post(goodReview, { 'Content-Type': 'application/json-patch+json' }),
      415,
      undefined,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'declared length over the limit → 413',
      s => s.post(Buffer.alloc(maxRequestBytes + 1, 32)),
      413,
      /larger than 65536 bytes/,
      'BODY_TOO_LARGE',
    ],
    ['not JSON → 400', s => s.post(`{"x":"${sentinel}"`), 400, /^request body is not valid JSON\n$/, 'BAD_REVIEW'],
    [
      'not a review → 400',
      s => s.post(JSON.stringify({ kind: 'Pod', secret: sentinel })),
      400,
      /not an AdmissionReview/,
      'BAD_REVIEW',
    ],
    [
      'no content type → 415',
      s =>
        new Promise<Reply>((resolve, reject) => {
          const options = {
            host: '127.0.0.1',
            port: s.port,
            path: '/mutate',
            method: 'POST',
            ca,
            servername: 'localhost',
          }
          const req = https.request(options, res => {
            res.resume()
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' })
          })
          req.on('error', reject)
          req.end(goodReview)
        }),
      415,
      undefined,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
  ]
  for (const [name, send, status, body, code] of rows) {
    const s = await serverWith(t, {}, quick)
    const r = await send(s)
    t.equal(r.status, status, name)
    if (status === 405) t.equal(r.headers['allow'], 'POST', `${name}: Allow header`)
    if (body) t.match(r.body, body, name)
    if (status === 200) t.ok(isGoodAnswer(r.body), `${name}: correct review`)
    t.notMatch(r.body, sentinel, `${name}: nothing echoed`)
    // 404 and 405 are not reviews: neither logged nor counted.
    t.same(s.rejected(), code ? [`warn ${status} ${code}`] : [], `${name}: logged as rejected ${code ?? 'never'}`)
    t.equal(s.reviews('error'), code ? 1 : 0, `${name}: counted as an error ${code ? 'once' : 'never'}`)
    const mutated = status === 200 ? 1 : 0
    t.equal(s.reviews('mutated'), mutated, `${name}: counted as mutated ${mutated ? 'once' : 'never'}`)
    t.notOk(
      s.log.lines.some(l => l.includes(sentinel)),
      `${name}: nothing of the body logged`,
    )
  }
})

t.test('an over-limit body is not read to the end: 413 comes while the client still holds most of it back', async t => {
  const s = await serverWith(t, {}, quick)
  const status = await new Promise<number>((resolve, reject) => {
    const headers = { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }
    const target = { host: '127.0.0.1', port: s.port, path: '/mutate', ca, servername: 'localhost' }
    const req = https.request({ ...target, method: 'POST', headers }, res => {
      res.resume()
      resolve(res.statusCode ?? 0)
      req.destroy()
    })
    // The server may reset the connection while the client still writes: that is the point, not a failure.
    const cut = (e: Error): boolean => e.message.includes('socket hang up') || errorCode(e) === 'ECONNRESET'
    req.on('error', e => (cut(e) ? undefined : reject(e)))
    // Chunked, no declared length: the server must count while reading and stop past the limit.
    req.write(Buffer.alloc(maxRequestBytes + 10, 32))
  })
  t.equal(status, 413)
  t.same(s.rejected(), ['warn 413 BODY_TOO_LARGE'])
})

t.test('hostile bodies: each gets a clean answer, nothing is echoed or polluted, the server keeps working', async t => {
  const s = await serverWith(t, {}, quick)
  const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)
  const deepObject = (n: number): string => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`
  let seed = 7
  const garbage = Buffer.from(
    Array.from({ length: 4096 }, () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256),
  )
  type Row = [name: string, body: string | Buffer, status: number, allowed?: boolean]
  const rows: Row[] = [
    ['empty body', '', 400],
    ['truncated review', goodReview.slice(0, goodReview.length / 2), 400],
    ['review with trailing garbage', `${goodReview}}}`, 400],
    ['JSON null', 'null', 400],
    ['JSON array', '[]', 400],
    ['JSON string', `"${sentinel}"`, 400],
    ['JSON number', '123', 400],
    ['JSON true', 'true', 400],
    ['empty object', '{}', 400],
    ['binary garbage', garbage, 400],
    ['byte order mark', `\uFEFF${goodReview}`, 400],
    ['1000-deep arrays', deep(1000), 400],
    ['30,000-deep arrays', deep(30000), 400],
    ['1000-deep objects', deepObject(1000), 400],
    ['apiVersion a number', JSON.stringify({ ...good, apiVersion: 1 }), 400],
    [
      'apiVersion only in __proto__',
      `{"__proto__":{"apiVersion":"admission.k8s.io/v1"},"kind":"AdmissionReview","request":{"uid":"u"}}`,
      400,
    ],
    ['request null', JSON.stringify({ ...good, request: null }), 400],
    ['request an array', JSON.stringify({ ...good, request: [] }), 400],
    ['uid missing', withRequest({ uid: undefined }), 400],
    ['uid an object', withRequest({ uid: { $gt: '' } }), 400],
    ['uid huge number', goodReview.replace(/"uid": "[^"]+"/, '"uid": 1e999'), 400],
    ['uid 10,000 characters', withRequest({ uid: 'u'.repeat(10000) }), 400],
    ['uid with NUL', withRequest({ uid: 'a\u0000b' }), 400],
    [
      'uid invalid UTF-8',
      Buffer.concat([
        Buffer.from(goodReview.slice(0, goodReview.indexOf('705ab4f5'))),
        Buffer.from([0xff, 0xfe]),
        Buffer.from(goodReview.slice(goodReview.indexOf('705ab4f5'))),
      ]),
      400,
    ],
    ['object a string', withRequest({ object: sentinel }), 200, false],
    ['namespace a number', withRequest({ namespace: 42 }), 200, false],
    ['containers an object', withSpec({ containers: { a: 1 } }), 200, false],
    ['container null', withSpec({ containers: [null] }), 200, false],
    ['env a number', withSpec({ containers: [{ name: 'a', env: 5 }] }), 200, false],
    ['volumeMount without path', withSpec({ containers: [{ name: 'a', volumeMounts: [{ name: 'x' }] }] }), 200, false],
    ['spec null', withPod({ spec: null }), 200, false],
    ['operation a number', withRequest({ operation: 123 }), 200, true],
    ['kind a string', withRequest({ kind: 'Pod' }), 200, true],
    [
      'prototype keys in the Pod',
      withPod({
        metadata: JSON.parse(
          '{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"isAdmin":true}},"generateName":"x-"}',
        ),
      }),
      200,
      true,
    ],
    [
      '1000-deep unknown field',
      goodReview.replace('"dnsPolicy"', `"future":${deepObject(1000)},"dnsPolicy"`),
      200,
      true,
    ],
    ['huge number in an unknown field', goodReview.replace('"dnsPolicy"', '"future":1e999,"dnsPolicy"'), 200, true],
    [
      'duplicate keys (last wins)',
      goodReview.replace('"operation": "CREATE"', '"operation": "DELETE", "operation": "CREATE"'),
      200,
      true,
    ],
    [
      'unicode everywhere',
      withPod({ metadata: { generateName: 'ünï-😀-', annotations: { 'x/y': '\u2028\u2029' } } }),
      200,
      true,
    ],
  ]
  for (const [name, body, status, allowed] of rows) {
    const r = await s.post(body)
    t.equal(r.status, status, name)
    t.notMatch(r.body, sentinel, `${name}: nothing echoed`)
    if (status === 200)
      t.equal((JSON.parse(r.body) as { response: { allowed: boolean } }).response.allowed, allowed, `${name}: allowed`)
    else t.ok(r.body.length < 200, `${name}: short error body`)
  }
  t.equal(({} as Record<string, unknown>)['isAdmin'], undefined, 'Object.prototype not polluted')
  t.equal(({} as Record<string, unknown>)['apiVersion'], undefined, 'Object.prototype not polluted')
  const after = await s.review()
  t.equal(after.status, 200)
  t.ok(isGoodAnswer(after.body), 'a good review is still answered correctly')
  t.notOk(
    s.log.lines.some(l => l.includes(sentinel)),
    'no request content in any log line',
  )
  t.notOk(
    s.log.entries().some(e => e.level === 'error'),
    'no error logged for hostile input',
  )
  const refused = rows.filter(([, , status]) => status === 400)
  t.same(
    s.rejected(),
    refused.map(() => 'warn 400 BAD_REVIEW'),
    'every 400 is logged as a bad review',
  )
  t.equal(s.reviews('error'), refused.length, 'and counted as an error')
  const denied = rows.filter(([, , , allowed]) => allowed === false).length
  t.equal(s.reviews('denied'), denied, 'every disallowed Pod is counted as a denial')
})

t.test('a client that disconnects mid-body leaves nothing in flight', async t => {
  const s = await serverWith(t, {}, quick)
  await new Promise<void>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: s.port, ca, servername: 'localhost' }, () => {
      socket.write(
        'POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ' +
          '1000\r\n\r\n{"a":',
      )
      setTimeout(() => {
        socket.destroy()
        resolve()
      }, 50)
    })
    socket.on('error', reject)
  })
  t.ok(await until(() => s.rejected().length > 0), 'the broken request is logged')
  t.same(s.rejected(), ['warn 400 BAD_REVIEW'], 'as a bad review')
  t.equal(s.reviews('error'), 1, 'and counted as an error')
  t.equal(s.inFlight(), 0, 'in-flight gauge back to zero')
})

t.test('POST /validate-serviceaccount: its own decision, counted and logged under its resource', async t => {
  const P = 'workload-identity.stackit.cloud/'
  const saReview = (operation: string, annotations: Record<string, string>): string =>
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: `u-${operation}`,
        kind: { group: '', version: 'v1', kind: 'ServiceAccount' },
        operation,
        namespace: 'team-a',
        name: 'app',
        object: { metadata: { name: 'app', annotations } },
      },
    })
  const s = await serverWith(t, {}, quick)
  const post = (body: string): Promise<Reply> => s.post(body, {}, '/validate-serviceaccount')
  const answer = (r: Reply) =>
    (JSON.parse(r.body) as { response: { allowed: boolean; status?: { message: string } } }).response
  const denied = await post(saReview('CREATE', { [`${P}service-account-email`]: 'a@b.cd', [`${P}audience`]: ' x' }))
  t.equal(denied.status, 200)
  t.equal(answer(denied).allowed, false, 'a broken annotation is denied')
  t.match(answer(denied).status?.message, /audience=" x" must be non-empty .*apply the ServiceAccount again\.$/)
  const allowed = await post(saReview('CREATE', { [`${P}service-account-email`]: 'a@b.cd' }))
  t.equal(answer(allowed).allowed, true, 'a valid one is allowed')
  const pod = await post(goodReview)
  t.same(answer(pod), { uid: good.request['uid'], allowed: true }, 'a Pod sent here is allowed untouched')
  const bad = await post('{')
  t.equal(bad.status, 400, 'a broken body is refused as on /mutate')
  t.same(
    ['denied', 'allowed', 'skipped', 'error'].map(o => s.reviews(o, 'serviceaccounts')),
    [1, 1, 1, 1],
    'reviews_total{resource="serviceaccounts"} by outcome',
  )
  t.equal(s.reviews('skipped'), 0, 'nothing counted for pods')
  const logged = s.log.entries().map(e => `${e.msg} ${String(e['resource'])} ${String(e['outcome'] ?? e['code'])}`)
  t.same(logged, [
    'review serviceaccounts denied',
    'review serviceaccounts allowed',
    'review serviceaccounts skipped',
    'review rejected serviceaccounts BAD_REVIEW',
  ])
})

t.test('one log line per review with identifiers and duration, never values', async t => {
  const s = await serverWith(t, {}, quick)
  await s.review()
  const lines = s.log.entries()
  t.equal(lines.length, 1)
  t.match(lines[0], {
    level: 'info',
    msg: 'review',
    uid: good.request['uid'],
    namespace: 'team-a',
    pod: 'web-7d9f8c-',
    serviceAccount: 'app-sa',
    outcome: 'mutated',
    durationMs: Number,
  })
  t.notMatch(s.log.lines[0], /app-1a2b3c@sa\.stackit\.cloud|LOG_LEVEL|nginx/, 'no e-mail, env or image')
})

t.test('2,000 reviews at concurrency 64 over keep-alive: every answer correct, nothing logged as error', async t => {
  const s = await serverWith(t, {}, quick)
  const agent = new https.Agent({ keepAlive: true, maxSockets: 64, ca })
  // Counted where the client opens them: without keep-alive every one of the 2,000 reviews would open its own.
  let opened = 0
  const connect = agent.createConnection.bind(agent)
  agent.createConnection = (...args: Parameters<typeof connect>) => {
    opened++
    return connect(...args)
  }
  let done = 0
  let correct = 0
  const worker = async (): Promise<void> => {
    while (done < 2000) {
      done++
      const r = await request({ port: s.port, agent, body: goodReview })
      if (r.status === 200 && isGoodAnswer(r.body)) correct++
    }
  }
  await Promise.all(Array.from({ length: 64 }, worker))
  agent.destroy()
  t.equal(correct, 2000)
  t.ok(opened >= 1 && opened <= 64, `connections reused (${opened} opened for 2,000 reviews)`)
  t.same(
    s.log.entries().filter(e => e.msg !== 'review'),
    [],
    'only review lines logged',
  )
  t.equal(s.inFlight(), 0, 'in-flight gauge back to zero')
  t.equal(s.reviews('mutated'), 2000, 'every review counted as mutated')
  t.equal(s.reviews('error'), 0, 'none as an error')
})

t.test('slow-loris: a client trickling its headers is cut off by the header timeout', async t => {
  const { port } = await serverWith(t, {}, quick)
  const padding = 'x'.repeat(200)
  const header = `POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Padding: ${padding}`
  const result = await new Promise<{ sent: number; reply: string }>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      let sent = 0
      const timer = setInterval(() => {
        if (socket.destroyed || sent >= header.length) return
        socket.write(header[sent++] as string)
      }, 50)
      let reply = ''
      socket.on('data', d => (reply += String(d)))
      socket.on('end', () => clearInterval(timer)) // no write after the server has closed its side
      socket.on('close', () => {
        clearInterval(timer)
        resolve({ sent, reply })
      })
    })
    socket.on('error', reject)
  })
  t.ok(result.sent < 200, `connection closed after ${result.sent} of ${200 + 60} header bytes`)
  t.match(result.reply, /^HTTP\/1\.1 408/, 'answered 408 Request Timeout')
})

t.test('a client that never completes the TLS handshake is cut off by the handshake timeout', async t => {
  const { port } = await serverWith(t, {}, quick)
  const closed = await new Promise<string>((resolve, reject) => {
    // The start of a ClientHello, then silence.
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('\x16\x03\x01'))
    socket.on('close', () => resolve('closed'))
    socket.on('error', reject)
  })
  t.equal(closed, 'closed', 'the server closed the stalled connection')
})

/** True when a raw reply holds a 200 with an allowed review. */
const answeredOk = (reply: string): boolean => /^HTTP\/1\.1 200 OK[\s\S]*"allowed":true/.test(reply)

t.test(
  'request bytes in flight are bounded: beyond the budget a review gets 503 until earlier ones finish',
  async t => {
    // A frozen clock: the held body never looks stalled, so it keeps its bytes however slow the machine is.
    const s = await serverWith(
      t,
      { maxRequestBytes: 8000, maxBytesInFlight: 1000, monotonicMs: () => 0 },
      { bodyMs: 60_000 },
    )
    const body = Buffer.from(goodReview)
    const held = await connectRaw(s.port, ca)
    held.socket.write(postHead(body.length))
    held.socket.write(body.subarray(0, 4000))
    // The held review has 4,000 bytes in; the budget is the 8,000-byte limit (never below it), so a second review
    // of 4,575 bytes does not fit.
    const refused = await until(async () => (await s.review()).status === 503)
    t.ok(refused, 'a second review beyond the budget is refused with 503')
    const chunked = await connectRaw(s.port, ca)
    chunked.socket.write(postHead() + chunk(goodReview))
    await chunked.closed
    t.match(chunked.reply(), /^HTTP\/1\.1 503 /, 'a body of unknown length is counted the same way')
    held.socket.write(body.subarray(4000))
    t.ok(await until(() => answeredOk(held.reply())), 'the held review completes')
    held.socket.destroy()
    const after = await s.review()
    t.equal(after.status, 200, 'its bytes are released')
    t.ok(isGoodAnswer(after.body))
  },
)

t.test('the budget counts the bytes received, not the bytes declared', async t => {
  const s = await serverWith(
    t,
    { maxRequestBytes: 8000, maxBytesInFlight: 8000, monotonicMs: () => 0 },
    { bodyMs: 60_000 },
  )
  const padded = goodReview.padEnd(8000, ' ')
  const declared = await connectRaw(s.port, ca)
  declared.socket.write(postHead(8000) + padded.slice(0, 100))
  t.ok(await until(() => s.inFlight() === 1), 'the declared-8,000-byte request is being read')
  const beside = await s.review()
  t.equal(beside.status, 200, 'a review fits beside 100 bytes received of 8,000 declared')
  t.ok(isGoodAnswer(beside.body))
  const stalled = await connectRaw(s.port, ca)
  stalled.socket.write(postHead() + chunk(padded.slice(0, 5000)))
  // 100 + 5,000 bytes received: a 4,575-byte review passes the 8,000-byte budget once those 5,000 have arrived.
  let refused: Reply | undefined
  const isRefused = async (): Promise<boolean> => (refused = await s.review()).status === 503
  t.ok(await until(isRefused), 'a review that would pass the budget is refused once the bytes have arrived')
  t.same(s.rejected(), ['warn 503 OVERLOADED'], 'refused for the budget')
  t.equal(refused?.headers.connection, 'close', 'the refused connection closes')
  const partial = await connectRaw(s.port, ca)
  partial.socket.write(postHead(7000) + goodReview)
  await partial.closed
  t.match(partial.reply(), /^HTTP\/1\.1 503 /, 'the chunk past the budget is refused without waiting for the rest')
  stalled.socket.destroy()
  t.ok(await until(async () => (await s.review()).status === 200), 'an aborted body’s bytes are released')
  declared.socket.write(padded.slice(100))
  t.ok(await until(() => answeredOk(declared.reply())), 'the declared request completes')
  declared.socket.destroy()
  t.ok(await until(() => s.inFlight() === 0), 'nothing left in flight')
})

t.test('with the budget full, a body still arriving 1 s after its headers yields its bytes to a newcomer', async t => {
  // The handler's clock, so ages are exact; real sockets carry the bytes.
  const clock = { now: 0 }
  const limits = { maxRequestBytes: 8000, maxBytesInFlight: 8000, monotonicMs: () => clock.now }
  const s = await serverWith(t, limits, { bodyMs: 60_000 })
  const padded = goodReview.padEnd(8000, ' ')
  type Row = [name: string, start: string, trickle: string | undefined, ageMs: number, yields: boolean]
  const rows: Row[] = [
    ['declared 8,000 bytes, stalled after 5,000', postHead(8000) + padded.slice(0, 5000), undefined, 1000, true],
    [
      'chunked, 5,000 bytes, then a byte at a time',
      postHead() + chunk(padded.slice(0, 5000)),
      chunk(' '),
      30_000,
      true,
    ],
    [
      'declared 8,000 bytes, 5,000 in after 999 ms: it may still arrive',
      postHead(8000) + padded.slice(0, 5000),
      undefined,
      999,
      false,
    ],
  ]
  for (const [name, start, trickle, ageMs, yields] of rows) {
    clock.now = 0
    const held = await connectRaw(s.port, ca)
    held.socket.write(start)
    const timer = trickle === undefined ? undefined : setInterval(() => held.socket.write(trickle), 20)
    // 5,000 + 4,575 bytes pass the 8,000-byte budget: a 503 shows the held bytes are counted.
    t.ok(await until(async () => (await s.review()).status === 503), `${name}: its bytes fill the budget`)
    clock.now = ageMs
    const r = await s.review()
    if (yields) {
      t.equal(r.status, 200, `${name}: the newcomer is answered`)
      t.ok(isGoodAnswer(r.body), `${name}: correctly`)
      await held.closed
      t.match(held.reply(), /^HTTP\/1\.1 408 Request Timeout\r\n/, `${name}: the held body gets 408`)
      t.match(held.reply(), /\r\nConnection: close\r\n/i, `${name}: its connection is closed`)
      const reason = 'request body still arriving 1000 ms after its headers while the in-flight byte budget is full'
      t.match(held.reply(), `\r\n\r\n${reason}; send the body at once\n`, `${name}: the reason`)
    } else {
      t.equal(r.status, 503, `${name}: the newcomer is refused, as in a flood of large bodies`)
      t.equal(held.reply(), '', `${name}: the held body is still being read`)
    }
    clearInterval(timer)
    held.socket.destroy()
    t.ok(await until(() => s.inFlight() === 0), `${name}: nothing left in flight`)
  }
})

t.test('a stalled body that wants more room is refused itself; a younger body keeps its bytes', async t => {
  const clock = { now: 0 }
  const limits = { maxRequestBytes: 8000, maxBytesInFlight: 8000, monotonicMs: () => clock.now }
  const s = await serverWith(t, limits, { bodyMs: 60_000 })
  const padded = goodReview.padEnd(8000, ' ')
  const probe = (): Promise<boolean> => request({ port: s.port, ca, body: ' ' }).then(r => r.status === 503)
  const old = await connectRaw(s.port, ca)
  old.socket.write(postHead() + chunk(padded.slice(0, 3000)))
  t.ok(await until(async () => (await s.review(padded.slice(0, 5001))).status === 503), 'the old body holds 3,000')
  clock.now = 1500
  const young = await connectRaw(s.port, ca)
  young.socket.write(postHead(8000))
  t.ok(await until(() => s.inFlight() === 2), 'the young body started at 1,500 ms')
  young.socket.write(padded.slice(0, 5000))
  clock.now = 0 // probes at a time when neither body is stalled, so they cut nothing
  t.ok(await until(probe), 'the young body holds 5,000: the budget is full')
  clock.now = 2000
  old.socket.write(chunk(' '))
  await old.closed
  const refused = /^HTTP\/1\.1 503 [\s\S]*\r\n\r\ntoo many request bytes in flight; retry shortly\n$/
  t.match(old.reply(), refused, 'the old one is refused')
  t.equal(young.reply(), '', 'the young one is still being read')
  young.socket.write(padded.slice(5000))
  t.ok(await until(() => answeredOk(young.reply())), 'and completes')
  young.socket.destroy()
  t.ok(await until(() => s.inFlight() === 0), 'nothing left in flight')
})

t.test('the body deadline cuts a stalled or trickling body: 408, connection closed, its bytes released', async t => {
  type Row = [name: string, start: string, trickle?: string]
  const rows: Row[] = [
    ['declared length, stalled after 4,000 bytes', postHead(Buffer.byteLength(goodReview)) + goodReview.slice(0, 4000)],
    ['chunked, 4,000 bytes, then a byte at a time', postHead() + chunk(goodReview.slice(0, 4000)), chunk(' ')],
  ]
  for (const [name, start, trickle] of rows) {
    const s = await serverWith(t, { maxRequestBytes: 8000, maxBytesInFlight: 8000 }, { bodyMs: 300, requestMs: 3000 })
    const c = await connectRaw(s.port, ca)
    c.socket.write(start)
    const timer = trickle === undefined ? undefined : setInterval(() => c.socket.write(trickle), 20)
    await c.closed
    clearInterval(timer)
    t.match(c.reply(), /^HTTP\/1\.1 408 Request Timeout\r\n/, `${name}: 408`)
    t.match(c.reply(), /\r\nConnection: close\r\n/i, `${name}: the connection is closed`)
    t.match(c.reply(), /\r\n\r\nrequest body did not arrive in full within 300 ms\n$/, `${name}: the reason`)
    t.same(s.rejected(), ['warn 408 BODY_TIMEOUT'], `${name}: logged`)
    t.equal(s.reviews('error'), 1, `${name}: counted as an error`)
    // 7,000 bytes fit the 8,000-byte budget only if the 4,000 of the cut body are no longer counted.
    const large = await s.review(goodReview.padEnd(7000, ' '))
    t.equal(large.status, 200, `${name}: its bytes are released at once`)
    t.ok(isGoodAnswer(large.body), `${name}: a later large body is answered correctly`)
    t.equal(s.inFlight(), 0, `${name}: nothing left in flight`)
  }
})

t.test('a normal review is answered while many stalled and trickling bodies are open', async t => {
  // The production limits (4 MiB per body, 16 MiB in flight); the deadline is long so all stay open meanwhile.
  const s = await serverWith(t, { maxRequestBytes: 4 * 1024 * 1024 }, { bodyMs: 120_000, requestMs: 120_000 })
  const stalled = await Promise.all(Array.from({ length: 150 }, () => connectRaw(s.port, ca)))
  for (const c of stalled) c.socket.write(`${postHead(4 * 1024 * 1024)}{"`)
  const trickling = await Promise.all(Array.from({ length: 150 }, () => connectRaw(s.port, ca)))
  for (const c of trickling) c.socket.write(postHead() + chunk('{'))
  const trickle = setInterval(() => {
    for (const c of trickling) c.socket.write(chunk(' '))
  }, 100)
  t.teardown(() => clearInterval(trickle))
  const all = [...stalled, ...trickling]
  t.ok(await until(() => s.inFlight() === all.length), `all ${all.length} bodies are being read`)
  const r = await s.review()
  t.equal(r.status, 200, 'the review is answered')
  t.ok(isGoodAnswer(r.body), 'correctly')
  const open = all.filter(c => !c.isClosed() && c.reply() === '')
  t.equal(open.length, all.length, 'while every stalled body is still open and unanswered')
  clearInterval(trickle)
  for (const c of all) c.socket.destroy()
  t.ok(await until(() => s.inFlight() === 0), 'their requests end with their connections')
})

t.test('a failing lookup is a denial; an unexpected failure is a 500 without detail', async t => {
  type Row = [name: string, source: ServiceAccountSource, status: number, logged: Record<string, unknown>]
  const notAMap = null as unknown as ReadonlyMap<string, string>
  const broken = { namespace: 'team-a', name: 'app-sa' }
  const rows: Row[] = [
    [
      'lookup throws',
      {
        get: () => {
          throw new TypeError(`boom ${sentinel}`)
        },
        ready: () => true,
      },
      200,
      { level: 'info', msg: 'review', outcome: 'denied', reason: 'SERVICEACCOUNT_LOOKUP_FAILED' },
    ],
    // A source that breaks its contract (annotations not a map) makes the decision itself throw: a bug, so 500.
    [
      'decision throws',
      { get: () => Promise.resolve({ ...broken, annotations: notAMap }), ready: () => true },
      500,
      { level: 'error', msg: 'review rejected', status: 500, code: 'INTERNAL', reason: 'unexpected error' },
    ],
  ]
  for (const [name, source, status, logged] of rows) {
    const s = await serverWith(t, { source })
    const r = await s.review()
    t.equal(r.status, status, name)
    if (status === 200) {
      t.match(JSON.parse(r.body), { response: { allowed: false, status: { code: 403 } } }, `${name}: denied`)
    } else t.match(r.body, /^internal error\n$/, `${name}: no detail`)
    t.notMatch(r.body, sentinel, `${name}: the error text is not answered`)
    t.notOk(
      s.log.lines.some(l => l.includes(sentinel)),
      `${name}: the error text is not logged`,
    )
    const entries = s.log.entries()
    t.equal(entries.length, 1, `${name}: one log line`)
    t.match(entries[0], logged, `${name}: logged as ${String(logged['reason'])}`)
    t.equal(s.reviews(status === 200 ? 'denied' : 'error'), 1, `${name}: counted`)
  }
})
