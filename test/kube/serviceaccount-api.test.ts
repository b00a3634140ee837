import t, { type Test } from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { KubeApiError, KubeClient } from '../../lib/kube/kube-client.js'
import { silentLogger } from '../../lib/log.js'
import { ServiceAccountApi, isGone } from '../../lib/kube/serviceaccount-api.js'

// A raw server answering every request with one fixed body: the API's answers as a broken or hostile server sends them.
const apiAnswering = async (t: Test, body: string): Promise<ServiceAccountApi> => {
  const server = http.createServer((_q, s) => s.writeHead(200, { 'Content-Type': 'application/json' }).end(body))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const client = new KubeClient({
    connection: { server: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`) },
  })
  t.teardown(() => {
    client.close()
    server.closeAllConnections()
    return new Promise(resolve => server.close(resolve))
  })
  return new ServiceAccountApi(client, silentLogger)
}
const signal = new AbortController().signal

const badGets: [body: string][] = [
  ['{"kind":"Pod","metadata":{"name":"x","namespace":"y"}}'],
  ['{"kind":"ServiceAccount","metadata":{}}'],
  ['[]'],
]
for (const [body] of badGets) {
  t.test(`GET answered ${body} → not a ServiceAccount`, async t => {
    const api = await apiAnswering(t, body)
    await t.rejects(api.get('y', 'x', 1000, signal), {
      code: 'KUBE_API',
      message: 'GET /api/v1/namespaces/y/serviceaccounts/x: the answer is not a ServiceAccount',
    })
  })
}

const badLists: [body: string][] = [
  ['[]'],
  ['{"kind":"ServiceAccountList","items":[]}'],
  ['{"kind":"ServiceAccountList","metadata":{},"items":[]}'],
  ['{"kind":"PartialObjectMetadataList","metadata":{"resourceVersion":"5"}}'],
  ['{"kind":"Table","metadata":{"resourceVersion":"5"},"items":[]}'],
]
for (const [body] of badLists) {
  t.test(`LIST answered ${body} → not a list`, async t => {
    const api = await apiAnswering(t, body)
    await t.rejects(
      api.list(10, signal, () => {}),
      { message: 'LIST /api/v1/serviceaccounts?limit=10: the answer is not a ServiceAccount list' },
    )
  })
}

t.test('LIST items without a name are skipped; a non-string continue ends the list', async t => {
  const api = await apiAnswering(
    t,
    '{"kind":"PartialObjectMetadataList","metadata":{"resourceVersion":"5","continue":7},' +
      '"items":[{"metadata":{"namespace":"a"}},{"metadata":{"namespace":"a","name":"b"}}]}',
  )
  const names: string[] = []
  t.equal(await api.list(10, signal, sa => names.push(sa.name)), '5')
  t.same(names, ['b'])
})

const sa = '"kind":"ServiceAccount","metadata":{"name":"a","namespace":"b"'
const badEvents: [line: string, status: number | undefined, message: RegExp][] = [
  ['[]', 200, /unexpected event null$/],
  ['{"type":"ADDED"}', 200, /unexpected event "ADDED"$/],
  [`{"type":"ADDED","object":{${sa}}}}`, 200, /unexpected event "ADDED"$/],
  [`{"type":"WEIRD","object":{${sa},"resourceVersion":"1"}}}`, 200, /unexpected event "WEIRD"$/],
  [
    '{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","namespace":"b","resourceVersion":"1"}}}',
    200,
    /unexpected event "ADDED"$/,
  ],
  ['{"type":"BOOKMARK","object":{}}', 200, /unexpected event "BOOKMARK"$/],
  ['{"type":"ERROR","object":"gone"}', undefined, /ERROR event undefined: $/],
  ['{"type":"ERROR","object":{"code":"410","message":"too old"}}', undefined, /ERROR event 410: too old$/],
  [
    '{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version: 1 (5)"}}',
    410,
    /ERROR event 410: too old resource version: 1 \(5\)$/,
  ],
]
for (const [line, status, message] of badEvents) {
  t.test(`WATCH event ${line} → rejected`, async t => {
    const api = await apiAnswering(t, `${line}\n`)
    let opened = 0
    const request = { resourceVersion: '1', timeoutSeconds: 1, deadlineMs: 60_000, signal }
    const handlers = { onChange: () => {}, onResourceVersion: () => {}, onOpen: () => opened++ }
    const e = await api.watch(request, handlers).catch((err: unknown) => err)
    t.equal(opened, 1, 'the watch was accepted before the bad event')
    t.match(e, { code: 'KUBE_API', apiStatus: status, message })
    t.equal(isGone(e), status === 410)
  })
}

t.test('isGone only for an API 410', async t => {
  t.equal(isGone(new KubeApiError('x', 410)), true)
  t.equal(isGone(new KubeApiError('x', 500)), false)
  t.equal(isGone(Object.assign(new Error('x'), { apiStatus: 410 })), false)
})
