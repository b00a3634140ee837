import t, { type Test } from 'tap'
import http from 'node:http'
import { getEventListeners } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { errorMessage } from '../../lib/errors.js'
import { KubeApiError, KubeClient } from '../../lib/kube/kube-client.js'
import { Registry } from '../../lib/metrics.js'
import { version } from '../../lib/version.js'
import { FakeApiServer } from '../helpers/fake-api-server.js'
import { until } from '../helpers/until.js'

const accept = 'application/json'
const saPath = '/api/v1/namespaces/team-a/serviceaccounts/app'

const withFake = async (t: Test, tls = false): Promise<FakeApiServer> => {
  const fake = await FakeApiServer.start({ tls })
  t.teardown(() => fake.close())
  fake.upsert({
    namespace: 'team-a',
    name: 'app',
    annotations: { 'workload-identity.stackit.cloud/service-account-email': 'a@sa.stackit.cloud' },
  })
  return fake
}

const clientFor = (
  t: Test,
  server: string,
  extra: Partial<ConstructorParameters<typeof KubeClient>[0]> = {},
): KubeClient => {
  const client = new KubeClient({ connection: { server: new URL(server) }, ...extra })
  t.teardown(() => client.close())
  return client
}

t.test('GET over https with the pinned CA, User-Agent, Accept and latency metric', async t => {
  const fake = await withFake(t, true)
  const registry = new Registry()
  const client = clientFor(t, fake.url, {
    connection: { server: new URL(fake.url), ca: readFileSync(FakeApiServer.tlsFile('ca.crt')) },
    registry,
  })
  const body = await client.getJson(saPath, { accept: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1' })
  t.match(body, { kind: 'PartialObjectMetadata', metadata: { name: 'app', namespace: 'team-a' } })
  t.equal(fake.requests[0]?.userAgent, `stackit-pod-identity-webhook/${version}`)
  t.equal(fake.requests[0]?.accept, 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1')
  t.match(registry.render(), /kube_api_request_duration_seconds_count\{verb="GET",code="200"\} 1/)
})

t.test('a server certificate from another CA is refused', async t => {
  const fake = await withFake(t, true)
  const client = clientFor(t, fake.url, {
    connection: { server: new URL(fake.url), ca: readFileSync(FakeApiServer.tlsFile('other-ca.crt')) },
  })
  await t.rejects(client.getJson(saPath, { accept }), {
    code: 'KUBE_API',
    apiStatus: undefined,
    message: /^GET \/api\/v1\/namespaces\/team-a\/serviceaccounts\/app: /,
  })
})

t.test('without a CA file the system roots apply, and they do not trust the fake cluster CA', async t => {
  const fake = await withFake(t, true)
  await t.rejects(clientFor(t, fake.url).getJson(saPath, { accept }), { code: 'KUBE_API', message: /certificate/ })
})

t.test('a path prefix of the server URL (an API proxy) is kept', async t => {
  const fake = await withFake(t)
  const client = clientFor(t, `${fake.url}/proxy/`)
  await t.rejects(client.getJson(saPath, { accept }), {
    apiStatus: 404,
    message: /HTTP 404: the server could not find the requested resource/,
  })
  t.equal(fake.requests[0]?.url.pathname, `/proxy${saPath}`)
})

t.test('bearer token: re-read after a 401, after 60 s, and never in an error message', async t => {
  const fake = await withFake(t)
  const dir = t.testdir({ token: 'old-secret\n' })
  const tokenFile = join(dir, 'token')
  let now = 0
  const client = clientFor(t, fake.url, { connection: { server: new URL(fake.url), tokenFile }, epochMs: () => now })
  fake.requiredToken = 'new-secret'
  const failed = await client.getJson(saPath, { accept }).catch((e: unknown) => e)
  t.match(failed, { code: 'KUBE_API', apiStatus: 401 })
  t.notMatch(errorMessage(failed), /secret/)
  t.equal(fake.requests.length, 2, 'one retry after re-reading the token')

  writeFileSync(tokenFile, 'new-secret\n')
  t.match(
    await client.getJson(saPath, { accept }),
    { kind: 'ServiceAccount' },
    'the 401 made it read the rotated token',
  )
  t.same(
    fake.requests.map(r => r.authorization),
    ['Bearer old-secret', 'Bearer old-secret', 'Bearer old-secret', 'Bearer new-secret'],
  )

  writeFileSync(tokenFile, 'newer-secret\n')
  fake.requiredToken = undefined
  fake.requests.length = 0
  now += 59_000
  await client.getJson(saPath, { accept })
  now += 2_000
  await client.getJson(saPath, { accept })
  t.same(
    fake.requests.map(r => r.authorization),
    ['Bearer new-secret', 'Bearer newer-secret'],
    'reused for 60 s, then read again without a 401',
  )
})

t.test('an unreadable token file fails the request without naming a token', async t => {
  const fake = await withFake(t)
  const client = clientFor(t, fake.url, {
    connection: { server: new URL(fake.url), tokenFile: join(t.testdir({}), 'missing') },
  })
  await t.rejects(client.getJson(saPath, { accept }), {
    code: 'KUBE_API',
    message: /cannot read the API token file .*missing: ENOENT/,
  })
  t.equal(fake.requests.length, 0)
})

t.test('a 500 names method, path, status and the Status message', async t => {
  const fake = await withFake(t)
  fake.failNext('get', 500)
  await t.rejects(
    clientFor(t, fake.url).getJson(saPath, { accept }),
    new KubeApiError(`GET ${saPath}: HTTP 500: injected 500`, 500),
  )
})

t.test('a response slower than the timeout is abandoned', async t => {
  const fake = await withFake(t)
  fake.delayNext('get', 300)
  await t.rejects(clientFor(t, fake.url).getJson(saPath, { accept, timeoutMs: 20 }), {
    apiStatus: undefined,
    message: `GET ${saPath}: no complete answer within 20 ms`,
  })
})

t.test('a caller abort ends a GET', async t => {
  const fake = await withFake(t)
  fake.delayNext('get', 300)
  const abort = new AbortController()
  const pending = clientFor(t, fake.url).getJson(saPath, { accept, signal: abort.signal })
  abort.abort()
  await t.rejects(pending, { code: 'KUBE_API', message: `GET ${saPath}: The operation was aborted` })
})

t.test('watch: events line by line, ended by the server timeoutSeconds', async t => {
  const fake = await withFake(t)
  const events: unknown[] = []
  const done = clientFor(t, fake.url).watch(
    '/api/v1/serviceaccounts?watch=true&resourceVersion=1000&timeoutSeconds=1',
    { accept, onEvent: e => events.push(e) },
  )
  t.equal(await done, 'closed')
  t.match(events, [{ type: 'ADDED', object: { kind: 'ServiceAccount', metadata: { name: 'app' } } }])
})

t.test('watch: a connection dropped mid-event rejects and keeps the events before it', async t => {
  const fake = await withFake(t)
  const events: unknown[] = []
  const done = clientFor(t, fake.url).watch('/api/v1/serviceaccounts?watch=true&resourceVersion=1001', {
    accept,
    onEvent: e => events.push(e),
  })
  t.ok(await until(() => fake.count('watch') === 1))
  fake.upsert({ namespace: 'team-a', name: 'b' })
  fake.dropNextWatchEvent()
  fake.upsert({ namespace: 'team-a', name: 'c' })
  await t.rejects(done, { apiStatus: 200, message: /the connection was lost/ })
  t.match(events, [{ type: 'ADDED', object: { metadata: { name: 'b' } } }])
})

t.test('watch: how it ends (closed, deadline, aborted) and the header timeout', async t => {
  const fake = await withFake(t)
  const client = clientFor(t, fake.url)
  const path = '/api/v1/serviceaccounts?watch=true&resourceVersion=1001'
  const abort = new AbortController()
  const aborted = client.watch(path, { accept, signal: abort.signal, onEvent: () => {} })
  t.ok(await until(() => fake.count('watch') === 1))
  abort.abort()
  t.equal(await aborted, 'aborted', 'an aborted watch resolves')
  const early = new AbortController()
  early.abort()
  const before = await client.watch(path, { accept, signal: early.signal, onEvent: () => {} })
  t.equal(before, 'aborted', 'aborted before the answer')
  fake.delayNext('watch', 300)
  await t.rejects(client.watch(path, { accept, timeoutMs: 20, onEvent: () => {} }), {
    message: /no answer within 20 ms/,
  })
  fake.failNext('watch', 503)
  await t.rejects(client.watch(path, { accept, onEvent: () => {} }), {
    apiStatus: 503,
    message: /^WATCH .*: HTTP 503: injected 503$/,
  })
})

// What the server does after accepting a watch, and what the client reports.
const watchEnds: [name: string, inject: (fake: FakeApiServer) => void, end: string, opened: number][] = [
  ['the server ends the stream', fake => fake.watchNext('close'), 'closed', 1],
  ['the server never speaks again: the deadline cuts it', fake => fake.watchNext('silent'), 'deadline', 1],
  ['the server never answers: the header timeout applies', fake => fake.hangNext('watch'), 'error', 0],
]
for (const [name, inject, end, opened] of watchEnds) {
  t.test(`watch: ${name} → ${end}`, async t => {
    const fake = await withFake(t)
    inject(fake)
    let opens = 0
    const events: unknown[] = []
    const onEvent = (e: unknown): number => events.push(e)
    const options = { accept, timeoutMs: 50, deadlineMs: 50, onOpen: () => opens++, onEvent }
    const ended = await clientFor(t, fake.url)
      .watch('/api/v1/serviceaccounts?watch=true&resourceVersion=1001', options)
      .catch((e: unknown) => (e instanceof KubeApiError && /no answer within 50 ms/.test(e.message) ? 'error' : e))
    t.equal(ended, end)
    t.equal(opens, opened)
    t.same(events, [])
  })
}

// Hostile or broken servers: each case is a raw handler and what the client must report.
const hostile: [
  name: string,
  handler: http.RequestListener,
  call: (c: KubeClient) => Promise<unknown>,
  expected: RegExp,
][] = [
  [
    'body that is not JSON',
    (_q, s) => s.end('<html>'),
    c => c.getJson('/x', { accept }),
    /^GET \/x: the response is not JSON$/,
  ],
  [
    'error body without a message',
    (_q, s) => s.writeHead(503).end('{"kind":"Status"}'),
    c => c.getJson('/x', { accept }),
    /^GET \/x: HTTP 503$/,
  ],
  [
    'Status message on one line, bounded, a JWT cut out',
    (_q, s) =>
      s.writeHead(403).end(
        JSON.stringify({
          kind: 'Status',
          message: `denied\n\tfor eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2ln ${'x'.repeat(300)}`,
        }),
      ),
    c => c.getJson('/x', { accept }),
    /^GET \/x: HTTP 403: denied for \[redacted\] x{178}…$/,
  ],
  [
    'error body that is a JSON array',
    (_q, s) => s.writeHead(503).end('["x"]'),
    c => c.getJson('/x', { accept }),
    /^GET \/x: HTTP 503$/,
  ],
  [
    'error body that is not JSON',
    (_q, s) => s.writeHead(502).end('bad gateway'),
    c => c.getJson('/x', { accept }),
    /^GET \/x: HTTP 502$/,
  ],
  [
    'body over the size limit',
    (_q, s) => s.end('x'.repeat(5000)),
    c => c.getJson('/x', { accept }),
    /the response exceeds 1024 bytes/,
  ],
  [
    'connection cut inside the body',
    (_q, s) => s.writeHead(200, { 'Content-Length': '100' }).write('{"a', () => s.destroy()),
    c => c.getJson('/x', { accept }),
    /^GET \/x: the connection was lost$/,
  ],
  [
    'refused connection',
    (_q, s) => s.end(),
    () => new KubeClient({ connection: { server: new URL('http://127.0.0.1:1') } }).getJson('/x', { accept }),
    /^GET \/x: connect ECONNREFUSED 127\.0\.0\.1:1$/,
  ],
  [
    'watch to a refused port',
    (_q, s) => s.end(),
    () =>
      new KubeClient({ connection: { server: new URL('http://127.0.0.1:1') } }).watch('/w', {
        accept,
        onEvent: () => {},
      }),
    /^WATCH \/w: connect ECONNREFUSED 127\.0\.0\.1:1$/,
  ],
  [
    'watch answer cut inside an error body',
    (_q, s) => s.writeHead(500, { 'Content-Length': '100' }).write('{', () => s.destroy()),
    c => c.watch('/w', { accept, onEvent: () => {} }),
    /^WATCH \/w: HTTP 500$/,
  ],
  [
    'watch event over the line limit',
    (_q, s) => s.end(`{"type":"${'x'.repeat(3000)}`),
    c => c.watch('/w', { accept, onEvent: () => {} }),
    /a line exceeds 1024 bytes/,
  ],
  [
    'watch event that is not JSON',
    (_q, s) => s.end('{"type":\n'),
    c => c.watch('/w', { accept, onEvent: () => {} }),
    /an event is not JSON/,
  ],
  [
    'watch stream ending inside an event',
    (_q, s) => s.end('{"type":"ADDED"'),
    c => c.watch('/w', { accept, onEvent: () => {} }),
    /the stream ended inside an event/,
  ],
  [
    'watch handler that throws',
    (_q, s) => s.end('{}\n'),
    c =>
      c.watch('/w', {
        accept,
        onEvent: () => {
          throw new Error('x')
        },
      }),
    /event handler failed/,
  ],
]
for (const [name, handler, call, expected] of hostile) {
  t.test(`hostile server: ${name}`, async t => {
    const server = http.createServer(handler)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise(resolve => server.close(resolve)))
    const client = clientFor(t, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, {
      maxResponseBytes: 1024,
      maxEventBytes: 1024,
    })
    await t.rejects(call(client), { code: 'KUBE_API', message: expected })
  })
}

t.test('a token file with the real clock', async t => {
  const fake = await withFake(t)
  fake.requiredToken = 'secret'
  const client = clientFor(t, fake.url, {
    connection: { server: new URL(fake.url), tokenFile: join(t.testdir({ token: 'secret' }), 'token') },
  })
  t.match(await client.getJson(saPath, { accept }), { kind: 'ServiceAccount' })
  t.match(await client.getJson(saPath, { accept }), { kind: 'ServiceAccount' })
  t.equal(fake.requests.length, 2)
})

t.test('a long-lived caller signal keeps no listener per finished request', async t => {
  const fake = await withFake(t)
  const client = clientFor(t, fake.url)
  const stop = new AbortController()
  await Promise.all(Array.from({ length: 20 }, () => client.getJson(saPath, { accept, signal: stop.signal })))
  fake.failNext('watch', 500)
  await t.rejects(
    client.watch('/api/v1/serviceaccounts?watch=true&resourceVersion=1001', {
      accept,
      signal: stop.signal,
      onEvent: () => {},
    }),
  )
  const options = { accept, signal: stop.signal, deadlineMs: 10, onEvent: () => {} }
  t.equal(await client.watch('/api/v1/serviceaccounts?watch=true&resourceVersion=1001', options), 'deadline')
  t.equal(getEventListeners(stop.signal, 'abort').length, 0)
})

t.test('a watch error body that stalls is bounded by the request timeout', async t => {
  const server = http.createServer((_q, s) => void s.writeHead(500, { 'Content-Length': '100' }).write('{'))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise(resolve => server.close(resolve))
  })
  const client = clientFor(t, `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  await t.rejects(client.watch('/w', { accept, timeoutMs: 30, onEvent: () => {} }), {
    apiStatus: 500,
    message: 'WATCH /w: HTTP 500',
  })
})
