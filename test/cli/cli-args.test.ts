import t from 'tap'
import { parseFlags } from '../../lib/cli/cli-args.js'

const specs = {
  port: { type: 'string' },
  file: { type: 'string', multiple: true },
  debug: { type: 'boolean' },
} as const

t.test('accepted forms', async t => {
  type Row = [argv: string[], values: Record<string, unknown>, positionals: string[]]
  const rows: Row[] = [
    [[], {}, []],
    [['--port', '1'], { port: '1' }, []],
    [['--port=1'], { port: '1' }, []],
    [['--port', '1', '--port', '2'], { port: '2' }, []],
    [['--port='], { port: '' }, []],
    [['--port=a=b'], { port: 'a=b' }, []],
    [['--port', '-1'], { port: '-1' }, []],
    [['--port', '--debug'], { port: '--debug' }, []],
    [['--port', '--', 'x'], { port: '--' }, ['x']],
    [['--file', 'a', '--file=b', '--file', '-c'], { file: ['a', 'b', '-c'] }, []],
    [['--debug', 'x'], { debug: true }, ['x']],
    [['a', '--', '--port', 'b'], {}, ['a', '--port', 'b']],
    [['-', '--debug'], { debug: true }, ['-']],
  ]
  for (const [argv, values, positionals] of rows) {
    const p = parseFlags(argv, specs, 'cmd')
    t.same({ ...p.values }, values, `${argv.join(' ')}: values`)
    t.same(p.positionals, positionals, `${argv.join(' ')}: positionals`)
  }
})

t.test("usage errors name the first flag refused, bounded, and keep Node's error as the cause", async t => {
  const unknown = 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
  const invalid = 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'
  const rows: [argv: string[], message: RegExp, cause: string][] = [
    [['--nope'], /^cmd: unknown flag "--nope" \(see cmd --help\)$/, unknown],
    [['--constructor'], /^cmd: unknown flag "--constructor" /, unknown],
    [['--__proto__=1'], /^cmd: unknown flag "--__proto__" /, unknown],
    [['--no-debug'], /^cmd: unknown flag "--no-debug" /, unknown],
    [['-x'], /^cmd: unknown flag "-x" /, unknown],
    [[`--${'a'.repeat(500)}`], /^cmd: unknown flag "--a{78}…" \(see cmd --help\)$/, unknown],
    [['--port'], /^cmd: --port needs a value \(see cmd --help\)$/, invalid],
    [['x', '--file'], /^cmd: --file needs a value /, invalid],
    [['--debug=1'], /^cmd: --debug takes no value \(see cmd --help\)$/, invalid],
    [['--port', '1', '--nope', '--debug=1'], /^cmd: unknown flag "--nope" /, unknown],
    [['--debug=', '--nope'], /^cmd: --debug takes no value /, invalid],
    [['--debug', '--port'], /^cmd: --port needs a value /, invalid],
  ]
  for (const [argv, message, cause] of rows) {
    const e = t.throws(() => parseFlags(argv, specs, 'cmd'), { code: 'USAGE', message }, argv.join(' ').slice(0, 40))
    t.match(e, { cause: { code: cause } }, `${argv.join(' ').slice(0, 40)}: ${cause}`)
  }
})
