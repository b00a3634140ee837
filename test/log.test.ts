import t from 'tap'
import { batchedWriter, createLogger, isLogLevel, silentLogger, type LogLevel } from '../lib/log.js'

const now = (): Date => new Date('2026-01-02T03:04:05.000Z')

t.test('levels filter and lines are JSON', async t => {
  const rows: [level: LogLevel, expected: string[]][] = [
    ['debug', ['debug', 'info', 'warn', 'error']],
    ['info', ['info', 'warn', 'error']],
    ['warn', ['warn', 'error']],
    ['error', ['error']],
  ]
  for (const [level, expected] of rows) {
    const lines: string[] = []
    const log = createLogger({ level, write: l => lines.push(l), currentDate: now })
    log.debug('d')
    log.info('i')
    log.warn('w')
    log.error('e', { uid: 'u', n: 3, skip: undefined })
    t.same(
      lines.map(l => (JSON.parse(l) as { level: string }).level),
      expected,
      level,
    )
    t.ok(lines.every(l => l.endsWith('\n')))
    t.same(JSON.parse(lines.at(-1) as string), {
      time: '2026-01-02T03:04:05.000Z',
      level: 'error',
      msg: 'e',
      uid: 'u',
      n: 3,
    })
  }
})

t.test('long values are cut', async t => {
  const lines: string[] = []
  createLogger({ level: 'info', write: l => lines.push(l) }).info('m', { pod: 'p'.repeat(1000) })
  const line = JSON.parse(lines[0] as string) as { pod: string; time: string }
  t.equal(line.pod, `${'p'.repeat(256)}…`)
  t.ok(!Number.isNaN(Date.parse(line.time)), 'default clock')
})

t.test('level names and the silent logger', async t => {
  t.ok(isLogLevel('warn'))
  t.notOk(isLogLevel('verbose'))
  silentLogger.debug('x')
  silentLogger.info('x')
  silentLogger.warn('x')
  silentLogger.error('x')
})

t.test('batched writer: one write per turn, in order, and an explicit flush', async t => {
  const writes: string[] = []
  const turns: (() => void)[] = []
  const w = batchedWriter(
    text => writes.push(text),
    fn => turns.push(fn),
  )
  w.write('a\n')
  w.write('b\n')
  t.equal(turns.length, 1, 'one flush scheduled for the turn')
  t.same(writes, [], 'nothing written yet')
  turns.shift()?.()
  t.same(writes, ['a\nb\n'])
  w.write('c\n')
  w.flush()
  t.same(writes, ['a\nb\n', 'c\n'], 'flush writes at once')
  turns.shift()?.()
  t.equal(writes.length, 2, 'the scheduled flush finds nothing left')
  const real: string[] = []
  const d = batchedWriter(text => real.push(text))
  d.write('x')
  await new Promise(r => setImmediate(r))
  t.same(real, ['x'], 'the default schedule is the next turn')
})
