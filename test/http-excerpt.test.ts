import t from 'tap'
import { bodyExcerpt, maxExcerptLength } from '../lib/http-excerpt.js'
import { fakeJwt } from './helpers/fake-stackit.js'

t.test('an HTTP answer shown in a message: one line, bounded, JWTs cut out', async t => {
  type Row = [name: string, body: string, expect: string]
  const jwt = fakeJwt({ sub: 'system:serviceaccount:team-a:app' })
  const rows: Row[] = [
    ['empty', '', ''],
    ['whitespace and control characters collapse', '  a\r\n\tb\u0000c  ', 'a b c'],
    ['exactly the bound is kept whole', 'y'.repeat(maxExcerptLength), 'y'.repeat(maxExcerptLength)],
    ['one over the bound is cut', 'y'.repeat(maxExcerptLength + 1), `${'y'.repeat(maxExcerptLength)}…`],
    ['a signed JWT', `token ${jwt} end`, 'token [redacted] end'],
    ['an unsigned JWT', '{"t":"eyJhbGciOi.eyJzdWIiOi."}', '{"t":"[redacted]"}'],
    ['a JWT inside a longer dotted run', `x.${jwt}.y`, '[redacted]'],
    ['a JWT is cut before the bound counts', `${jwt}${' z'.repeat(10)}`, `[redacted]${' z'.repeat(10)}`],
    [
      'host names and versions stay',
      'see https://accounts.stackit.cloud/docs v1.2.3',
      'see https://accounts.stackit.cloud/docs v1.2.3',
    ],
    [
      'a Kubernetes Status message stays',
      'serviceaccounts "app" is forbidden: User "x" cannot get resource',
      'serviceaccounts "app" is forbidden: User "x" cannot get resource',
    ],
    ['short parts around dots stay', 'abcdefgh.abc.abcdefgh', 'abcdefgh.abc.abcdefgh'],
    ['two long parts without a third stay', 'abcdefgh.abcdefgh', 'abcdefgh.abcdefgh'],
  ]
  for (const [name, body, expect] of rows) t.equal(bodyExcerpt(body), expect, name)
})
