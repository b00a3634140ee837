import t from 'tap'
import { isObject, isString, own, parseJson, quote } from '../lib/json.js'

t.test('guards', async t => {
  const rows: [v: unknown, object: boolean, string: boolean][] = [
    [{}, true, false],
    [[], false, false],
    [null, false, false],
    ['s', false, true],
    [1, false, false],
    [undefined, false, false],
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
  t.same(
    parseJson('{"a":1}', () => new Error('bad')),
    { a: 1 },
  )
  t.throws(() => parseJson('{"password":"hunter2"', () => new Error('bad input')), { message: 'bad input' })
})

t.test('quote: values are bounded and quoted in messages, documents never echoed', async t => {
  const rows: [v: unknown, shown: string, why: string][] = [
    ['a b', '"a b"', 'a space is visible inside the quotes'],
    ['x'.repeat(200), JSON.stringify(`${'x'.repeat(80)}…`), 'cut to 80 characters'],
    ['\n'.repeat(100), JSON.stringify(`${'\n'.repeat(80)}…`), 'cut before quoting: no escape is cut in half'],
    ['line\nbreak', '"line\\nbreak"', 'a newline is escaped'],
    ['tab\there', '"tab\\there"', 'a tab is escaped'],
    ['del\u007f c1\u0085\u009f', '"del\\u007f c1\\u0085\\u009f"', 'DEL and C1 controls, which JSON leaves raw'],
    ['ü€', '"ü€"', 'printable non-ASCII stays as it is'],
    [7, '7', 'a number as it is'],
    [false, 'false', 'a boolean as it is'],
    [null, 'null', 'null'],
    [undefined, 'null', 'a missing value'],
    [['secret'], 'an array', 'an array by its type'],
    [{ token: 'secret' }, 'a JSON object', 'an object by its type'],
    [() => 'secret', 'a function', 'anything else by its type'],
  ]
  for (const [v, shown, why] of rows) t.equal(quote(v), shown, why)
  t.equal(quote('abcdef', 3), '"abc…"', 'the bound can be given')
})
