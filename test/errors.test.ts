import t from 'tap'
import { WebhookError, errorCode, errorMessage, isWebhookError, type ErrorCode } from '../lib/errors.js'

const cases: [code: ErrorCode, status: number][] = [
  ['BAD_REVIEW', 400],
  ['BODY_TOO_LARGE', 413],
  ['UNSUPPORTED_MEDIA_TYPE', 415],
  ['OVERLOADED', 503],
  ['BODY_TIMEOUT', 408],
  ['INVALID_ANNOTATION', 403],
  ['SERVICEACCOUNT_LOOKUP_FAILED', 403],
  ['KUBE_API', 502],
]
for (const [code, status] of cases) {
  t.test(`${code} → HTTP ${status}`, async t => {
    const e = new WebhookError(code, 'why')
    t.equal(e.status, status)
    t.equal(e.message, 'why')
    t.ok(isWebhookError(e, code))
    t.notOk(isWebhookError(e, code === 'CONFLICT' ? 'USAGE' : 'CONFLICT'))
  })
}
t.test('plain errors are not WebhookErrors', async t => {
  t.notOk(isWebhookError(new Error('x')))
  t.ok(isWebhookError(new WebhookError('TLS', 'x')))
})

t.test('the code and the message of an unknown error', async t => {
  type Row = [name: string, error: unknown, code: string, message: string]
  const system = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })
  const rows: Row[] = [
    ['a system error', system, 'ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'],
    ['an Error without a code', new Error('boom'), 'undefined', 'boom'],
    ['a code that is inherited, not own', Object.create({ code: 'EINHERITED' }), 'undefined', '[object Object]'],
    ['a thrown string', 'plain', 'undefined', 'plain'],
    ['null', null, 'undefined', 'null'],
  ]
  for (const [name, error, code, message] of rows) {
    t.equal(errorCode(error), code, `${name}: code`)
    t.equal(errorMessage(error), message, `${name}: message`)
  }
})
