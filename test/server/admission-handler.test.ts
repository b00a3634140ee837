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
import { createAdmissionHandler } from '../../lib/server/admission-handler.js'
import { defaultTimeouts, startServers, type RunningServers, type ServerTimeouts } from '../../lib/server/listeners.js'
import { loadTlsPair } from '../../lib/server/tls-reloader.js'
import { createLogger } from '../../lib/log.js'
import { Registry } from '../../lib/metrics.js'
import { registerWebhookMetrics } from '../../lib/server/webhook-metrics.js'
import { StaticServiceAccountSource, serviceAccountsFromDocument } from '../../lib/admission/offline-source.js'

const fixtureText = (name: string): string => readFileSync(fixturePath(name), 'utf8')
const goodReview = fixtureText('admission-review-deployment-pod.json')
const good = JSON.parse(goodReview) as { request: Record<string, unknown> & { object: { spec: Record<string, unknown> } } }
const withRequest = (patch: Record<string, unknown>): string => JSON.stringify({ ...good, request: { ...good.request, ...patch } })
const withPod = (patch: Record<string, unknown>): string => withRequest({ object: { ...good.request.object, ...patch } })
const withSpec = (patch: Record<string, unknown>): string => withPod({ spec: { ...good.request.object.spec, ...patch } })
const sentinel = 's3cr3t-sentinel'

const dir = t.testdir({})
const cert = await makeSelfSigned(dir)
const ca = readFileSync(cert.certFile)
const logs: string[] = []
const registry = new Registry()
const metrics = registerWebhookMetrics(registry, 1)
const maxRequestBytes = 64 * 1024
const source = new StaticServiceAccountSource(serviceAccountsFromDocument(JSON.parse(fixtureText('serviceaccounts.json')), 'fixture'))
const servers: RunningServers = await startServers({
  bindAddress: '127.0.0.1',
  admission: {
    port: 0,
    tls: await loadTlsPair(cert.certFile, cert.keyFile),
    minVersion: 'TLSv1.3',
    handler: createAdmissionHandler({ source, logger: createLogger({ level: 'debug', write: l => logs.push(l) }), metrics, maxRequestBytes }),
  },
  plain: [],
  // Short enough for the slow-client tests; the handshake limit leaves room for 64 handshakes on a busy machine.
  timeouts: { headersMs: 500, requestMs: 5000, bodyMs: 2000, keepAliveMs: 5000, checkIntervalMs: 100, handshakeMs: 2000 },
})
t.teardown(() => servers.drainAdmission(1000))
const port = servers.admissionPort
const post = (body: string | Buffer, headers: Record<string, string | number> = {}, path = '/mutate', method = 'POST') =>
  request({ port, ca, body, headers, path, method })

/** Asserts that a 200 carries a correct response for the fixture review (uid echoed, mutated). */
const isGoodAnswer = (body: string): boolean => {
  const r = JSON.parse(body) as { response: { uid: string; allowed: boolean; patch: string } }
  const ops = JSON.parse(Buffer.from(r.response.patch, 'base64').toString()) as { path: string }[]
  return r.response.uid === good.request['uid'] && r.response.allowed && ops.some(op => op.path === '/spec/volumes/1')
}

t.test('status codes', async t => {
  type Row = [name: string, send: () => Promise<{ status: number; headers: Record<string, unknown>; body: string }>, status: number, body?: RegExp]
  const rows: Row[] = [
    ['good review → 200', () => post(goodReview), 200],
    ['the API server’s ?timeout query is ignored', () => post(goodReview, {}, '/mutate?timeout=10s'), 200],
    ['reference chart path', () => post(goodReview, {}, '/mutate--v1-pod'), 200],
    ['charset parameter allowed', () => post(goodReview, { 'Content-Type': 'application/json; charset=utf-8' }), 200],
    ['content type is case-insensitive', () => post(goodReview, { 'Content-Type': 'Application/JSON' }), 200],
    ['GET → 405', () => post('', {}, '/mutate', 'GET'), 405, /use POST/],
    ['PUT → 405', () => post(goodReview, {}, '/mutate', 'PUT'), 405],
    ['unknown path → 404', () => post(goodReview, {}, '/validate'), 404, /POST \/mutate/],
    ['root → 404', () => post(goodReview, {}, '/'), 404],
    ['text/plain → 415', () => post(goodReview, { 'Content-Type': 'text/plain' }), 415, /application\/json/],
    ['json-ish type → 415', () => post(goodReview, { 'Content-Type': 'application/json-patch+json' }), 415],
    ['declared length over the limit → 413', () => post(Buffer.alloc(maxRequestBytes + 1, 32)), 413, /larger than 65536 bytes/],
    ['not JSON → 400', () => post(`{"x":"${sentinel}"`), 400, /^request body is not valid JSON\n$/],
    ['not a review → 400', () => post(JSON.stringify({ kind: 'Pod', secret: sentinel })), 400, /not an AdmissionReview/],
  ]
  for (const [name, send, status, body] of rows) {
    const r = await send()
    t.equal(r.status, status, name)
    if (status === 405) t.equal(r.headers['allow'], 'POST', `${name}: Allow header`)
    if (body) t.match(r.body, body, name)
    if (status === 200) t.ok(isGoodAnswer(r.body), `${name}: correct review`)
    t.notMatch(r.body, sentinel, `${name}: nothing echoed`)
  }
  const missing = await new Promise<number>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca, servername: 'localhost' }, res => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', reject)
    req.end(goodReview)
  })
  t.equal(missing, 415, 'no content type → 415')
})

