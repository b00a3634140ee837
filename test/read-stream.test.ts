import t from 'tap'
import { PassThrough, Readable } from 'node:stream'
import { readStream } from '../lib/read-stream.js'

t.test('reads text, Buffer and string chunks alike', async t => {
  t.equal(await readStream(Readable.from([Buffer.from('ab'), 'cé']), 100, 'x', 'BAD_REVIEW'), 'abcé')
  t.equal(await readStream(Readable.from([]), 100, 'x', 'BAD_REVIEW'), '')
})

t.test('many tiny chunks and growth past the first capacity keep every byte in order', async t => {
  const bytes = Array.from({ length: 200_000 }, (_, i) => Buffer.from([97 + (i % 26)]))
  const text = await readStream(Readable.from(bytes), 1 << 20, 'x', 'BAD_REVIEW')
  t.equal(text.length, 200_000)
  t.equal(text.slice(0, 27), 'abcdefghijklmnopqrstuvwxyza')
  const big = await readStream(Readable.from([Buffer.alloc(100_000, 98), Buffer.alloc(100_000, 99)]), 1 << 20, 'x', 'BAD_REVIEW')
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
