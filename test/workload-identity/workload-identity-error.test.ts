import t from 'tap'
import {
  WorkloadIdentityError,
  isWorkloadIdentityError,
  type WorkloadIdentityErrorCode,
} from '../../lib/workload-identity/workload-identity-error.js'
import { WebhookError } from '../../lib/errors.js'

t.test('the guard knows the class and its two codes', async t => {
  type Row = [name: string, error: unknown, code: WorkloadIdentityErrorCode | undefined, expect: boolean]
  const config = new WorkloadIdentityError('CONFIG', 'why', { cause: 'inner' })
  const rows: Row[] = [
    ['CONFIG, any code', config, undefined, true],
    ['CONFIG, asked for CONFIG', config, 'CONFIG', true],
    ['CONFIG, asked for TOKEN_EXCHANGE', config, 'TOKEN_EXCHANGE', false],
    [
      'TOKEN_EXCHANGE, asked for TOKEN_EXCHANGE',
      new WorkloadIdentityError('TOKEN_EXCHANGE', 'x'),
      'TOKEN_EXCHANGE',
      true,
    ],
    ['a plain Error with the same code', Object.assign(new Error('x'), { code: 'CONFIG' }), 'CONFIG', false],
    ["the webhook's error", new WebhookError('USAGE', 'x'), undefined, false],
    ['a string', 'CONFIG', undefined, false],
  ]
  for (const [name, error, code, expect] of rows) t.equal(isWorkloadIdentityError(error, code), expect, name)
  t.match(config, { name: 'WorkloadIdentityError', message: 'why', code: 'CONFIG', cause: 'inner' })
})
