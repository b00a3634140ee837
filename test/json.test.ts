import t from 'tap'
import { isObject, isString, own, parseJson } from '../lib/json.js'

t.test('guards', async t => {
  const rows: [v: unknown, object: boolean, string: boolean][] = [
    [{}, true, false], [[], false, false], [null, false, false], ['s', false, true], [1, false, false], [undefined, false, false],
  ]
  for (const [v, o, s] of rows) {
    t.equal(isObject(v), o, `isObject(${JSON.stringify(v)})`)
    t.equal(isString(v), s, `isString(${JSON.stringify(v)})`)
  }
})

t.test('own reads own keys only; prototype keys are plain data', async t => {
  const o = JSON.parse('{"__proto__":{"x":1},"a":2}') as Record<string, unknown>
  t.same(own(o, '__proto__'), { x: 1 })
  t.equal(own(o, 'a'), 2)
  t.equal(own(o, 'constructor'), undefined)
  t.equal(own(o, 'toString'), undefined)
})

t.test('parseJson: the caller’s error, never the parser’s (which quotes the input)', async t => {
  t.same(parseJson('{"a":1}', () => new Error('bad')), { a: 1 })
  t.throws(() => parseJson('{"password":"hunter2"', () => new Error('bad input')), { message: 'bad input' })
})
