import t from 'tap'
import { endpointUrl, urlHost, type UrlProblem } from '../lib/url.js'

t.test('endpointUrl: one rule set for every endpoint a request goes to', async t => {
  const rows: [value: string, allowHttp: boolean, expected: string | UrlProblem][] = [
    ['https://idp.example.com/token', false, 'https://idp.example.com/token'],
    ['https://[::1]:6443', false, 'https://[::1]:6443/'],
    ['http://127.0.0.1:8001', true, 'http://127.0.0.1:8001/'],
    ['http://idp.example.com/token', false, 'scheme'],
    ['ftp://idp.example.com/', true, 'scheme'],
    ['file:///etc/passwd', true, 'scheme'],
    ['https://user@idp.example.com/', false, 'credentials'],
    ['https://:secret@idp.example.com/', true, 'credentials'],
    ['/oauth/token', false, 'not a URL'],
    ['localhost:8001', true, 'scheme'],
    ['not a url', true, 'not a URL'],
    ['', false, 'not a URL'],
  ]
  for (const [value, allowHttp, expected] of rows) {
    const url = endpointUrl(value, allowHttp)
    t.equal(
      url instanceof URL ? url.href : url,
      expected,
      `${JSON.stringify(value)}${allowHttp ? ' (http allowed)' : ''}`,
    )
  }
})

const hosts: [host: string, expected: string][] = [
  ['10.0.0.1', '10.0.0.1'],
  ['::1', '[::1]'],
  ['[::1]', '[::1]'],
  ['kubernetes.default.svc', 'kubernetes.default.svc'],
]
for (const [host, expected] of hosts)
  t.test(`urlHost(${host}) → ${expected}`, async t => t.equal(urlHost(host), expected))