t.test('an over-limit body is not read to the end: 413 comes while the client still holds most of it back', async t => {
  const status = await new Promise<number>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca, servername: 'localhost', headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' } }, res => {
      res.resume()
      resolve(res.statusCode ?? 0)
      req.destroy()
    })
    req.on('error', e => (e.message.includes('socket hang up') || (e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)))
    // Chunked, no declared length: the server must count while reading and stop past the limit.
    req.write(Buffer.alloc(maxRequestBytes + 10, 32))
  })
  t.equal(status, 413)
})

t.test('hostile bodies: each gets a clean answer, nothing is echoed or polluted, the server keeps working', async t => {
  const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)
  const deepObject = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n)
  let seed = 7
  const garbage = Buffer.from(Array.from({ length: 4096 }, () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256))
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
    ['apiVersion only in __proto__', `{"__proto__":{"apiVersion":"admission.k8s.io/v1"},"kind":"AdmissionReview","request":{"uid":"u"}}`, 400],
    ['request null', JSON.stringify({ ...good, request: null }), 400],
    ['request an array', JSON.stringify({ ...good, request: [] }), 400],
    ['uid missing', withRequest({ uid: undefined }), 400],
    ['uid an object', withRequest({ uid: { $gt: '' } }), 400],
    ['uid huge number', goodReview.replace(/"uid": "[^"]+"/, '"uid": 1e999'), 400],
    ['uid 10,000 characters', withRequest({ uid: 'u'.repeat(10000) }), 400],
    ['uid with NUL', withRequest({ uid: 'a\u0000b' }), 400],
    ['uid invalid UTF-8', Buffer.concat([Buffer.from(goodReview.slice(0, goodReview.indexOf('705ab4f5'))), Buffer.from([0xff, 0xfe]), Buffer.from(goodReview.slice(goodReview.indexOf('705ab4f5')))]), 400],
    ['object a string', withRequest({ object: sentinel }), 200, false],
    ['namespace a number', withRequest({ namespace: 42 }), 200, false],
    ['containers an object', withSpec({ containers: { a: 1 } }), 200, false],
    ['container null', withSpec({ containers: [null] }), 200, false],
    ['env a number', withSpec({ containers: [{ name: 'a', env: 5 }] }), 200, false],
    ['volumeMount without path', withSpec({ containers: [{ name: 'a', volumeMounts: [{ name: 'x' }] }] }), 200, false],
    ['spec null', withPod({ spec: null }), 200, false],
    ['operation a number', withRequest({ operation: 123 }), 200, true],
    ['kind a string', withRequest({ kind: 'Pod' }), 200, true],
    ['prototype keys in the Pod', withPod({ metadata: JSON.parse('{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"isAdmin":true}},"generateName":"x-"}') }), 200, true],
    ['1000-deep unknown field', goodReview.replace('"dnsPolicy"', `"future":${deepObject(1000)},"dnsPolicy"`), 200, true],
    ['huge number in an unknown field', goodReview.replace('"dnsPolicy"', '"future":1e999,"dnsPolicy"'), 200, true],
    ['duplicate keys (last wins)', goodReview.replace('"operation": "CREATE"', '"operation": "DELETE", "operation": "CREATE"'), 200, true],
    ['unicode everywhere', withPod({ metadata: { generateName: 'ünï-😀-', annotations: { 'x/y': '\u2028\u2029' } } }), 200, true],
  ]
  t.ok(rows.length >= 30, `${rows.length} hostile bodies`)
  for (const [name, body, status, allowed] of rows) {
    const r = await post(body)
    t.equal(r.status, status, name)
    t.notMatch(r.body, sentinel, `${name}: nothing echoed`)
    if (status === 200) t.equal((JSON.parse(r.body) as { response: { allowed: boolean } }).response.allowed, allowed, `${name}: allowed`)
    else t.ok(r.body.length < 200, `${name}: short error body`)
  }
  t.equal(({} as Record<string, unknown>)['isAdmin'], undefined, 'Object.prototype not polluted')
  t.equal(({} as Record<string, unknown>)['apiVersion'], undefined, 'Object.prototype not polluted')
  const after = await post(goodReview)
  t.equal(after.status, 200)
  t.ok(isGoodAnswer(after.body), 'a good review is still answered correctly')
  t.notOk(logs.some(l => l.includes(sentinel)), 'no request content in any log line')
  t.notOk(logs.some(l => l.includes('"level":"error"')), 'no error logged for hostile input')
})

