import t from 'tap'
import {
  WebhookError,
  errorCode,
  errorMessage,
  isWebhookError,
  resolveWebhookError,
  returnWebhookError,
  type ErrorCode,
} from '../lib/errors.js'

// Every code of the closed set with the HTTP status it must give; `satisfies` makes a code without a row a
// compile error, so the table cannot fall behind the union.
const statuses = {
  BAD_REVIEW: 400,
  BODY_TOO_LARGE: 413,
  BODY_TIMEOUT: 408,
  UNSUPPORTED_MEDIA_TYPE: 415,
  OVERLOADED: 503,
  BAD_POD: 400,
  INVALID_ANNOTATION: 403,
  CONFLICT: 403,
  SERVICEACCOUNT_NOT_FOUND: 403,
  SERVICEACCOUNT_LOOKUP_FAILED: 403,
  USAGE: 400,
  BAD_INPUT_FILE: 400,
  TLS: 500,
  KUBE_API: 502,
} as const satisfies Record<ErrorCode, number>
const cases = Object.entries(statuses) as [ErrorCode, number][]
for (const [code, status] of cases) {
  t.test(`${code} → HTTP ${status}`, async t => {
    const e = new WebhookError(code, 'why')
    t.equal(e.status, status)
    t.equal(e.message, 'why')
    t.ok(isWebhookError(e, code))
    const other = cases.find(([c]) => c !== code)?.[0]
    t.notOk(isWebhookError(e, other), `not ${other}`)
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

t.test('returnWebhookError: a WebhookError comes back as a value, anything else is thrown on', async t => {
  t.equal(
    returnWebhookError(() => 7),
    7,
    'a result passes through',
  )
  const denial = new WebhookError('CONFLICT', 'taken')
  t.equal(
    returnWebhookError(() => {
      throw denial
    }),
    denial,
    'a WebhookError is returned',
  )
  const bug = new TypeError('a bug')
  t.throws(
    () =>
      returnWebhookError(() => {
        throw bug
      }),
    bug,
    'a bug surfaces',
  )
})

t.test('resolveWebhookError: the same for a promise', async t => {
  t.equal(await resolveWebhookError(Promise.resolve(7)), 7, 'a result passes through')
  const denial = new WebhookError('USAGE', 'bad flag')
  t.equal(await resolveWebhookError(Promise.reject(denial)), denial, 'a WebhookError is resolved to')
  const bug = new TypeError('a bug')
  await t.rejects(resolveWebhookError(Promise.reject(bug)), bug, 'a bug still rejects')
})
