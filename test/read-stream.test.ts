import t from 'tap'
import { PassThrough, Readable } from 'node:stream'
import { readStream } from '../lib/read-stream.js'

t.test('reads text, Buffer and string chunks alike', async t => {
  t.equal(await readStream(Readable.from([Buffer.from('ab'), 'cé']), 100, 'x'), 'abcé')
  t.equal(await readStream(Readable.from([]), 100, 'x'), '')
})

t.test('a limit of n bytes accepts n and refuses n+1 without reading the rest', async t => {
  t.equal(await readStream(Readable.from([Buffer.alloc(10, 97)]), 10, 'x'), 'a'.repeat(10))
  const s = new PassThrough()
  const p = readStream(s, 10, 'the body')
  s.write(Buffer.alloc(11))
  await t.rejects(p, { code: 'BODY_TOO_LARGE', message: 'the body is larger than 10 bytes' })
  t.equal(s.listenerCount('data'), 0, 'stopped listening')
  t.ok(s.isPaused(), 'stream paused')
})

t.test('a stream error becomes BAD_INPUT_FILE', async t => {
  const s = new PassThrough()
  const p = readStream(s, 10, 'stdin')
  s.destroy(new Error('EIO'))
  await t.rejects(p, { code: 'BAD_INPUT_FILE', message: 'stdin could not be read' })
})