t.test('a client that disconnects mid-body leaves nothing in flight', async t => {
  logs.length = 0
  await new Promise<void>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      socket.write('POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a":')
      setTimeout(() => {
        socket.destroy()
        resolve()
      }, 50)
    })
    socket.on('error', reject)
  })
  t.ok(await until(() => logs.some(l => l.includes('request body could not be read'))), 'the broken request is logged')
  t.equal(metrics.inFlight.get(), 0, 'in-flight gauge back to zero')
})

t.test('one log line per review with identifiers and duration, never values', async t => {
  logs.length = 0
  await post(goodReview)
  const lines = logs.map(l => JSON.parse(l) as Record<string, unknown>)
  t.equal(lines.length, 1)
  t.match(lines[0], { level: 'info', msg: 'review', uid: good.request['uid'], namespace: 'team-a', pod: 'web-7d9f8c-', serviceAccount: 'app-sa', outcome: 'mutated', durationMs: Number })
  t.notMatch(logs[0], /app-1a2b3c@sa\.stackit\.cloud|LOG_LEVEL|nginx/, 'no e-mail, env or image')
})

t.test('2,000 reviews at concurrency 64 over keep-alive: every answer correct, nothing logged as error', async t => {
  logs.length = 0
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
      const r = await request({ port, agent, body: goodReview })
      if (r.status === 200 && isGoodAnswer(r.body)) correct++
    }
  }
  await Promise.all(Array.from({ length: 64 }, worker))
  agent.destroy()
  t.equal(correct, 2000)
  t.ok(opened >= 1 && opened <= 64, `connections reused (${opened} opened for 2,000 reviews)`)
  t.equal(logs.filter(l => !l.includes('"msg":"review"')).length, 0, 'only review lines logged')
  t.equal(metrics.inFlight.get(), 0, 'in-flight gauge back to zero')
  t.ok(metrics.reviews.get({ outcome: 'mutated' }) >= 2000)
})

t.test('slow-loris: a client trickling its headers is cut off by the header timeout', async t => {
  const header = 'POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Padding: ' + 'x'.repeat(200)
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
  const closed = await new Promise<string>((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('\x16\x03\x01')) // the start of a ClientHello, then silence
    socket.on('close', () => resolve('closed'))
    socket.on('error', reject)
  })
  t.equal(closed, 'closed', 'the server closed the stalled connection')
})

/** True when a raw reply holds a 200 with an allowed review. */
const answeredOk = (reply: string): boolean => /^HTTP\/1\.1 200 OK[^]*"allowed":true/.test(reply)

type Limits = { readonly maxRequestBytes: number; readonly maxBytesInFlight?: number; readonly monotonicMs?: () => number }

/** A server of its own with the given handler limits and timeouts; closed when the test ends. */
const serverWith = async (t: Test, limits: Limits, timeouts: Partial<ServerTimeouts> = {}) => {
  const m = registerWebhookMetrics(new Registry(), 1)
  const logger = createLogger({ level: 'debug', write: l => logs.push(l) })
  const handler = createAdmissionHandler({ source, logger, metrics: m, ...limits })
  const s = await startServers({
    bindAddress: '127.0.0.1',
    admission: { port: 0, tls: await loadTlsPair(cert.certFile, cert.keyFile), minVersion: 'TLSv1.3', handler },
    plain: [],
    timeouts: { ...defaultTimeouts, ...timeouts },
  })
  t.teardown(() => s.drainAdmission(1000))
  const review = (body = goodReview): Promise<Reply> => request({ port: s.admissionPort, ca, body })
  return { port: s.admissionPort, review, inFlight: () => m.inFlight.get() }
}

t.test('request bytes in flight are bounded: beyond the budget a review gets 503 until earlier ones finish', async t => {
  // A frozen clock: the held body never looks stalled, so it keeps its bytes however slow the machine is.
  const s = await serverWith(t, { maxRequestBytes: 8000, maxBytesInFlight: 1000, monotonicMs: () => 0 }, { bodyMs: 60_000 })
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
})

