import t from 'tap'
import { parseArgs, type FlagSpec } from '../../lib/cli/cli-args.js'

const specs: Record<string, FlagSpec> = { port: { kind: 'string' }, file: { kind: 'list' }, debug: { kind: 'boolean' } }

t.test('accepted forms', async t => {
  type Row = [argv: string[], strings: Record<string, string>, lists: Record<string, string[]>, booleans: string[], positional: string[]]
  const rows: Row[] = [
    [[], {}, {}, [], []],
    [['--port', '1'], { port: '1' }, {}, [], []],
    [['--port=1'], { port: '1' }, {}, [], []],
    [['--port', '1', '--port', '2'], { port: '2' }, {}, [], []],
    [['--port='], { port: '' }, {}, [], []],
    [['--file', 'a', '--file=b'], {}, { file: ['a', 'b'] }, [], []],
    [['--debug', 'x'], {}, {}, ['debug'], ['x']],
    [['a', '--', '--port', 'b'], {}, {}, [], ['a', '--port', 'b']],
  ]
  for (const [argv, strings, lists, booleans, positional] of rows) {
    const p = parseArgs(argv, specs, 'cmd')
    t.same(Object.fromEntries(p.strings), strings, argv.join(' '))
    t.same(Object.fromEntries(p.lists), lists, argv.join(' '))
    t.same([...p.booleans], booleans, argv.join(' '))
    t.same(p.positional, positional, argv.join(' '))
  }
})

t.test('usage errors name the flag', async t => {
  const rows: [argv: string[], message: RegExp][] = [
    [['--nope'], /^cmd: unknown flag --nope \(see cmd --help\)$/],
    [['--constructor'], /unknown flag --constructor/],
    [['--__proto__=1'], /unknown flag --__proto__/],
    [['--port'], /--port needs a value/],
    [['--debug=1'], /--debug takes no value/],
  ]
  for (const [argv, message] of rows) t.throws(() => parseArgs(argv, specs, 'cmd'), { code: 'USAGE', message }, argv.join(' '))
})
