import t from 'tap'
import { PassThrough, Readable } from 'node:stream'
import { readStream } from '../lib/read-stream.js'
import { WebhookError } from '../lib/errors.js'

t.test('reads text, Buffer and string chunks alike', async t => {
  t.equal(await readStream(Readable.from([Buffer.from('ab'), 'cé']), 100, 'x', 'BAD_REVIEW'), 'abcé')
  t.equal(await readStream(Readable.from([]), 100, 'x', 'BAD_REVIEW'), '')
})

t.test('many tiny chunks and growth past the first capacity keep every byte in order', async t => {
  const bytes = Array.from({ length: 200_000 }, (_, i) => Buffer.from([97 + (i % 26)]))
  const text = await readStream(Readable.from(bytes), 1 << 20, 'x', 'BAD_REVIEW')
  t.equal(text.length, 200_000)
  t.equal(text.slice(0, 27), 'abcdefghijklmnopqrstuvwxyza')
  const big = await readStream(
    Readable.from([Buffer.alloc(100_000, 98), Buffer.alloc(100_000, 99)]),
    1 << 20,
    'x',
    'BAD_REVIEW',
  )
  t.equal(big, 'b'.repeat(100_000) + 'c'.repeat(100_000), 'a chunk larger than the doubled capacity')
})

t.test('a limit of n bytes accepts n and refuses n+1 without reading the rest', async t => {
  t.equal(await readStream(Readable.from([Buffer.alloc(10, 97)]), 10, 'x', 'BAD_REVIEW'), 'a'.repeat(10))
  const s = new PassThrough()
  const p = readStream(s, 10, 'the body', 'BAD_REVIEW')
  s.write(Buffer.alloc(11))
  await t.rejects(p, { code: 'BODY_TOO_LARGE', message: 'the body is larger than 10 bytes' })
  t.equal(s.listenerCount('data'), 0, 'stopped listening')
  t.ok(s.isPaused(), 'stream paused')
})

t.test('a stream error rejects with the caller’s code', async t => {
  for (const code of ['BAD_INPUT_FILE', 'BAD_REVIEW'] as const) {
    const s = new PassThrough()
    const p = readStream(s, 10, 'stdin', code)
    s.destroy(new Error('EIO'))
    await t.rejects(p, { code, message: 'stdin could not be read' })
  }
})

t.test('a stream destroyed before its end rejects with the caller’s code instead of waiting forever', async t => {
  const s = new PassThrough()
  const p = readStream(s, 10, 'the body', 'BAD_REVIEW')
  s.write('a')
  s.destroy()
  await t.rejects(p, { code: 'BAD_REVIEW', message: 'the body could not be read' })
  t.equal(s.listenerCount('data'), 0, 'stopped listening')
})

t.test('every chunk is counted before it is kept; an error from the count ends the read with it', async t => {
  const counted: number[] = []
  const count = (n: number): void => void counted.push(n)
  t.equal(await readStream(Readable.from([Buffer.from('ab'), 'cé']), 100, 'x', 'BAD_REVIEW', { count }), 'abcé')
  t.same(counted, [2, 3], 'sizes in bytes, strings as UTF-8')
  const s = new PassThrough()
  const full = new WebhookError('OVERLOADED', 'full')
  const p = readStream(s, 100, 'x', 'BAD_REVIEW', {
    count: n => {
      if (n > 1) throw full
    },
  })
  s.write('a')
  s.write('bc')
  await t.rejects(p, full)
  t.equal(s.listenerCount('data'), 0, 'stopped listening')
  t.ok(s.isPaused(), 'stream paused')
  const over = readStream(Readable.from([Buffer.alloc(11)]), 10, 'x', 'BAD_REVIEW', { count: () => counted.push(-1) })
  await t.rejects(over, { code: 'BODY_TOO_LARGE' }, 'the byte limit is checked first')
  t.same(counted, [2, 3], 'a chunk over the limit is not counted')
})

t.test('a stream not ended within timeoutMs rejects with BODY_TIMEOUT; the one timer ends with the read', async t => {
  const timers = (): number => process.getActiveResourcesInfo().filter(r => r === 'Timeout').length
  const s = new PassThrough()
  const p = readStream(s, 100, 'the body', 'BAD_REVIEW', { timeoutMs: 50 })
  s.write('partial')
  await t.rejects(p, { code: 'BODY_TIMEOUT', message: 'the body did not arrive in full within 50 ms' })
  t.equal(s.listenerCount('data'), 0, 'stopped listening')
  t.ok(s.isPaused(), 'stream paused')
  type Row = [name: string, finish: (s: PassThrough) => void, code?: string]
  const rows: Row[] = [
    ['ended in time', s => s.end('done')],
    ['failed in time', s => s.destroy(new Error('EIO')), 'BAD_REVIEW'],
    ['over the limit in time', s => s.write(Buffer.alloc(101)), 'BODY_TOO_LARGE'],
  ]
  for (const [name, finish, code] of rows) {
    const before = timers()
    const q = new PassThrough()
    const read = readStream(q, 100, 'x', 'BAD_REVIEW', { timeoutMs: 60_000 })
    t.equal(timers(), before + 1, `${name}: one timer while reading`)
    finish(q)
    const result = await read.then(
      text => text,
      (e: WebhookError) => e.code,
    )
    t.equal(result, code ?? 'done', name)
    t.equal(timers(), before, `${name}: its timer is cleared`)
  }
})

t.test('the stop given at the start ends the read, the stream paused; after settling it does nothing', async t => {
  const s = new PassThrough()
  let stop: ((reason: unknown) => void) | undefined
  const p = readStream(s, 100, 'the body', 'BAD_REVIEW', { onStart: f => (stop = f) })
  s.write('partial')
  const reason = new WebhookError('BODY_TIMEOUT', 'made room')
  stop?.(reason)
  await t.rejects(p, reason)
  t.equal(s.listenerCount('data'), 0, 'stopped listening')
  t.ok(s.isPaused(), 'stream paused')
  let late: ((reason: unknown) => void) | undefined
  const done = new PassThrough()
  const q = readStream(done, 100, 'x', 'BAD_REVIEW', { onStart: f => (late = f) })
  done.end('ok')
  t.equal(await q, 'ok')
  late?.(reason)
  t.notOk(done.isPaused(), 'a settled read is not touched by a late stop')
})