t.test('the budget counts the bytes received, not the bytes declared', async t => {
  const s = await serverWith(t, { maxRequestBytes: 8000, maxBytesInFlight: 8000, monotonicMs: () => 0 }, { bodyMs: 60_000 })
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
  t.match(refused?.body, /^too many request bytes in flight; retry shortly\n$/)
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
    ['chunked, 5,000 bytes, then a byte at a time', postHead() + chunk(padded.slice(0, 5000)), chunk(' '), 30_000,
      true],
    ['declared 8,000 bytes, 5,000 in after 999 ms: it may still arrive', postHead(8000) + padded.slice(0, 5000),
      undefined, 999, false],
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
  const refused = /^HTTP\/1\.1 503 [^]*\r\n\r\ntoo many request bytes in flight; retry shortly\n$/
  t.match(old.reply(), refused, 'the old one is refused')
  t.equal(young.reply(), '', 'the young one is still being read')
  young.socket.write(padded.slice(5000))
  t.ok(await until(() => answeredOk(young.reply())), 'and completes')
  young.socket.destroy()
  t.ok(await until(() => s.inFlight() === 0), 'nothing left in flight')
})

t.test('the body deadline cuts a stalled or trickling body: 408, connection closed, its bytes released', async t => {
  const s = await serverWith(t, { maxRequestBytes: 8000, maxBytesInFlight: 8000 }, { bodyMs: 300, requestMs: 3000 })
  type Row = [name: string, start: string, trickle?: string]
  const rows: Row[] = [
    ['declared length, stalled after 4,000 bytes', postHead(Buffer.byteLength(goodReview)) + goodReview.slice(0, 4000)],
    ['chunked, 4,000 bytes, then a byte at a time', postHead() + chunk(goodReview.slice(0, 4000)), chunk(' ')],
  ]
  for (const [name, start, trickle] of rows) {
    logs.length = 0
    const c = await connectRaw(s.port, ca)
    c.socket.write(start)
    const timer = trickle === undefined ? undefined : setInterval(() => c.socket.write(trickle), 20)
    await c.closed
    clearInterval(timer)
    t.match(c.reply(), /^HTTP\/1\.1 408 Request Timeout\r\n/, `${name}: 408`)
    t.match(c.reply(), /\r\nConnection: close\r\n/i, `${name}: the connection is closed`)
    t.match(c.reply(), /\r\n\r\nrequest body did not arrive in full within 300 ms\n$/, `${name}: the reason`)
    const logged = /"level":"warn","msg":"review rejected","status":408,"code":"BODY_TIMEOUT"/
    t.match(logs.join(''), logged, `${name}: logged`)
    // 7,000 bytes fit the 8,000-byte budget only if the 4,000 of the cut body are no longer counted.
    const large = await s.review(goodReview.padEnd(7000, ' '))
    t.equal(large.status, 200, `${name}: its bytes are released at once`)
    t.ok(isGoodAnswer(large.body), `${name}: a later large body is answered correctly`)
  }
  t.equal(s.inFlight(), 0, 'nothing left in flight')
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
  const handler = (source: Parameters<typeof createAdmissionHandler>[0]['source']) => createAdmissionHandler({
    source,
    logger: createLogger({ level: 'debug', write: l => logs.push(l) }),
    metrics: registerWebhookMetrics(new Registry(), 1),
    maxRequestBytes,
  })
  const pair = await loadTlsPair(cert.certFile, cert.keyFile)
  type Row = [name: string, source: Parameters<typeof handler>[0], status: number, body: RegExp]
  const rows: Row[] = [
    ['lookup throws', { get: () => { throw new TypeError(`boom ${sentinel}`) }, ready: () => true }, 200, /could not be looked up: unexpected lookup error/],
    // A source that breaks its contract (annotations not a map) makes the decision itself throw: a bug, so 500.
    ['decision throws', { get: () => Promise.resolve({ namespace: 'team-a', name: 'app-sa', annotations: null as unknown as ReadonlyMap<string, string> }), ready: () => true }, 500, /^internal error\n$/],
  ]
  for (const [name, source, status, body] of rows) {
    const s = await startServers({ bindAddress: '127.0.0.1', admission: { port: 0, tls: pair, minVersion: 'TLSv1.3', handler: handler(source) }, plain: [] })
    logs.length = 0
    const r = await request({ port: s.admissionPort, ca, body: goodReview })
    await s.drainAdmission(1000)
    t.equal(r.status, status, name)
    t.match(r.body, body, name)
    t.notOk(logs.some(l => l.includes(sentinel)), `${name}: the error text is not logged`)
    if (status === 500) t.match(logs.join(''), /"level":"error","msg":"review rejected","status":500,"code":"INTERNAL","reason":"unexpected error"/, `${name}: logged as an error`)
  }
})
